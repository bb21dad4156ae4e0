//! Hostile plugins: each misbehaviour costs one failed call with a typed error naming
//! the limit or capability, and the host and other plugins carry on.

use super::*;
use ringleader_runtime::CallErrorKind;
use ringleader_runtime::bindings::PluginError;
use ringleader_runtime::limits;
use ringleader_runtime::services::LocalExec;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

/// The hostile installer and a well-behaved plugin in one runtime.
struct Harness {
    hostile: Plugin,
    good: Plugin,
}

impl Harness {
    async fn new(grant_declared: bool) -> Harness {
        let mut grants = Grants::default();
        if grant_declared {
            let m =
                ringleader_runtime::Manifest::load(&manifest("test-hostile-installer")).unwrap();
            grants.allow_as_declared("test-hostile-installer", &m.capabilities);
        }
        let services = Services {
            exec: Arc::new(LocalExec),
            ..Services::default()
        };
        let rt = runtime(grants, services);
        Harness {
            hostile: load(&rt, "test-hostile-installer").await,
            good: load(&rt, "sim-vendor-source").await,
        }
    }

    async fn misbehave(&self, how: &str) -> ringleader_runtime::CallError {
        self.hostile
            .install(&device("victim", &[]), &patch(how, "thing", "1.0.0"))
            .await
            .expect_err("the hostile call must fail")
    }

