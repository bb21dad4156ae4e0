//! The CSAF advisory source, served over HTTP on 127.0.0.1: a feed with broken and
//! missing documents, and the operator's feed host. Its data cases
//! (`tests/cases/csaf/`) are the `cases` test binary (`case-runner/csaf.rs`).

use super::*;
use ringleader_runtime::OperatorConfig;
use ringleader_tests::guests::csaf::{cases, fleet, source};
use ringleader_tests::peers::serve_files as serve;
use std::collections::HashMap;
use std::path::Path;

#[tokio::test]
async fn a_broken_or_missing_advisory_does_not_stop_the_others() {
    let mut files = HashMap::new();
    for name in [
        "rpm-names-and-relationships",
        "not-json",
        "purls-and-cvss-scores",
    ] {
        files.insert(
            format!("/feed/{name}.json"),
            std::fs::read(cases().join(name).join("advisory.json")).unwrap(),
        );
    }
    // A port nothing listens on, and not the feed's: the plugin may not reach it (its
    // manifest allows only the host and port of the operator's `index`).
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    files.insert(
        "/feed/index.txt".into(),
        format!("rpm-names-and-relationships.json\nnot-json.json\nmissing.json\nhttp://127.0.0.1:{closed}/gone.json\npurls-and-cvss-scores.json\n")
            .into_bytes(),
    );
    let base = serve(files);
    let plugin = source(&format!("{base}/feed/index.txt")).await;
    let (logs, capture) = Logs::capture();
    let patches = plugin.discover(&fleet()).await.unwrap();
    drop(capture);
    // Each document that could not be fetched is named, with a sentence saying why:
    // the host's (naming the URL) or the server's answer, never Rust's debug form.
    let log = logs.text();
    let missing = format!("{base}/feed/missing.json");
    assert!(
        log.contains(&format!(
            "advisory {missing} could not be fetched: {missing} answered HTTP 404 (transient error, tried twice)"
        )),
        "{log}"
    );
    let gone = format!("http://127.0.0.1:{closed}/gone.json");
    assert!(
        log.contains(&format!(
            "advisory {gone} could not be fetched: denied: http to 127.0.0.1:{closed} is not declared"
        )),
        "{log}"
    );
    assert!(!log.contains("Transient("), "{log}");
    let ids: Vec<&str> = patches.iter().map(|p| p.id.as_str()).collect();
    assert!(ids.contains(&"RHSA-2022:0011/telnet"), "{ids:?}");
    assert!(ids.contains(&"EXL-2024-0042/openssl"), "{ids:?}");
    // Only packages the devices have.
    let one = vec![device("only-openssl", &[("openssl", "3.0.11-1")])];
    let patches = plugin.discover(&one).await.unwrap();
    assert!(
        patches.iter().all(|p| p.component == "openssl"),
        "{patches:?}"
    );

    // Without the operator's setting, the error says what to set.
    let unset = {
        let manifest = ringleader_runtime::Manifest::load(&manifest("csaf-source")).unwrap();
        let mut grants = Grants::default();
        grants.allow_as_declared("csaf-source", &manifest.capabilities);
        load(&runtime(grants, Services::default()), "csaf-source").await
    };
    let err = unset.discover(&fleet()).await.unwrap_err().to_string();
    assert!(err.contains("settings = { index"), "{err}");
}

