//! What the binary's process tests share (`host/ringleader/tests/it/`): a daemon on a
//! loopback port and its clients, JSON schema checks, paths in the repository.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// The `ringleader` binary under test, as Cargo built it for the binary's own tests.
///
/// Only the `ringleader` package's test targets know where Cargo put its binary: Cargo
/// sets `CARGO_BIN_EXE_ringleader` when it compiles them and in their environment when
/// it runs them, which is what this library (compiled once for every user) reads. To
/// run a test binary by hand, set it to the binary (`target/debug/ringleader`).
pub fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("CARGO_BIN_EXE_ringleader").expect(
            "CARGO_BIN_EXE_ringleader names the binary under test: run the tests with \
             `cargo test -p ringleader`, or set it to target/debug/ringleader",
        )
    })
}

/// A daemon on a free loopback port, killed when dropped.
#[derive(Debug)]
pub struct Daemon {
    pub child: Option<Child>,
    pub url: String,
    pub data: PathBuf,
    /// What the daemon has written to stderr so far, a line each.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    pub fn start(data: &Path) -> Daemon {
        Daemon::start_with(data, &[])
    }

    /// A daemon with more `serve` arguments (plugins, a config).
    pub fn start_with(data: &Path, args: &[&str]) -> Daemon {
        Daemon::start_in(Command::new(bin()), data, args)
    }

    /// A daemon run by `command` (`prlimit ... ringleader`, say): `serve` and its arguments
    /// are added to it.
    pub fn start_in(mut command: Command, data: &Path, args: &[&str]) -> Daemon {
        let mut child = command
            .args(["serve", "--data"])
            .arg(data)
            .args(["--listen", "127.0.0.1:0", "--shutdown-grace", "5s"])
            .args(args)
            .env(
                "RINGLEADER_LOG",
                std::env::var("SHOW_DAEMON_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the daemon");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let kept = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            // SHOW_DAEMON_LOG=1 shows what the daemon logs, to debug a test.
            let show = std::env::var_os("SHOW_DAEMON_LOG").is_some();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if show {
                    eprintln!("daemon: {line}");
                }
                kept.lock().unwrap().push(line.clone());
                if let Some(addr) = line.split("listening on ").nth(1)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the daemon says where it listens");
        Daemon {
            child: Some(child),
            url,
            data: data.to_owned(),
            log,
        }
    }

    /// What the daemon has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The daemon's `host:port`.
    pub fn addr(&self) -> String {
        self.url.split("://").nth(1).unwrap().to_string()
    }

    /// Sends `request` as it is on a new connection and returns all the daemon answers
    /// until it closes the connection (the request should say `Connection: close`).
    pub fn raw(&self, request: &[u8]) -> String {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(self.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream.write_all(request).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        text(&answer)
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data.join("api-token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Runs a client command against this daemon, with the token.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_as(args, Some(&self.token()))
    }

    pub fn cli_as(&self, args: &[&str], token: Option<&str>) -> Output {
        let mut command = Command::new(bin());
        command
            .args(args)
            .env("RINGLEADER_URL", &self.url)
            .env("RINGLEADER_LOG", "error")
            .env_remove("RINGLEADER_TOKEN");
        if let Some(token) = token {
            command.env("RINGLEADER_TOKEN", token);
        }
        command.output().expect("run ringleader")
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.cli(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// Sends the daemon a signal (`TERM`, `HUP`, ...).
    pub fn signal(&self, name: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{name} {pid}");
    }

    /// Sends SIGTERM and waits for the daemon to exit; returns its status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        let mut child = self.child.take().unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the daemon did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls the rollout's status until `done` says so.
    pub fn wait_for(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let status = self.json(&["status", id, "--json"]);
            if done(&status) {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "rollout {id} never got there: {status}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `rollout start --policy POLICY --inventory INVENTORY`; the new rollout's id.
    pub fn start_rollout(&self, policy: &str, inventory: &str) -> String {
        let out = self.cli(&[
            "rollout",
            "start",
            "--policy",
            policy,
            "--inventory",
            inventory,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    }

    /// Waits for the rollout to end with exit code `code` (0 completed, 3 halted); its
    /// status, validated against its schema.
    pub fn ended(&self, id: &str, code: i32) -> Value {
        let out = self.cli(&["status", id, "--wait", "--json"]);
        assert_eq!(out.status.code(), Some(code), "{}", text(&out.stdout));
        let status: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_valid("status.v1.json", &status);
        status
    }

    /// `devices ID --json`, validated against its schema.
    pub fn devices(&self, id: &str) -> Value {
        let devices = self.json(&["devices", id, "--json"]);
        assert_valid("devices.v1.json", &devices);
        devices
    }

    /// `events ID --json`, each event validated against its schema.
    pub fn events(&self, id: &str) -> Vec<Value> {
        let out = self.cli(&["events", id, "--json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .map(|l| {
                let event: Value = serde_json::from_str(l).unwrap();
                assert_valid("event.v1.json", &event);
                event
            })
            .collect()
    }

    /// A raw HTTP request; returns status and JSON body.
    pub fn http(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = agent
            .run(request.body(body.as_bytes().to_vec()).unwrap())
            .unwrap();
        let status = response.status().as_u16();
        let mut text = String::new();
        response
            .into_body()
            .into_reader()
            .read_to_string(&mut text)
            .unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The device `id` in a `devices --json` document.
pub fn device_in<'a>(devices: &'a Value, id: &str) -> &'a Value {
    devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {devices}"))
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn schema(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/schemas")
        .join(name);
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("schema compiles")
}

/// A policy of two rings, the second of which waits for an operator's approval: what
/// the daemon's tests approve, pause and audit.
pub const APPROVAL: &str = r#"
name = "approval"
[[rings]]
name = "lab"
select = { tags = ["lab"] }
[[rings]]
name = "rest"
select = "rest"
approval = "required"
max_failures = "20%"
"#;

pub fn assert_valid(name: &str, doc: &Value) {
    let validator = schema(name);
    let errors: Vec<String> = validator.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "{name}: {doc}\nschema errors: {errors:#?}"
    );
}

/// `path` in the repository, as a string for a command line.
pub fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
        .display()
        .to_string()
}