    /// The host is still fine: a good plugin's call succeeds, and so does a
    /// well-behaved call of the very plugin that just misbehaved.
    async fn still_healthy(&self) {
        let patches = self
            .good
            .discover(&[device("d", &[("bios", "2.0.0")])])
            .await
            .expect("a good plugin still works");
        assert!(!patches.is_empty());
        let ok = self
            .hostile
            .install(&device("victim", &[]), &patch("behave", "thing", "1.0.0"))
            .await
            .expect("the same plugin works again in a fresh store");
        assert_eq!(ok.detail, "behaved");
    }
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_at_the_deadline() {
    let h = Harness::new(false).await;
    let err = h.misbehave("loop").await;
    assert!(
        matches!(err.kind, CallErrorKind::Timeout { limit } if limit == Duration::from_secs(2)),
        "{err}"
    );
    assert!(err.to_string().contains("deadline of 2s"), "{err}");
    assert!(err.to_string().contains("test-hostile-installer"), "{err}");
    h.still_healthy().await;
}

#[tokio::test]
async fn a_memory_bomb_hits_the_memory_limit() {
    let h = Harness::new(false).await;
    let err = h.misbehave("memory-bomb").await;
    assert!(
        matches!(err.kind, CallErrorKind::MemoryLimit { limit, .. } if limit == 32 << 20),
        "{err}"
    );
    assert!(err.to_string().contains("memory limit of 32MiB"), "{err}");
    h.still_healthy().await;
}

#[tokio::test]
async fn a_gigabyte_string_cannot_even_be_built() {
    let h = Harness::new(false).await;
    let err = h.misbehave("huge-string").await;
    assert!(
        matches!(err.kind, CallErrorKind::MemoryLimit { .. }),
        "{err}"
    );
    h.still_healthy().await;
}

#[tokio::test]
async fn an_oversized_string_result_is_refused_by_the_result_cap() {
    let h = Harness::new(false).await;
    let err = h.misbehave("oversized-string").await;
    let CallErrorKind::ResultTooLarge(what) = &err.kind else {
        panic!("{err}")
    };
    assert!(what.contains("`detail` is 4194304 bytes long"), "{what}");
    h.still_healthy().await;
}

#[tokio::test]
async fn a_panic_is_a_trap_with_the_panic_message() {
    let h = Harness::new(false).await;
    let err = h.misbehave("panic").await;
    let CallErrorKind::Trap(reason) = &err.kind else {
        panic!("{err}")
    };
    assert!(
        reason.contains("hostile plugin panics on purpose"),
        "{reason}"
    );
    h.still_healthy().await;
}

#[tokio::test]
async fn a_stack_overflow_is_named() {
    let h = Harness::new(false).await;
    let err = h.misbehave("stack-overflow").await;
    assert!(matches!(err.kind, CallErrorKind::StackOverflow), "{err}");
    h.still_healthy().await;
}

#[tokio::test]
async fn a_host_call_flood_exhausts_the_hostcall_budget() {
    let h = Harness::new(false).await;
    let err = h.misbehave("hostcall-flood").await;
    assert!(
        matches!(err.kind, CallErrorKind::HostcallBudget { limit } if limit == limits::DEFAULT_HOSTCALLS),
        "{err}"
    );
    assert!(err.to_string().contains("limits.hostcalls"), "{err}");
    h.still_healthy().await;
}

#[tokio::test]
async fn a_stdout_flood_is_bounded_and_harmless() {
    let (logs, _guard) = Logs::capture();
    let h = Harness::new(false).await;
    let ok = h
        .hostile
        .install(
            &device("victim", &[]),
            &patch("stdout-flood", "thing", "1.0.0"),
        )
        .await
        .expect("printing is never an error to the guest");
    assert_eq!(ok.detail, "printed 16 MiB");
    // The output reaches the log, tagged with the plugin, and only the first 64 KiB.
    let logged = logs.text();
    assert!(logged.contains("plugin=test-hostile-installer"), "{logged}");
    assert!(logged.contains("stream=\"stdout\""), "{logged}");
    let kept = logged.matches("yyyy").count();
    assert!(
        kept > 0 && logged.len() < 2 * limits::MAX_CAPTURED_OUTPUT + 64 * 1024,
        "{kept}"
    );
    assert!(logged.contains("dropped_bytes="), "the drop is reported");
    h.still_healthy().await;
}

#[tokio::test]
async fn sleeping_past_the_deadline_is_a_timeout() {
    let h = Harness::new(false).await;
    let err = h.misbehave("sleep").await;
    assert!(matches!(err.kind, CallErrorKind::Timeout { .. }), "{err}");
    h.still_healthy().await;
}

use super::Logs;

fn denied(err: &ringleader_runtime::CallError) -> &str {
    match &err.kind {
        CallErrorKind::Plugin(PluginError::Denied(m)) => m,
        _ => panic!("expected a denied error, got: {err}"),
    }
}

#[tokio::test]
async fn http_to_an_undeclared_host_is_denied_and_logged() {
    let (logs, _guard) = Logs::capture();
    let h = Harness::new(true).await;
    let err = h.misbehave("http-undeclared").await;
    let message = denied(&err);
    assert!(message.contains("undeclared.invalid:80"), "{message}");
    assert!(message.contains("not declared"), "{message}");
    let logged = logs.text();
    assert!(logged.contains("WARN"), "{logged}");
    assert!(logged.contains("plugin=test-hostile-installer"), "{logged}");
    assert!(logged.contains("capability=\"http\""), "{logged}");
    assert!(
        logged.contains("target=\"undeclared.invalid:80\""),
        "{logged}"
    );
    h.still_healthy().await;
}

/// Serves one HTTP request on 127.0.0.1 with `body`; returns the port.
fn serve_once(body: &'static str) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[tokio::test]
async fn http_to_a_declared_and_granted_host_works() {
    let h = Harness::new(true).await;
    let port = serve_once("hello");
    let ok = h
        .hostile
        .install(
            &device("victim", &[]),
            &patch(
                &format!("http-declared:http://127.0.0.1:{port}/x"),
                "thing",
                "1",
            ),
        )
        .await
        .unwrap();
    assert_eq!(ok.detail, "status 200 body hello");
}

#[tokio::test]
async fn http_declared_but_not_granted_is_denied() {
    let h = Harness::new(false).await;
    let port = serve_once("never read");
    let err = h
        .hostile
        .install(
            &device("victim", &[]),
            &patch(
                &format!("http-declared:http://127.0.0.1:{port}/x"),
                "thing",
                "1",
            ),
        )
        .await
        .unwrap_err();
    assert!(denied(&err).contains("not granted"), "{err}");
    h.still_healthy().await;
}

#[tokio::test]
async fn exec_of_an_undeclared_program_is_denied_and_logged() {
    let (logs, _guard) = Logs::capture();
    let h = Harness::new(true).await;
    let err = h.misbehave("exec-undeclared").await;
    assert!(
        denied(&err).contains("exec of `sh` is not declared"),
        "{err}"
    );
    let logged = logs.text();
    assert!(logged.contains("capability=\"exec\""), "{logged}");
    assert!(logged.contains("target=\"sh\""), "{logged}");
    h.still_healthy().await;
}

#[tokio::test]
async fn exec_of_a_declared_and_granted_program_runs_on_the_device() {
    let h = Harness::new(true).await;
    let ok = h
        .hostile
        .install(
            &device("victim", &[]),
            &patch("exec-declared", "thing", "1"),
        )
        .await
        .unwrap();
    assert_eq!(ok.detail, "exit 0 stdout hello");
}

#[tokio::test]
async fn exec_declared_but_not_granted_is_denied() {
    let h = Harness::new(false).await;
    let err = h
        .hostile
        .install(
            &device("victim", &[]),
            &patch("exec-declared", "thing", "1"),
        )
        .await
        .unwrap_err();
    assert!(denied(&err).contains("not granted"), "{err}");
}

#[tokio::test]
async fn a_kv_flood_is_refused_at_the_quota() {
    let h = Harness::new(true).await;
    let err = h.misbehave("kv-flood").await;
    let CallErrorKind::Plugin(PluginError::Permanent(m)) = &err.kind else {
        panic!("{err}")
    };
    assert!(m.contains("over the limit of 1048576"), "{m}");
    h.still_healthy().await;
}

async fn hostile_source() -> (Plugin, Plugin) {
    let rt = runtime(Grants::default(), Services::default());
    (
        load(&rt, "test-hostile-source").await,
        load(&rt, "sim-vendor-source").await,
    )
}

#[tokio::test]
async fn ten_million_patches_exhaust_the_plugins_memory_not_the_hosts() {
    let (hostile, good) = hostile_source().await;
    let err = hostile
        .discover(&[device("ten-million", &[])])
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind, CallErrorKind::MemoryLimit { limit, .. } if limit == 256 << 20),
        "{err}"
    );
    good.discover(&[device("d", &[("bios", "2.0.0")])])
        .await
        .unwrap();
}