/// The operator points the bundled source at its own feed from its config alone: the
/// manifest's `{setting:index}` is the host of the URL in the setting, and a host the
/// operator did not name (here an advisory the index lists on another server) is
/// refused at request time, never fetched.
#[tokio::test]
async fn the_operators_feed_is_reached_through_its_setting_and_no_other_host() {
    use ringleader_tests::peers::FileServer;
    let read = |name: &str| std::fs::read(cases().join(name).join("advisory.json")).unwrap();
    // Another server on 127.0.0.1: another port, so another host:port to the check.
    let elsewhere = FileServer::start(HashMap::from([(
        "/b.json".to_string(),
        read("purls-and-cvss-scores"),
    )]));
    let feed = FileServer::start(HashMap::from([
        (
            "/feed/index.txt".to_string(),
            format!("a.json\n{}/b.json\n", elsewhere.url).into_bytes(),
        ),
        (
            "/feed/a.json".to_string(),
            read("rpm-names-and-relationships"),
        ),
    ]));
    let index = format!("{}/feed/index.txt", feed.url);
    let config = |http: &str| {
        let text = format!(
            "[plugins.csaf-source]\nhttp = [{http}]\nsettings = {{ index = \"{index}\" }}\n"
        );
        OperatorConfig::parse(Path::new("ringleader.toml"), &text)
            .unwrap()
            .grants
    };
    let feed_host = feed.url.trim_start_matches("http://").to_string();
    let other_host = elsewhere.url.trim_start_matches("http://").to_string();

    // The operator grants the setting's host (`{setting:index}`), or the whole of
    // 127.0.0.1: either way the manifest's entry is the bound, so the other server is
    // refused, with the reason named.
    let refusal = format!(
        "http to {other_host} is not declared in the plugin's manifest (capabilities.http); `{{setting:index}}` is {feed_host}, the host of the operator's setting `index`"
    );
    for http in ["\"{setting:index}\"", "\"127.0.0.1\""] {
        let (logs, _capture) = Logs::capture();
        let answered = feed.answered().len();
        let plugin = load(&runtime(config(http), Services::default()), "csaf-source").await;
        let patches = plugin.discover(&fleet()).await.unwrap();
        let ids: Vec<&str> = patches.iter().map(|p| p.id.as_str()).collect();
        assert!(ids.contains(&"RHSA-2022:0011/telnet"), "{http}: {ids:?}");
        assert!(
            ids.iter().all(|id| !id.starts_with("EXL-2024-0042")),
            "{http}: {ids:?}"
        );
        let paths: Vec<String> = feed
            .answered_since(answered)
            .into_iter()
            .map(|(path, _)| path)
            .collect();
        assert_eq!(paths, ["/feed/index.txt", "/feed/a.json"], "{http}");
        assert!(elsewhere.answered().is_empty(), "{http}: reached");
        let log = logs.text();
        assert!(log.contains(&refusal), "{http}: {log}");
    }

    // The manifest's entry is no wildcard: granted by name, the operator's host is
    // reached, and a grant that names another host only gets the plugin refused.
    let plugin = load(
        &runtime(
            config("\"127.0.0.1\", \"csaf.example.net\""),
            Services::default(),
        ),
        "csaf-source",
    )
    .await;
    assert!(!plugin.discover(&fleet()).await.unwrap().is_empty());
    let stingy = format!("\"{other_host}\"");
    let plugin = load(
        &runtime(config(&stingy), Services::default()),
        "csaf-source",
    )
    .await;
    let err = plugin.discover(&fleet()).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "http to {feed_host} is not granted to this plugin by the operator"
        )),
        "{err}"
    );

    // A setting that names a host no plugin may reach is refused when the plugin is
    // loaded, saying which setting and why.
    let text = "[plugins.csaf-source]\nhttp = [\"{setting:index}\"]\nsettings = { index = \"http://169.254.169.254/latest/index.txt\" }\n";
    let grants = OperatorConfig::parse(Path::new("ringleader.toml"), text)
        .unwrap()
        .grants;
    let err = runtime(grants, Services::default())
        .load(&manifest("csaf-source"))
        .await
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "plugin `csaf-source` cannot be given its operator settings: the setting `index` names the host the plugin may reach (`{setting:index}`), and is refused: `169.254.169.254:80` is the cloud instance metadata service (link-local), not a host a plugin may reach; fix `settings` under [plugins.csaf-source] in the operator's config"
    );
}
