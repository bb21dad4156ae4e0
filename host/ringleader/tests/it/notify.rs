//! Webhook notifications (docs/notifications.md) against a real receiver: the docs'
//! own `docs/examples/webhook-receiver.py`, which checks every signature with Python's
//! `hmac` and answers 401 to a wrong one. The receiver is down at first: the rollout
//! runs on regardless, and what was queued arrives, in order, once it is up.

use ringleader_tests::daemon::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SECRET: &str = "a-long-random-secret-0123456789";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A loopback port nothing listens on (yet).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The docs' receiver on `port`, stopped when dropped.
struct Receiver {
    child: Child,
    out: PathBuf,
    port: u16,
}

impl Receiver {
    fn start(dir: &Path, port: u16, secret: &str, fail_first: u32) -> Receiver {
        let out = dir.join("received.jsonl");
        let mut child = Command::new("python3")
            .arg(repo("docs/examples/webhook-receiver.py"))
            .args(["--port", &port.to_string(), "--secret-file", secret])
            .arg("--out")
            .arg(&out)
            .args(["--fail-first", &fail_first.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the receiver");
        let mut line = [0u8; 9];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut line)
            .expect("the receiver says it listens");
        assert_eq!(&line, b"listening");
        Receiver { child, out, port }
    }

    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// A raw POST; returns the status line.
    fn post(&self, body: &str, signature: &str) -> String {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nRingleader-Signature: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer.lines().next().unwrap_or_default().to_string()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn notifications(daemon: &Daemon) -> Value {
    let out = daemon.cli(&["notifications", "--json", "--limit", "1000"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid("notifications.v1.json", &doc);
    doc
}

fn webhook<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == name)
        .unwrap_or_else(|| panic!("no webhook {name}: {doc:#}"))
}

/// Waits until `done` holds of the delivery log (at most a minute).
fn until(daemon: &Daemon, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..300 {
        let doc = notifications(daemon);
        if done(&doc) {
            return doc;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{what}: {:#}\n{}", notifications(daemon), daemon.log());
}

#[test]
fn webhooks_arrive_signed_and_in_order_and_a_down_receiver_is_retried_without_stalling_the_rollout()
{
    let dir = tempfile::tempdir().unwrap();
    let secret = write(dir.path(), "ops.secret", &format!("{SECRET}\n"));
    let (port, nobody) = (free_port(), free_port());
    let config = write(
        dir.path(),
        "ringleader.toml",
        &format!(
            r#"
[webhooks.ops]
url = "http://127.0.0.1:{port}/hook"
secret_file = "ops.secret"
events = ["awaiting-approval", "halted", "completed", "device-failed", "rollback-failed"]
retry_max = "1s"
attempts = 1000

[webhooks.gone]
url = "http://127.0.0.1:{nobody}/hook?token=hidden"
secret_file = "ops.secret"
events = ["completed"]
attempts = 3
retry_max = "1s"
"#
        ),
    );
    let data = dir.path().join("data");
    let daemon = Daemon::start_with(&data, &["--config", &config]);
    // Failures in both rings, within what each allows.
    let policy = APPROVAL.replace(
        "select = { tags = [\"lab\"] }\n",
        "select = { tags = [\"lab\"] }\nmax_failures = \"50%\"\n",
    );
    assert!(policy.contains("50%"));
    let policy = write(dir.path(), "approval.toml", &policy);

    // The receiver is down: the rollout goes to its approval and on to its end anyway.
    let out = daemon.cli(&[
        "rollout",
        "start",
        "--policy",
        &policy,
        "--simulate",
        "200",
        "--virtual-time",
        "--start",
        "2026-11-02T08:00:00Z",
        "--fail-permille",
        "40",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    daemon.wait_for(&id, |s| s["state"] == "awaiting-approval");
    let out = daemon.cli(&["approve", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = daemon.cli(&["status", &id, "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let doc = until(&daemon, "the first tries failed", |doc| {
        webhook(doc, "ops")["last_error"]["attempt"].as_u64() >= Some(2)
    });
    let ops = webhook(&doc, "ops");
    assert!(ops["pending"].as_u64().unwrap() >= 2, "{ops:#}");
    assert_eq!(ops["delivered"], 0);
    let error = ops["last_error"]["message"].as_str().unwrap();
    assert!(
        error.to_lowercase().contains("refused") || error.contains("onnect"),
        "{error}"
    );
    // The URL shown keeps no query (a token may hide there).
    assert_eq!(
        webhook(&doc, "gone")["url"],
        format!("http://127.0.0.1:{nobody}/hook")
    );

    // Up, refusing the first valid try with a 503: everything arrives, once, in order.
    let receiver = Receiver::start(dir.path(), port, &secret, 1);
    let doc = until(&daemon, "everything delivered", |doc| {
        webhook(doc, "ops")["pending"] == 0
    });
    let got = receiver.received();
    let events = daemon.events(&id);
    let want: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| {
            let kind = match e["type"].as_str()? {
                "awaiting-approval" | "halted" | "completed" => e["type"].as_str()?,
                "step-failed" => "device-failed",
                "reboot-finished" if e["ok"] == false => "device-failed",
                "rollback-finished" if e["ok"] == false => "rollback-failed",
                _ => return None,
            };
            Some((format!("{id}-{}", e["cursor"]), kind.to_string()))
        })
        .collect();
    let seen: Vec<(String, String)> = got
        .iter()
        .map(|n| {
            assert_valid("notification.v1.json", n);
            (
                n["id"].as_str().unwrap().to_string(),
                n["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(seen, want, "in the log's order, each once");
    assert_eq!(
        seen.iter().filter(|s| s.1 == "awaiting-approval").count(),
        1
    );
    assert_eq!(seen.last().unwrap().1, "completed");
    assert!(seen.iter().filter(|s| s.1 == "device-failed").count() >= 2);
    let failed = got.iter().find(|n| n["kind"] == "device-failed").unwrap();
    assert_eq!(failed["rollout"], id.as_str());
    assert_eq!(failed["policy"], "approval");
    assert!(failed["device"].is_string() && failed["patch"].is_string());
    assert!(failed["reason"].is_string());
    let approval = got
        .iter()
        .find(|n| n["kind"] == "awaiting-approval")
        .unwrap();
    assert_eq!(approval["ring"], "rest");
    let ops = webhook(&doc, "ops");
    assert_eq!(ops["delivered"].as_u64().unwrap() as usize, seen.len());
    assert_eq!(
        ops["last_error"]["message"],
        "the receiver answered 503 Service Unavailable: not now"
    );
    let first = doc["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|d| d["webhook"] == "ops")
        .unwrap();
    assert_eq!(first["state"], "delivered");
    assert!(first["attempts"].as_u64().unwrap() >= 3, "{first:#}");

    // The receiver does check: a forged body is refused.
    let forged = r#"{"schema":"ringleader.notification/v1","id":"x","kind":"halted","at":"2026-11-02T08:00:00Z"}"#;
    assert!(receiver.post(forged, "sha256=00").contains("401"));
    let sha = {
        // The right signature, as a receiver computes it.
        let out = Command::new("python3")
            .args([
                "-c",
                "import hmac,hashlib,sys; print(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())",
                SECRET,
                forged,
            ])
            .output()
            .unwrap();
        text(&out.stdout).trim().to_string()
    };
    assert!(
        receiver
            .post(forged, &format!("sha256={sha}"))
            .contains("200")
    );

    // The webhook nobody answers is dropped after its tries and blocked nothing.
    let doc = until(&daemon, "the dead webhook gave up", |doc| {
        webhook(doc, "gone")["dropped"] == 1
    });
    let gone = webhook(&doc, "gone");
    assert_eq!(
        (gone["pending"].as_u64(), gone["delivered"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(gone["last_error"]["attempt"], 3);
    let dropped = doc["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["webhook"] == "gone")
        .unwrap();
    assert_eq!(
        (dropped["state"].as_str(), dropped["attempts"].as_u64()),
        (Some("dropped"), Some(3))
    );

    // People read the same log.
    let out = daemon.cli(&["notifications"]);
    let shown = text(&out.stdout);
    assert!(
        shown.contains(&format!("webhook ops -> http://127.0.0.1:{port}/hook")),
        "{shown}"
    );
    assert!(shown.contains("0 pending,"), "{shown}");

    // A restart sends nothing twice and keeps the log.
    let before = receiver.received().len();
    daemon.terminate();
    let daemon = Daemon::start_with(&data, &["--config", &config]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(receiver.received().len(), before);
    let doc = notifications(&daemon);
    // (The receiver also kept the hand-signed body above.)
    assert_eq!(
        webhook(&doc, "ops")["delivered"].as_u64().unwrap() as usize,
        seen.len()
    );
}

#[test]
fn new_patches_and_devices_not_scanned_are_notified_to_who_asks() {
    let dir = tempfile::tempdir().unwrap();
    let secret = write(dir.path(), "ops.secret", SECRET);
    let port = free_port();
    let receiver = Receiver::start(dir.path(), port, &secret, 0);
    let inventory = write(
        dir.path(),
        "fleet.toml",
        "[[devices]]\nid = \"ws-1\"\ncomponents = { openssl = \"3.0.11\" }\n",
    );
    let feed = dir.path().join("catalog.toml");
    let patch = |id: &str, severity: &str| {
        format!(
            "[[patches]]\nid = \"{id}\"\ncomponent = \"openssl\"\nfixed-version = \"3.0.16\"\nkind = \"security\"\nseverity = \"{severity}\"\nreleased = \"2026-11-20\"\ncves = [\"CVE-2026-0001\"]\n"
        )
    };
    std::fs::write(
        &feed,
        format!(
            "vendor = \"corp\"\n{}{}",
            patch("corp-crit", "critical"),
            patch("corp-low", "low")
        ),
    )
    .unwrap();
    let config = write(
        dir.path(),
        "ringleader.toml",
        &format!(
            r#"
[sources]
poll = "1s"
[plugins.catalog-source]
http = ["{{setting:catalog}}"]
settings = {{ catalog = "file://{}" }}
[notifications]
not_scanned_after = "2s"
[webhooks.ops]
url = "http://127.0.0.1:{port}/hook"
secret_file = "ops.secret"
events = ["patch-published", "device-not-scanned"]
"#,
            feed.display()
        ),
    );
    let daemon = Daemon::start_with(
        &dir.path().join("data"),
        &["--config", &config, "--source", "catalog-source"],
    );
    let out = daemon.cli(&["fleet", "scan", "--inventory", &inventory]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for _ in 0..300 {
        let kinds: Vec<Value> = receiver
            .received()
            .iter()
            .map(|n| n["kind"].clone())
            .collect();
        if kinds.contains(&"patch-published".into()) && kinds.contains(&"device-not-scanned".into())
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let got = receiver.received();
    for n in &got {
        assert_valid("notification.v1.json", n);
    }
    let published: Vec<&Value> = got
        .iter()
        .filter(|n| n["kind"] == "patch-published")
        .collect();
    // Only the critical one: the webhook asks for the default severities.
    assert_eq!(published.len(), 1, "{got:#?}");
    let p = published[0];
    assert_eq!(p["patch"], "corp-crit");
    assert_eq!(p["severity"], "critical");
    assert_eq!(p["source"], "catalog-source");
    assert_eq!(p["id"], "patch-corp-crit-1");
    assert_eq!(p["reason"], "new");
    let stale: Vec<&Value> = got
        .iter()
        .filter(|n| n["kind"] == "device-not-scanned")
        .collect();
    assert_eq!(stale.len(), 1, "once until scanned again: {got:#?}");
    assert_eq!(stale[0]["device"], "ws-1");
    assert!(stale[0]["last_scan"].is_string());
    assert!(
        stale[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("not scanned for "),
        "{}",
        stale[0]
    );
}