#[tokio::test]
async fn too_many_patches_are_refused_by_the_list_cap() {
    let (hostile, good) = hostile_source().await;
    let err = hostile
        .discover(&[device("too-many", &[])])
        .await
        .unwrap_err();
    let CallErrorKind::ResultTooLarge(what) = &err.kind else {
        panic!("{err}")
    };
    assert_eq!(
        what,
        "`patches` has 120000 entries, over the limit of 100000"
    );
    good.discover(&[device("d", &[("bios", "2.0.0")])])
        .await
        .unwrap();
}

#[tokio::test]
async fn an_oversized_id_is_refused_by_the_string_cap() {
    let (hostile, _) = hostile_source().await;
    let err = hostile
        .discover(&[device("long-id", &[])])
        .await
        .unwrap_err();
    let CallErrorKind::ResultTooLarge(what) = &err.kind else {
        panic!("{err}")
    };
    assert!(what.contains("`patch.id` is 2097152 bytes long"), "{what}");
    // The same plugin, asked for something reasonable, answers.
    let fine = hostile.discover(&[device("anything", &[])]).await.unwrap();
    assert_eq!(fine.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_calls_run_while_a_hostile_call_spins() {
    let h = Arc::new(Harness::new(false).await);
    let spinning = {
        let h = h.clone();
        tokio::spawn(async move { h.misbehave("loop").await })
    };
    // While the loop burns its 2 s, many good calls complete.
    for _ in 0..20 {
        h.good
            .discover(&[device("d", &[("openssl", "3.0.1")])])
            .await
            .unwrap();
    }
    assert!(
        !spinning.is_finished(),
        "good calls were not held up by the loop"
    );
    let err = spinning.await.unwrap();
    assert!(matches!(err.kind, CallErrorKind::Timeout { .. }), "{err}");
}

/// One HTTP request's headers, as the device (a BMC) saw them.
fn one_request_server() -> (u16, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(2) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                head.push_str(&line);
                line.clear();
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            let _ = tx.send(head.to_ascii_lowercase());
        }
    });
    (port, rx)
}

#[tokio::test]
async fn the_host_adds_the_operators_credentials_to_requests_to_the_device_only() {
    use ringleader_runtime::transport::{Route, Routes};
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("bmc-password");
    std::fs::write(&password, "secret\n").unwrap();
    let routes = Arc::new(Routes::new(Arc::new(ringleader_runtime::services::NoExec)));
    for id in ["bmc", "elsewhere"] {
        routes.set(
            id,
            Route::Http {
                basic: Some(("admin".into(), password.clone())),
                ca: None,
            },
        );
    }
    let mut grants = Grants::default();
    let m = ringleader_runtime::Manifest::load(&manifest("test-hostile-installer")).unwrap();
    grants.allow_as_declared("test-hostile-installer", &m.capabilities);
    let rt = runtime(
        grants,
        Services {
            auth: routes.clone(),
            ..Services::default()
        },
    );
    let plugin = load(&rt, "test-hostile-installer").await;
    let (port, seen) = one_request_server();
    let url = format!("http-declared:http://127.0.0.1:{port}/redfish/v1");

    // The device is the BMC at 127.0.0.1: the request carries its credentials.
    let mut bmc = device("bmc", &[]);
    bmc.hostname = "127.0.0.1".into();
    let ok = plugin
        .install(&bmc, &patch(&url, "bios", "1.0"))
        .await
        .unwrap();
    assert!(ok.detail.starts_with("status 200"), "{}", ok.detail);
    let head = seen.recv().unwrap();
    assert!(
        head.contains("authorization: basic ywrtaw46c2vjcmv0"),
        "admin:secret, base64: {head}"
    );

    // A call about another device requesting 127.0.0.1 gets no credentials.
    let mut other = device("elsewhere", &[]);
    other.hostname = "bmc-2.example.net".into();
    plugin
        .install(&other, &patch(&url, "bios", "1.0"))
        .await
        .unwrap();
    let head = seen.recv().unwrap();
    assert!(!head.contains("authorization"), "{head}");
}
