//! The daemon's API and its authorization, in-process: requests go straight to the
//! router (`serve::api::router`) of a daemon's state opened on a temporary data
//! directory, with no listener and no process. What needs real connections (TLS,
//! timeouts, the connection cap, signals) is tested through the binary
//! (`host/ringleader/tests/it/serve.rs`, `storage.rs`).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use ringleader_daemon::plugins::Chosen;
use ringleader_daemon::serve::api::{self, Limits, State};
use ringleader_daemon::serve::auth::{self, Tokens};
use ringleader_daemon::serve::rollouts::Rollouts;
use ringleader_daemon::session::Session;
use ringleader_runtime::OperatorConfig;
use ringleader_runtime::services::MemoryKv;
use ringleader_runtime::sim_device::SimDevices;
use ringleader_tests::daemon::{APPROVAL, assert_valid};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_service::Service;

/// A daemon's state without its listener: the router, its token, its data directory.
struct Api {
    router: axum::Router,
    token: String,
    rollouts: Arc<Rollouts>,
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
}

impl Api {
    /// The daemon's state over a new data directory; `beyond_loopback`: as when it
    /// listens beyond loopback (reads need the token too).
    fn open(beyond_loopback: bool) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let tokens = Tokens::load_or_create(&data).unwrap();
        let token = std::fs::read_to_string(tokens.path())
            .unwrap()
            .trim()
            .to_string();
        let session = Session::new(
            Chosen::simulated(),
            &OperatorConfig::default(),
            Arc::new(SimDevices::in_memory()),
            Arc::new(MemoryKv::default()),
        )
        .unwrap();
        let rollouts = Rollouts::open(&data, session).unwrap();
        let limits = Limits {
            start_body: 1 << 20,
            body_timeout: Duration::from_secs(30),
            event_streams: 4,
            sse_keep_alive: Duration::from_secs(15),
        };
        let state = State::new(rollouts.clone(), tokens, beyond_loopback, limits);
        Api {
            router: api::router(state),
            token,
            rollouts,
            _dir: dir,
            data,
        }
    }

    /// One request; its status and body (JSON, or `Value::Null` when empty).
    async fn call(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: &str,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(a) = authorization {
            request = request.header("authorization", a);
        }
        if !body.is_empty() {
            request = request.header("content-type", "application/json");
        }
        let request = request.body(Body::from(body.to_string())).unwrap();
        let response = self.router.clone().call(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{method} {path}: body is not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        (status, body)
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// Starts a simulated fleet of `devices` in virtual time; returns its id.
    async fn start(&self, devices: u32) -> String {
        let body = json!({
            "policy": {"name": "approval.toml", "text": APPROVAL},
            "simulated": {"devices": devices},
            "clock": "virtual",
            "start": "2026-11-02T08:00:00Z",
        });
        let (code, body) = self
            .call(
                "POST",
                "/v1/rollouts",
                Some(&self.bearer()),
                &body.to_string(),
            )
            .await;
        // Created: the answer is the new rollout's status.
        assert_eq!(code, StatusCode::CREATED, "{body}");
        assert_valid("status.v1.json", &body);
        body["id"].as_str().unwrap().to_string()
    }

    /// The rollout's status once `done` holds (at most a minute).
    async fn wait_for(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let (code, status) = self
                .call("GET", &format!("/v1/rollouts/{id}"), None, "")
                .await;
            assert_eq!(code, StatusCode::OK, "{status}");
            if done(&status) {
                assert_valid("status.v1.json", &status);
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "rollout {id} never got there: {status}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The rollout's log as the events page shows it.
    async fn events(&self, id: &str) -> Vec<Value> {
        let (code, page) = self
            .call("GET", &format!("/v1/rollouts/{id}/events"), None, "")
            .await;
        assert_eq!(code, StatusCode::OK, "{page}");
        assert_valid("events.v1.json", &page);
        page["events"].as_array().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_need_the_token_reads_on_loopback_do_not_and_changes_are_audited_by_name() {
    let api = Api::open(false);
    let id = api.start(40).await;
    assert_eq!(id, "r1");
    api.wait_for(&id, |s| s["state"] == "awaiting-approval")
        .await;

    let approve = format!("/v1/rollouts/{id}/approve");
    for authorization in [
        None,
        Some("Bearer wrong".to_string()),
        // Two spaces: no token at all, not trimmed into a good one.
        Some(format!("Bearer  {}", api.token)),
        // The token without its scheme.
        Some(api.token.clone()),
    ] {
        let (code, body) = api
            .call("POST", &approve, authorization.as_deref(), "")
            .await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{authorization:?}: {body}");
        assert_valid("error.v1.json", &body);
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("Authorization: Bearer"),
            "{body}"
        );
    }
    // Nothing was approved by the refused requests.
    let (_, status) = api
        .call("GET", &format!("/v1/rollouts/{id}"), None, "")
        .await;
    assert_eq!(status["state"], "awaiting-approval", "{status}");

    // A named token is accepted and the audit entry names it; the main token is
    // `api-token`.
    let file = auth::create_named(&api.data, "alice").unwrap();
    let alice = std::fs::read_to_string(file).unwrap().trim().to_string();
    let (code, body) = api
        .call("POST", &approve, Some(&format!("Bearer {alice}")), "")
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let done = api.wait_for(&id, |s| s["state"] == "completed").await;
    assert_eq!(done["state"], "completed");
    let events = api.events(&id).await;
    assert_eq!(events[0]["type"], "audit", "{}", events[0]);
    assert_eq!(events[0]["action"], "start");
    assert_eq!(events[0]["by"], "api-token");
    let audit = events
        .iter()
        .position(|e| e["type"] == "audit" && e["action"] == "approve")
        .expect("an audit entry for the approval");
    assert_eq!(events[audit]["by"], "alice");
    assert_eq!(events[audit + 1]["type"], "approve");

    // Revoked: refused from the next request on, without a restart.
    auth::revoke_named(&api.data, "alice").unwrap();
    let (code, _) = api
        .call(
            "POST",
            &format!("/v1/rollouts/{id}/pause"),
            Some(&format!("Bearer {alice}")),
            "",
        )
        .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    api.rollouts.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_reads_need_the_token_too() {
    let api = Api::open(true);
    for path in ["/v1/rollouts", "/v1/rollouts/r1", "/metrics"] {
        let (code, body) = api.call("GET", path, None, "").await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert_valid("error.v1.json", &body);
    }
    let (code, body) = api
        .call("GET", "/v1/rollouts", Some(&api.bearer()), "")
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_valid("rollouts.v1.json", &body);
    // The health check answers anyone (a load balancer has no token).
    let (code, body) = api.call("GET", "/healthz", None, "").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_valid("health.v1.json", &body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_json_errors_naming_what_is_wrong() {
    let api = Api::open(false);
    let token = api.bearer();
    let (code, body) = api.call("GET", "/v1/rollouts/r99", None, "").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_valid("error.v1.json", &body);
    assert!(body["error"].as_str().unwrap().contains("r99"), "{body}");

    // The body's problems name the field, and a policy's its file and line.
    let cases = [
        (r#"{"policy": 3}"#, "policy", None),
        (
            r#"{"policy": {"name": "p.toml", "text": "name = \"p\"\n[[rings]]\nname = 5\n"}, "simulated": {"devices": 10}}"#,
            "policy",
            Some("p.toml:3"),
        ),
        (
            r#"{"policy": {"name": "p.toml", "text": ""}, "simulated": {"devices": 10}, "clock": "sundial"}"#,
            "clock",
            Some("sundial"),
        ),
    ];
    for (request, field, says) in cases {
        let (code, body) = api
            .call("POST", "/v1/rollouts", Some(&token), request)
            .await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{request}: {body}");
        assert_valid("error.v1.json", &body);
        assert_eq!(body["field"], field, "{request}: {body}");
        if let Some(says) = says {
            assert!(
                body["error"].as_str().unwrap().contains(says),
                "{request}: {body}"
            );
        }
    }
    // Not JSON at all.
    let (code, body) = api.call("POST", "/v1/rollouts", Some(&token), "{").await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert_valid("error.v1.json", &body);

    // Unknown actions, routes and methods: JSON errors too.
    let (code, body) = api
        .call("POST", "/v1/rollouts/r1/reboot", Some(&token), "")
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    assert_valid("error.v1.json", &body);
    let (code, body) = api.call("GET", "/v2/anything", None, "").await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    assert_valid("error.v1.json", &body);
    let (code, body) = api.call("DELETE", "/v1/rollouts", Some(&token), "").await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_valid("error.v1.json", &body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_ids_are_read_exactly() {
    let api = Api::open(false);
    let id = api.start(20).await;
    api.wait_for(&id, |s| s["state"] == "awaiting-approval")
        .await;
    // Ids are exactly `r` and digits without a leading zero.
    for other in ["r01", "r+1", "R1", "r1x", "r"] {
        let (code, body) = api
            .call(
                "POST",
                &format!("/v1/rollouts/{other}/pause"),
                Some(&api.bearer()),
                "",
            )
            .await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{other}: {body}");
        let (code, _) = api
            .call("GET", &format!("/v1/rollouts/{other}"), None, "")
            .await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{other}");
    }
    let (_, status) = api.call("GET", "/v1/rollouts/r1", None, "").await;
    assert_eq!(status["paused"], false, "{status}");
    let (code, body) = api
        .call("POST", "/v1/rollouts/r1/pause", Some(&api.bearer()), "")
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    // The devices page and one device's page are the published documents.
    let (code, devices) = api.call("GET", "/v1/rollouts/r1/devices", None, "").await;
    assert_eq!(code, StatusCode::OK, "{devices}");
    assert_valid("devices.v1.json", &devices);
    let first = devices["devices"][0]["id"].as_str().unwrap().to_string();
    let (code, device) = api
        .call("GET", &format!("/v1/rollouts/r1/devices/{first}"), None, "")
        .await;
    assert_eq!(code, StatusCode::OK, "{device}");
    assert_valid("device.v1.json", &device);
    let (code, _) = api
        .call("GET", "/v1/rollouts/r1/devices/no-such-device", None, "")
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    api.rollouts.shutdown(Duration::from_secs(5)).await;
}
