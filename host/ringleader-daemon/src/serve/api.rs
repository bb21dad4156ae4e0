//! The HTTP API (documented in `docs/api/openapi.yaml`). Every JSON object it sends has
//! a `schema` key; the JSON Schemas are in `docs/schemas/`.

use super::auth::Tokens;
use super::rollouts::{Clock, Fleet, Inputs, Rollout, Rollouts, Unreadable};
use axum::Router;
use axum::extract::{Path, Query, State as Extract};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use jiff::Timestamp;
use ringleader_api::Schema;
use ringleader_api::device::{DeviceHistoryV1, DeviceState, DeviceV1, DevicesV1};
use ringleader_api::error::ErrorV1;
use ringleader_api::event::{EventKind, EventV1, EventsV1, StallV1};
use ringleader_api::rollout::{
    AcceptedV1, Action, Gate, Health, HealthV1, ProblemState, ProblemV1, RingV1, RolloutState,
    RolloutsV1, StartV1, StatusV1, WaitingV1,
};
use ringleader_engine::core::{JobId, JobState, Phase};
use ringleader_engine::executor::{Command, PLUGIN_CALL_BUCKETS};
use ringleader_engine::store::{Note, PhaseName, Record, Status, StoredEvent};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct State {
    rollouts: Arc<Rollouts>,
    tokens: Arc<Tokens>,
    /// Listening beyond loopback: reads need the token too.
    reads_need_token: bool,
    limits: Limits,
    /// One permit per event stream (SSE) that may be open.
    streams: Arc<tokio::sync::Semaphore>,
}

/// The API's limits, from `serve`'s options.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most bytes of a rollout start's body (policy and inventory, as JSON):
    /// `--max-inventory-size`.
    pub start_body: usize,
    /// How long a request body may stop arriving: `--body-timeout`.
    pub body_timeout: Duration,
    /// Most event streams open at once: `--max-event-streams`.
    pub event_streams: usize,
    /// How often an idle event stream gets a keep-alive comment: `--sse-keep-alive`.
    pub sse_keep_alive: Duration,
}

/// Most bytes of any other request's body. No other request needs one; this is
/// axum's default, kept explicit.
pub const BODY_LIMIT: usize = 2 << 20;

/// Most bytes of an oversized rollout start read (and dropped) to answer it with a 413
/// the client can read, rather than a reset connection; a client sending more is cut
/// off.
const DRAIN_LIMIT: u64 = 1 << 30;

impl State {
    pub fn new(
        rollouts: Arc<Rollouts>,
        tokens: Tokens,
        reads_need_token: bool,
        limits: Limits,
    ) -> State {
        State {
            rollouts,
            tokens: Arc::new(tokens),
            reads_need_token,
            streams: Arc::new(tokio::sync::Semaphore::new(limits.event_streams)),
            limits,
        }
    }
}

pub fn router(state: State) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/rollouts", get(list).post(start))
        .route("/v1/rollouts/{id}", get(status))
        .route("/v1/rollouts/{id}/devices", get(devices))
        .route("/v1/rollouts/{id}/devices/{device}", get(device))
        .route("/v1/rollouts/{id}/explain/{device}", get(explain))
        .route("/v1/rollouts/{id}/events", get(events))
        .route("/v1/rollouts/{id}/events/stream", get(stream))
        .route("/v1/rollouts/{id}/{action}", post(act))
        .route("/v1/fleet", get(fleet_list))
        .route("/v1/fleet/scan", post(fleet_scan))
        .route("/v1/fleet/devices/{id}", get(fleet_device))
        .route("/v1/compliance", get(compliance))
        .route("/v1/publications", get(publications))
        .route("/v1/notifications", get(notifications))
        .route("/v1/schedules/runs", get(schedule_runs))
        .route("/v1/reports/time-to-patch", get(time_to_patch))
        .fallback(no_route)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(json_errors))
        .with_state(state)
}

/// 404 for a path the API does not have.
async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> Failure {
    failure(
        StatusCode::NOT_FOUND,
        format!(
            "the API has no `{method} {}`; its routes are in docs/api/openapi.yaml",
            uri.path()
        ),
        None,
    )
}

/// Most bytes of an error's text body read to put it in a JSON error.
const ERROR_TEXT_LIMIT: usize = 16 << 10;

/// Every error the API sends is `ringleader.error/v1`: an error response that is not
/// JSON (axum's rejections of a path, query, header or body, 405 for a method a route
/// does not have, 413, a bare status) is answered with its status, its headers (`Allow`
/// of a 405) and its text as the `error`.
async fn json_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let response = next.run(request).await;
    let code = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(code.is_client_error() || code.is_server_error()) || json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, ERROR_TEXT_LIMIT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let error = match code {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none");
            format!("`{path}` does not take {method} (it takes: {allowed})")
        }
        _ if text.is_empty() => format!(
            "{method} {path}: {}",
            code.canonical_reason().unwrap_or("error")
        ),
        _ => format!("{method} {path}: {text}"),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    let (_, Json(body)) = failure(code, error, None);
    (parts, Json(body)).into_response()
}

/// An error answer: its status and `ringleader.error/v1`.
type Failure = (StatusCode, Json<ErrorV1>);

fn failure(code: StatusCode, error: impl Into<String>, field: Option<&str>) -> Failure {
    (code, Json(ErrorV1::new(error, field)))
}

/// A document as the API has always sent the pages it built as a `serde_json::Value`:
/// with the keys of every object sorted (serde_json's map sorts them), kept so byte for
/// byte. Documents sent as they are (`status`, `error`, an event on the stream) keep
/// their fields' order.
fn sorted_json(doc: &impl Serialize) -> Result<Json<serde_json::Value>, Failure> {
    serde_json::to_value(doc)
        .map(Json)
        .map_err(|e| failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None))
}

/// Who asks: what a handler needs to authorize a request and to log a refusal.
#[derive(Debug)]
struct Caller {
    /// The `Authorization` header, when there is one (a value that is not text counts
    /// as a wrong token).
    authorization: Option<Result<String, ()>>,
    /// The peer's address, when the server knows it.
    peer: Option<std::net::SocketAddr>,
    method: axum::http::Method,
    path: String,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Caller, Infallible> {
        Ok(Caller {
            authorization: parts
                .headers
                .get(header::AUTHORIZATION)
                .map(|v| v.to_str().map(str::to_string).map_err(|_| ())),
            peer: parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0),
            method: parts.method.clone(),
            path: parts.uri.path().to_string(),
        })
    }
}

/// Checks the request's token when it needs one; the token's name (for the audit log)
/// when it carries a good one. A refusal is logged (warn) with the peer's address and
/// the request, never with what the header held.
fn authorize(state: &State, caller: &Caller, mutation: bool) -> Result<Option<String>, Failure> {
    if !mutation && !state.reads_need_token {
        return Ok(None);
    }
    let given = match &caller.authorization {
        Some(Ok(value)) => Some(value.as_str()),
        Some(Err(())) | None => None,
    };
    if let Some(name) = state.tokens.accepts(given) {
        return Ok(Some(name));
    }
    let peer = caller
        .peer
        .map_or_else(|| "an unknown peer".to_string(), |p| p.to_string());
    tracing::warn!(
        "refused {} {} from {peer}: {}",
        caller.method,
        caller.path,
        if caller.authorization.is_none() {
            "no API token"
        } else {
            "a wrong or revoked API token (or not `Bearer TOKEN`)"
        }
    );
    let why = if caller.authorization.is_none() {
        "this request needs an API token: send `Authorization: Bearer TOKEN` (the daemon's own is in DATA/api-token; `ringleader token new NAME` makes a named one)"
    } else {
        "the API token is wrong or revoked: send exactly `Authorization: Bearer TOKEN` with the one in the daemon's DATA/api-token or a named one in DATA/tokens/"
    };
    Err(failure(StatusCode::UNAUTHORIZED, why, None))
}

/// Who a change is logged as: the name of the token it came with.
fn actor(name: Option<String>) -> String {
    name.unwrap_or_else(|| "unknown".into())
}

fn find(state: &State, id: &str) -> Result<Arc<Rollout>, Failure> {
    if let Some(u) = state.rollouts.unreadable(id) {
        return Err(failure(
            StatusCode::CONFLICT,
            format!(
                "rollout {id} is unreadable ({}); its files in {} are left as they are: restore them from a backup, or move the directory aside",
                u.error,
                u.path.display()
            ),
            None,
        ));
    }
    state.rollouts.get(id).ok_or_else(|| {
        failure(
            StatusCode::NOT_FOUND,
            format!("no rollout with id `{id}`; `ringleader status` lists them"),
            None,
        )
    })
}

/// `ok`, or `degraded` with the problems listed: rollouts whose log cannot be written
/// (stalled) or whose store cannot be read. Always 200: the daemon answers.
async fn healthz(Extract(state): Extract<State>) -> Result<Json<serde_json::Value>, Failure> {
    let rollouts = state.rollouts.list();
    let mut problems = Vec::new();
    for rollout in &rollouts {
        let live = rollout.live.read().unwrap_or_else(|e| e.into_inner());
        if let Some(reason) = &live.stalled {
            problems.push(ProblemV1 {
                rollout: rollout.id.clone(),
                state: ProblemState::Stalled,
                error: reason.clone(),
            });
        }
    }
    for u in state.rollouts.list_unreadable() {
        problems.push(ProblemV1 {
            rollout: u.id,
            state: ProblemState::Unreadable,
            error: u.error,
        });
    }
    sorted_json(&HealthV1 {
        schema: Schema::new(),
        status: if problems.is_empty() {
            Health::Ok
        } else {
            Health::Degraded
        },
        rollouts: rollouts.len(),
        problems,
    })
}

/// The API's state of a rollout in the core's `phase`.
pub fn rollout_state(phase: PhaseName) -> RolloutState {
    match phase {
        PhaseName::Running => RolloutState::Running,
        PhaseName::Soaking => RolloutState::Soaking,
        PhaseName::AwaitingApproval => RolloutState::AwaitingApproval,
        PhaseName::Halted => RolloutState::Halted,
        PhaseName::Completed => RolloutState::Completed,
        PhaseName::Aborted => RolloutState::Aborted,
    }
}

fn status_of(rollout: &Rollout) -> StatusV1 {
    let live = rollout
        .live
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let status: Option<&Status> = live.status.as_ref();
    let ring_name = |r: Option<u16>| {
        r.and_then(|r| status.and_then(|s| s.rings.get(usize::from(r))))
            .map(|ring| ring.name.clone())
    };
    let state = match status {
        _ if live.error.is_some() => RolloutState::Failed,
        _ if live.stalled.is_some() => RolloutState::Stalled,
        None => RolloutState::Preparing,
        Some(_) if live.preparing => RolloutState::Preparing,
        Some(s) if rollout.is_running() || live.ended => rollout_state(s.phase),
        Some(s) if s.phase.is_final() => rollout_state(s.phase),
        // Not ended and no executor: the daemon is stopping.
        Some(_) => RolloutState::Stopped,
    };
    let waiting = status.and_then(|s| {
        let ring = ring_name(s.ring);
        if live.ended {
            return None;
        }
        if s.paused {
            return Some(WaitingV1 {
                for_: Gate::Resume,
                ring,
                until: None,
            });
        }
        match s.phase {
            PhaseName::AwaitingApproval => Some(WaitingV1 {
                for_: Gate::Approval,
                ring,
                until: None,
            }),
            PhaseName::Soaking => Some(WaitingV1 {
                for_: Gate::Soak,
                ring,
                until: s.until.and_then(|t| Timestamp::from_second(t).ok()),
            }),
            PhaseName::Running => {
                let r = s.ring.and_then(|r| s.rings.get(usize::from(r)))?;
                (r.active == 0 && r.pending > 0).then_some(WaitingV1 {
                    for_: Gate::Window,
                    ring,
                    until: None,
                })
            }
            _ => None,
        }
    });
    StatusV1 {
        schema: Schema::new(),
        id: rollout.id.clone(),
        policy: Some(rollout.policy.clone()),
        clock: Some(match rollout.inputs.clock {
            Clock::Real => ringleader_api::rollout::Clock::Real,
            Clock::Virtual { .. } => ringleader_api::rollout::Clock::Virtual,
        }),
        started: Some(rollout.inputs.start),
        ended: live.ended || live.error.is_some(),
        paused: status.is_some_and(|s| s.paused),
        ring: status.and_then(|s| ring_name(s.ring)),
        waiting,
        halt_reason: status.and_then(|s| s.halt_reason.clone()),
        error: live.error.clone().or_else(|| live.stalled.clone()),
        time: status.and_then(|s| Timestamp::from_second(s.at).ok()),
        rings: status
            .map(|s| {
                s.rings
                    .iter()
                    .map(|r| RingV1 {
                        name: r.name.clone(),
                        devices: r.devices,
                        pending: r.pending,
                        active: r.active,
                        done: r.done,
                        failed: r.failed,
                        rolling_back: r.rolling_back,
                        rolled_back: r.rolled_back,
                        rollback_failed: r.rollback_failed,
                        rebooting: r.rebooting,
                        reboots: r.reboots,
                        reboot_pending: r.reboot_pending,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        cursor: rollout.store.committed_len(),
        state,
    }
}

/// The status of a rollout whose store cannot be read.
fn unreadable_status(u: &Unreadable) -> StatusV1 {
    StatusV1 {
        schema: Schema::new(),
        id: u.id.clone(),
        policy: None,
        clock: None,
        started: None,
        state: RolloutState::Unreadable,
        ended: true,
        paused: false,
        ring: None,
        waiting: None,
        halt_reason: None,
        error: Some(format!(
            "{} (its files in {} are left as they are)",
            u.error,
            u.path.display()
        )),
        time: None,
        rings: Vec::new(),
        cursor: 0,
    }
}

async fn list(Extract(state): Extract<State>, caller: Caller) -> Result<Response, Failure> {
    authorize(&state, &caller, false)?;
    let mut rollouts: Vec<(u64, StatusV1)> = state
        .rollouts
        .list()
        .iter()
        .map(|r| status_of(r))
        .chain(
            state
                .rollouts
                .list_unreadable()
                .iter()
                .map(unreadable_status),
        )
        .map(|s| (s.id[1..].parse().unwrap_or(u64::MAX), s))
        .collect();
    rollouts.sort_by_key(|(n, _)| *n);
    let rollouts: Vec<StatusV1> = rollouts.into_iter().map(|(_, s)| s).collect();
    Ok(sorted_json(&RolloutsV1 {
        schema: Schema::new(),
        rollouts,
    })?
    .into_response())
}

async fn status(
    Extract(state): Extract<State>,
    Path(id): Path<String>,
    caller: Caller,
) -> Result<Json<StatusV1>, Failure> {
    authorize(&state, &caller, false)?;
    if let Some(u) = state.rollouts.unreadable(&id) {
        return Ok(Json(unreadable_status(&u)));
    }
    let rollout = find(&state, &id)?;
    Ok(Json(status_of(&rollout)))
}

/// Most simulated devices one rollout may have.
const MAX_SIMULATED_DEVICES: usize = 1_000_000;

/// Reads a rollout start's body, at most `limit` bytes. A larger one is read to its end
/// (up to [`DRAIN_LIMIT`]) and dropped, so the client can read the 413 that names the
/// limit and the option raising it.
async fn read_start(body: axum::body::Body, limits: &Limits) -> Result<Vec<u8>, Failure> {
    use futures_util::StreamExt;
    let limit = limits.start_body;
    let mut chunks = body.into_data_stream();
    let mut kept = Vec::new();
    let mut seen: u64 = 0;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| body_failure(e, limits))?;
        seen += chunk.len() as u64;
        if seen <= limit as u64 {
            kept.extend_from_slice(&chunk);
        } else {
            kept = Vec::new();
            if seen > DRAIN_LIMIT {
                break;
            }
        }
    }
    if seen > limit as u64 {
        return Err(failure(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the rollout start is over {limit} bytes (policy and inventory, as JSON; about 270 bytes a device), the most this daemon takes: start it with a larger `--max-inventory-size` (`ringleader serve --max-inventory-size 256MiB`)"
            ),
            Some("inventory"),
        ));
    }
    Ok(kept)
}

/// A request body that could not be read: it stopped arriving (408), or broke off.
fn body_failure(e: axum::Error, limits: &Limits) -> Failure {
    let e = e.into_inner();
    if e.is::<tower_http::timeout::TimeoutError>() {
        failure(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body stopped arriving for {:?} (`ringleader serve --body-timeout`)",
                limits.body_timeout
            ),
            None,
        )
    } else {
        failure(
            StatusCode::BAD_REQUEST,
            format!("failed to read the request body: {e}"),
            None,
        )
    }
}

async fn start(
    Extract(state): Extract<State>,
    caller: Caller,
    body: axum::body::Body,
) -> Result<Response, Failure> {
    let by = actor(authorize(&state, &caller, true)?);
    let body = read_start(body, &state.limits).await?;
    let mut json = serde_json::Deserializer::from_slice(&body);
    let request: StartV1 = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let field = e.path().to_string();
        failure(
            StatusCode::BAD_REQUEST,
            format!(
                "the request body is not a valid rollout start: {} (at `{field}`)",
                e.inner()
            ),
            Some(&field),
        )
    })?;
    let fleet = match (request.inventory, request.simulated) {
        (Some(file), None) => Fleet::Inventory {
            name: file.name,
            text: file.text,
        },
        (None, Some(sim)) => {
            if sim.devices == 0 || sim.devices > MAX_SIMULATED_DEVICES {
                return Err(failure(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "a simulated fleet has 1 to {MAX_SIMULATED_DEVICES} devices, not {}",
                        sim.devices
                    ),
                    Some("simulated.devices"),
                ));
            }
            Fleet::Simulated {
                devices: sim.devices,
                seed: sim.seed,
                fail_permille: sim.fail_permille,
                hang_permille: sim.hang_permille,
            }
        }
        _ => {
            return Err(failure(
                StatusCode::BAD_REQUEST,
                "give exactly one of `inventory` (a file) and `simulated` (a simulated fleet)",
                Some("inventory"),
            ));
        }
    };
    let named = request
        .clock
        .as_deref()
        .map(|c| (c, ringleader_api::rollout::Clock::from_name(c)));
    let clock = match named {
        None | Some((_, Some(ringleader_api::rollout::Clock::Real))) => Clock::Real,
        Some((_, Some(ringleader_api::rollout::Clock::Virtual))) => Clock::Virtual {
            seed: request.seed.unwrap_or(1),
            // The simulated fleet's (`--hang-permille`), as the demo's.
            hang_permille: match &fleet {
                Fleet::Simulated { hang_permille, .. } => *hang_permille,
                Fleet::Inventory { .. } => 1,
            },
        },
        Some((other, None)) => {
            return Err(failure(
                StatusCode::BAD_REQUEST,
                format!("`clock` is `real` or `virtual`, not `{other}`"),
                Some("clock"),
            ));
        }
    };
    let start = match request.start.as_deref() {
        None => super::now(),
        Some(_) if clock == Clock::Real => {
            return Err(failure(
                StatusCode::BAD_REQUEST,
                "`start` is for virtual-clock rollouts; a real-clock rollout starts now",
                Some("start"),
            ));
        }
        Some(text) => text.parse().map_err(|e| {
            failure(
                StatusCode::BAD_REQUEST,
                format!("`start` is not an RFC 3339 time: {e}"),
                Some("start"),
            )
        })?,
    };
    let inputs = Inputs {
        policy_name: request.policy.name,
        policy: request.policy.text,
        fleet,
        clock,
        start,
        observed: Default::default(),
        patches: None,
    };
    // A large inventory takes a while to parse: not on the threads serving requests.
    let (mut inputs, checked) = tokio::task::spawn_blocking(move || {
        let checked = inputs.validate();
        (inputs, checked)
    })
    .await
    .map_err(|e| failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None))?;
    match checked {
        Err(problems) => {
            let field = if problems.contains(&inputs.policy_name) {
                "policy"
            } else {
                "inventory"
            };
            return Err(failure(StatusCode::BAD_REQUEST, problems, Some(field)));
        }
        Ok((_, inventory)) => {
            if let Err(problem) = state.rollouts.check_devices(&inventory) {
                return Err(failure(StatusCode::BAD_REQUEST, problem, Some("inventory")));
            }
            // Every device of every inventory is in the fleet registry; the rollout
            // plans with what the last scans found where there are scans.
            if let Fleet::Inventory { name, text } = &inputs.fleet {
                let registered = state
                    .rollouts
                    .fleet()
                    .register(name, text, &inventory)
                    .map_err(anyhow::Error::from)
                    .and_then(|()| state.rollouts.observed(&inventory));
                match registered {
                    Ok(observed) => inputs.observed = observed,
                    Err(e) => {
                        return Err(failure(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            format!("failed to read the fleet registry: {e:#}"),
                            None,
                        ));
                    }
                }
            }
        }
    }
    let rollout = state.rollouts.start(inputs, &by).map_err(|e| {
        failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to create the rollout: {e:#}"),
            None,
        )
    })?;
    Ok((StatusCode::CREATED, Json(status_of(&rollout))).into_response())
}

/// The scope of a `rollback` or `retry`: a ring by name, a device by id.
#[derive(Debug, Default, Deserialize)]
struct ActQuery {
    ring: Option<String>,
    device: Option<String>,
}

/// What a rollback or retry would act on in `core`, or why nothing (the API's 409).
fn scope_check(
    core: &ringleader_engine::core::Core,
    action: Action,
    ring: Option<&str>,
    job: Option<JobId>,
) -> Result<(Option<u16>, Option<JobId>), String> {
    let ring_index = match ring {
        None => None,
        Some(name) => match core.spec().rings.iter().position(|r| r.name == name) {
            Some(i) => Some(i as u16),
            None => {
                let names: Vec<&str> = core.spec().rings.iter().map(|r| r.name.as_str()).collect();
                return Err(format!(
                    "the rollout has no ring `{name}` (its rings: {})",
                    names.join(", ")
                ));
            }
        },
    };
    if let (Some(r), Some(j)) = (ring_index, job)
        && r != j.ring
    {
        return Err("the device is not in that ring".into());
    }
    match action {
        Action::Rollback => {
            if matches!(core.phase(), Phase::Completed | Phase::Aborted) {
                return Err(
                    "the rollout is over (completed or aborted): nothing to roll back".into(),
                );
            }
            if core.rollback_candidates(ring_index, job).is_empty() {
                let what = match (ring, job) {
                    (_, Some(_)) => "the device".to_string(),
                    (Some(ring), None) => format!("ring {ring}"),
                    (None, None) if matches!(core.phase(), Phase::Halted { .. }) => {
                        "any ring".to_string()
                    }
                    (None, None) => "the ring running".to_string(),
                };
                return Err(format!(
                    "nothing to roll back in {what}: no device there installed or failed that is not rolled back (or rolling back) already"
                ));
            }
        }
        Action::Retry => {
            core.retry_candidates(job)?;
        }
        _ => {}
    }
    Ok((ring_index, job))
}

async fn act(
    Extract(state): Extract<State>,
    Path((id, action)): Path<(String, String)>,
    Query(query): Query<ActQuery>,
    caller: Caller,
) -> Result<Response, Failure> {
    let by = actor(authorize(&state, &caller, true)?);
    let Some(action) = Action::from_name(&action) else {
        return Err(failure(
            StatusCode::NOT_FOUND,
            format!(
                "no action `{action}`: the actions are approve, pause, resume, abort, rollback and retry"
            ),
            None,
        ));
    };
    let rollout = find(&state, &id)?;
    let scoped = matches!(action, Action::Rollback | Action::Retry);
    if !scoped && (query.ring.is_some() || query.device.is_some()) {
        return Err(failure(
            StatusCode::BAD_REQUEST,
            format!("`{action}` takes no ring or device: only rollback and retry do"),
            None,
        ));
    }
    if action == Action::Retry && query.ring.is_some() {
        return Err(failure(
            StatusCode::BAD_REQUEST,
            "retry takes no ring: it retries the ring that halted (or one `device` of it)",
            Some("ring"),
        ));
    }
    let job = match &query.device {
        None => None,
        Some(device) => {
            let facts = rollout.facts.read().unwrap_or_else(|e| e.into_inner());
            match facts.jobs.get(device) {
                Some(job) => Some(*job),
                None => {
                    return Err(failure(
                        StatusCode::NOT_FOUND,
                        format!("rollout {id} has no device `{device}`"),
                        Some("device"),
                    ));
                }
            }
        }
    };
    let (ring, job) = if scoped {
        let ring = query.ring.clone();
        let checked = rollout
            .inspect(move |core, _| scope_check(core, action, ring.as_deref(), job))
            .await
            .ok_or_else(|| not_ready(&id))?;
        checked.map_err(|e| failure(StatusCode::CONFLICT, format!("rollout {id}: {e}"), None))?
    } else {
        (None, None)
    };
    let command = match action {
        Action::Approve => Command::Approve,
        Action::Pause => Command::Pause,
        Action::Resume => Command::Resume,
        Action::Abort => Command::Abort,
        Action::Rollback => Command::RollBack { ring, job },
        Action::Retry => Command::Retry { job },
    };
    // The audit record names the scope too.
    let mut described = action.as_str().to_string();
    if let Some(ring) = &query.ring {
        described.push_str(&format!(" ring={ring}"));
    }
    if let Some(device) = &query.device {
        described.push_str(&format!(" device={device}"));
    }
    // Approve, pause and resume need a rollout that runs; abort, rollback and retry
    // also act on one that halted.
    let result = if matches!(action, Action::Abort | Action::Rollback | Action::Retry) {
        state.rollouts.operate(&rollout, command, &described, &by)
    } else {
        rollout.command(command, &described, &by)
    };
    result.map_err(|e| failure(StatusCode::CONFLICT, e.to_string(), None))?;
    let accepted = AcceptedV1 {
        schema: Schema::new(),
        rollout: id,
        action,
    };
    Ok((StatusCode::ACCEPTED, sorted_json(&accepted)?).into_response())
}

/// How long a device may go without a successful scan before `fleet` counts it as not
/// scanned recently, when no periodic scan is configured.
const RECENT_SCAN: Duration = Duration::from_secs(24 * 60 * 60);

async fn fleet_scan(
    Extract(state): Extract<State>,
    caller: Caller,
    body: axum::body::Body,
) -> Result<Response, Failure> {
    authorize(&state, &caller, true)?;
    let body = read_start(body, &state.limits).await?;
    let request: ringleader_api::fleet::ScanRequestV1 = if body.is_empty() {
        ringleader_api::fleet::ScanRequestV1 {
            inventory: None,
            devices: Vec::new(),
        }
    } else {
        let mut json = serde_json::Deserializer::from_slice(&body);
        serde_path_to_error::deserialize(&mut json).map_err(|e| {
            let field = e.path().to_string();
            failure(
                StatusCode::BAD_REQUEST,
                format!(
                    "the request body is not a valid fleet scan: {} (at `{field}`)",
                    e.inner()
                ),
                Some(&field),
            )
        })?
    };
    let inventory = request.inventory.map(|f| (f.name, f.text));
    let scanned = state
        .rollouts
        .scan(inventory, &request.devices, state.rollouts.scan_options())
        .await
        .map_err(|e| failure(StatusCode::BAD_REQUEST, format!("{e:#}"), None))?;
    Ok(sorted_json(&scanned)?.into_response())
}

async fn fleet_list(Extract(state): Extract<State>, caller: Caller) -> Result<Response, Failure> {
    use ringleader_api::fleet::{FleetDeviceSummaryV1, FleetV1};
    authorize(&state, &caller, false)?;
    let entries = state
        .rollouts
        .fleet()
        .list()
        .map_err(|e| failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None))?;
    let recent = state.rollouts.scan_every().unwrap_or(RECENT_SCAN);
    let now = Timestamp::now();
    let stale = |e: &crate::fleet::Entry| match e.last_seen {
        None => true,
        Some(seen) => now.duration_since(seen).as_secs() > recent.as_secs() as i64,
    };
    let not_scanned_recently = entries.iter().filter(|e| stale(e)).count();
    let devices = entries
        .into_iter()
        .map(|e| FleetDeviceSummaryV1 {
            differences: crate::fleet::differences(&e).len(),
            components: e.last_scan.as_ref().map(|s| s.components.len()),
            reboot_pending: e.last_scan.as_ref().is_some_and(|s| s.boot.reboot_pending),
            last_scan: e.last_scan.as_ref().map(|s| s.at),
            error: e.error.map(|(_, error)| error),
            id: e.id,
            inventory: e.inventory,
            tags: e.tags,
            last_seen: e.last_seen,
            drift: e.drift,
        })
        .collect();
    Ok(sorted_json(&FleetV1 {
        schema: Schema::new(),
        devices,
        not_scanned_recently,
    })?
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicationsQuery {
    #[serde(default)]
    since: u64,
    #[serde(default = "default_limit")]
    limit: usize,
}

/// `GET /v1/publications`: what the source polls found new or changed, from a cursor.
async fn publications(
    Extract(state): Extract<State>,
    Query(query): Query<PublicationsQuery>,
    caller: Caller,
) -> Result<Response, Failure> {
    use ringleader_api::source::{PublicationsV1, PublishedV1};
    authorize(&state, &caller, false)?;
    let limit = query.limit.clamp(1, 10_000);
    let entries = state
        .rollouts
        .publications_since(query.since, limit)
        .map_err(|e| failure(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"), None))?;
    let next = entries.last().map_or(query.since, |(c, _)| c + 1);
    let ts = |s: i64| Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH);
    let publications = entries
        .into_iter()
        .map(|(cursor, p)| PublishedV1 {
            cursor,
            id: p.publication.id,
            kind: p.publication.kind.into(),
            severity: p.publication.severity.into(),
            source: p.source,
            released: ts(p.publication.released),
            first_seen: ts(p.publication.first_seen),
            revision: p.publication.revision,
        })
        .collect();
    Ok(sorted_json(&PublicationsV1 {
        schema: Schema::new(),
        publications,
        next,
    })?
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    at: Option<Timestamp>,
}

/// `GET /v1/reports/time-to-patch`: per severity, from first sighting to install.
async fn time_to_patch(
    Extract(state): Extract<State>,
    Query(query): Query<ReportQuery>,
    caller: Caller,
) -> Result<Response, Failure> {
    authorize(&state, &caller, false)?;
    let doc = state
        .rollouts
        .time_to_patch(query.at)
        .await
        .map_err(|e| failure(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"), None))?;
    Ok(sorted_json(&doc)?.into_response())
}

/// `GET /v1/schedules/runs`: the standing schedules the daemon runs and their runs.
async fn schedule_runs(
    Extract(state): Extract<State>,
    Query(query): Query<NotificationsQuery>,
    caller: Caller,
) -> Result<Response, Failure> {
    authorize(&state, &caller, false)?;
    let doc = match state.rollouts.scheduler() {
        Some(s) => s
            .document(query.limit.clamp(1, 10_000))
            .map_err(|e| failure(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"), None))?,
        None => ringleader_api::schedule::ScheduledRunsV1 {
            schema: Schema::new(),
            file: String::new(),
            schedules: Vec::new(),
            runs: Vec::new(),
        },
    };
    Ok(sorted_json(&doc)?.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotificationsQuery {
    #[serde(default = "default_deliveries")]
    limit: usize,
}

fn default_deliveries() -> usize {
    100
}

/// `GET /v1/notifications`: the webhooks and their latest deliveries.
async fn notifications(
    Extract(state): Extract<State>,
    Query(query): Query<NotificationsQuery>,
    caller: Caller,
) -> Result<Response, Failure> {
    authorize(&state, &caller, false)?;
    let doc = state
        .rollouts
        .notifier()
        .document(query.limit.clamp(1, 10_000))
        .map_err(|e| failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None))?;
    Ok(sorted_json(&doc)?.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComplianceQuery {
    severity: Option<String>,
    cve: Option<String>,
    tag: Option<String>,
    at: Option<String>,
    #[serde(default)]
    refresh: bool,
}

async fn compliance(
    Extract(state): Extract<State>,
    Query(query): Query<ComplianceQuery>,
    headers: HeaderMap,
    caller: Caller,
) -> Result<Response, Failure> {
    use ringleader_api::plugin::SeverityV1;
    authorize(&state, &caller, false)?;
    let severity = match query.severity.as_deref() {
        None | Some("") => None,
        Some(name) => Some(SeverityV1::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = SeverityV1::ALL.iter().map(|s| s.as_str()).collect();
            failure(
                StatusCode::BAD_REQUEST,
                format!(
                    "`severity` is `{name}`, not a severity (one of: {})",
                    names.join(", ")
                ),
                Some("severity"),
            )
        })?),
    };
    let at = match query.at.as_deref() {
        None | Some("") => None,
        Some(text) => Some(text.parse::<Timestamp>().map_err(|e| {
            failure(
                StatusCode::BAD_REQUEST,
                format!("`at` is `{text}`, not an RFC 3339 time like 2026-12-01T00:00:00Z: {e}"),
                Some("at"),
            )
        })?),
    };
    let filter = ringleader_api::compliance::FilterV1 {
        severity,
        cve: query.cve.filter(|c| !c.is_empty()),
        tag: query.tag.filter(|t| !t.is_empty()),
    };
    let answer = state
        .rollouts
        .compliance(filter, at, query.refresh)
        .await
        .map_err(|e| {
            failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("failed to compute compliance: {e:#}"),
                None,
            )
        })?;
    // Compressed once when computed, not per request: given to clients that accept it.
    let vary = (header::VARY, "accept-encoding");
    if accepts_gzip(&headers) {
        return Ok((
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CONTENT_ENCODING, "gzip"),
                vary,
            ],
            answer.gzip,
        )
            .into_response());
    }
    Ok((
        [(header::CONTENT_TYPE, "application/json"), vary],
        answer.json,
    )
        .into_response())
}

/// Whether the request's `Accept-Encoding` takes gzip (`gzip` or `*`, not at `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

async fn fleet_device(
    Extract(state): Extract<State>,
    Path(id): Path<String>,
    caller: Caller,
) -> Result<Response, Failure> {
    use ringleader_api::fleet::{FleetDeviceV1, RolloutRecordV1};
    authorize(&state, &caller, false)?;
    let fleet = state.rollouts.fleet();
    let internal = |e: crate::fleet::RegistryError| {
        failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None)
    };
    let Some(entry) = fleet.get(&id).map_err(internal)? else {
        return Err(failure(
            StatusCode::NOT_FOUND,
            format!(
                "the fleet registry has no device `{id}`: give its inventory to `ringleader fleet scan --inventory FILE` or to a rollout"
            ),
            None,
        ));
    };
    let history = fleet.history(&id).map_err(internal)?;
    // What each rollout did to it, from the rollouts' own logs.
    let mut rollouts = Vec::new();
    for rollout in state.rollouts.list() {
        let job = {
            let facts = rollout.facts.read().unwrap_or_else(|e| e.into_inner());
            facts.jobs.get(&id).copied()
        };
        let Some(job) = job else { continue };
        let watched = rollout.clone();
        let Some(view) = rollout
            .inspect(move |core, now| {
                let facts = watched.facts.read().unwrap_or_else(|e| e.into_inner());
                device_view(core, now, &facts, job)
            })
            .await
            .flatten()
        else {
            continue;
        };
        let started_by = rollout
            .store
            .records_from(0, 1)
            .ok()
            .and_then(|r| r.into_iter().next())
            .and_then(|(_, record)| match record {
                Record::Audit { by, .. } => Some(by),
                _ => None,
            })
            .unwrap_or_else(|| "unknown".into());
        let changes = rollout
            .store
            .records_of_job((job.ring, job.index))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(seq, record)| event_v1(&rollout, seq, record))
            .map(|e| ringleader_api::fleet::ChangeV1 {
                at: e.at,
                kind: e.kind.as_str().to_string(),
                patch: e.patch,
                component: e.component,
                from: e.from,
                to: e.to,
                reason: e.reason,
                ok: e.ok,
            })
            .collect();
        rollouts.push(RolloutRecordV1 {
            changes,
            rollout: rollout.id.clone(),
            started_by,
            ring: view.ring,
            state: view.state.as_str().to_string(),
            versions: view.versions,
            reason: view.reason,
        });
    }
    let differences = crate::fleet::differences(&entry);
    let (error_at, error) = match entry.error {
        Some((at, e)) => (Some(at), Some(e)),
        None => (None, None),
    };
    Ok(sorted_json(&FleetDeviceV1 {
        schema: Schema::new(),
        id: entry.id,
        inventory: entry.inventory,
        tags: entry.tags,
        declared: entry.declared,
        last_scan: entry.last_scan,
        last_seen: entry.last_seen,
        error,
        error_at,
        differences,
        drift: entry.drift,
        history,
        rollouts,
    })?
    .into_response())
}

/// A job's state as the API names it.
fn device_state(state: &JobState) -> DeviceState {
    match state {
        JobState::Pending => DeviceState::Pending,
        JobState::Running { .. } => DeviceState::Running,
        JobState::Between { .. } => DeviceState::BetweenSteps,
        JobState::RebootDue { .. } | JobState::Rebooting { .. } => DeviceState::Rebooting,
        JobState::Done => DeviceState::Done,
        JobState::Failed { .. } => DeviceState::Failed,
        JobState::RollingBack => DeviceState::RollingBack,
        JobState::RolledBack => DeviceState::RolledBack,
        JobState::RollbackFailed { .. } => DeviceState::RollbackFailed,
    }
}

#[derive(Debug, Deserialize)]
struct DevicesQuery {
    #[serde(default)]
    behind: bool,
}

fn device_view(
    core: &ringleader_engine::core::Core,
    now: Timestamp,
    facts: &super::rollouts::Facts,
    job: JobId,
) -> Option<DeviceV1> {
    let spec = core.job_spec(job)?;
    let state = core.job(job)?;
    let done = usize::from(core.job_steps_done(job));
    let rolled_back = matches!(state, JobState::RolledBack);
    let mut versions: BTreeMap<String, String> = facts
        .components
        .get(&spec.device)
        .map(|c| c.iter().cloned().collect())
        .unwrap_or_default();
    let mut pending = Vec::new();
    let mut behind: Option<i64> = None;
    for (i, step) in spec.steps.iter().enumerate() {
        let installed = i < done && !rolled_back;
        let patch = facts.patches.get(&step.patch);
        if installed {
            if let Some((component, version, _)) = patch {
                versions.insert(component.clone(), version.clone());
            }
            continue;
        }
        pending.push(step.patch.clone());
        let released = patch.map_or(i64::MAX, |p| p.2);
        let due = step
            .not_before
            .map_or(released, |t| t.as_second().max(released));
        let late = now.as_second() - due;
        if late > 0 {
            behind = Some(behind.map_or(late, |b: i64| b.max(late)));
        }
    }
    Some(DeviceV1 {
        id: spec.device.clone(),
        ring: core
            .spec()
            .rings
            .get(usize::from(job.ring))
            .map(|r| r.name.clone())
            .unwrap_or_default(),
        state: device_state(state),
        reason: match state {
            JobState::Failed { reason } => Some(reason.clone()),
            _ => core.job_failure(job).map(str::to_string),
        },
        rollback_reason: match state {
            JobState::RollbackFailed { reason } => Some(reason.clone()),
            _ => None,
        },
        versions,
        pending,
        behind_seconds: behind,
        reboot_pending: core.job_reboot_pending(job) && matches!(state, JobState::Done),
    })
}

async fn devices(
    Extract(state): Extract<State>,
    Path(id): Path<String>,
    Query(query): Query<DevicesQuery>,
    caller: Caller,
) -> Result<Response, Failure> {
    authorize(&state, &caller, false)?;
    let rollout = find(&state, &id)?;
    let watched = rollout.clone();
    let answer = rollout
        .inspect(move |core, now| {
            let facts = watched.facts.read().unwrap_or_else(|e| e.into_inner());
            let mut out = Vec::new();
            for ring in 0..core.ring_count() as u16 {
                for index in 0..core.ring_len(ring) as u32 {
                    if let Some(view) = device_view(core, now, &facts, JobId { ring, index })
                        && (!query.behind || view.behind_seconds.is_some())
                    {
                        out.push(view);
                    }
                }
            }
            (out, now)
        })
        .await;
    let Some((devices, now)) = answer else {
        return Err(not_ready(&id));
    };
    Ok(sorted_json(&DevicesV1 {
        schema: Schema::new(),
        rollout: id,
        time: now,
        devices,
    })?
    .into_response())
}

fn not_ready(id: &str) -> Failure {
    failure(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "rollout {id} is still being prepared (discovery and planning); try again in a moment"
        ),
        None,
    )
}

async fn device(
    Extract(state): Extract<State>,
    Path((id, device)): Path<(String, String)>,
    caller: Caller,
) -> Result<Response, Failure> {
    authorize(&state, &caller, false)?;
    let rollout = find(&state, &id)?;
    let job = {
        let facts = rollout.facts.read().unwrap_or_else(|e| e.into_inner());
        facts.jobs.get(&device).copied()
    };
    let Some(job) = job else {
        return Err(failure(
            StatusCode::NOT_FOUND,
            format!("rollout {id} has no device `{device}`"),
            None,
        ));
    };
    let watched = rollout.clone();
    let view = rollout
        .inspect(move |core, now| {
            let facts = watched.facts.read().unwrap_or_else(|e| e.into_inner());
            device_view(core, now, &facts, job)
        })
        .await
        .flatten()
        .ok_or_else(|| not_ready(&id))?;
    // Its history: every record about its job, from the log's index of jobs.
    let history = rollout
        .store
        .records_of_job((job.ring, job.index))
        .map_err(|e| failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None))?
        .into_iter()
        .filter_map(|(seq, record)| event_v1(&rollout, seq, record))
        .collect::<Vec<_>>();
    Ok(sorted_json(&DeviceHistoryV1 {
        schema: Schema::new(),
        rollout: id,
        device: view,
        history,
    })?
    .into_response())
}

/// Why each patch is (not) planned for a device: the planner's explanation with the
/// rollout's policy, inventory and patches, as of its start.
async fn explain(
    Extract(state): Extract<State>,
    Path((id, device)): Path<(String, String)>,
    caller: Caller,
) -> Result<Response, Failure> {
    authorize(&state, &caller, false)?;
    let rollout = find(&state, &id)?;
    let catalog = rollout
        .facts
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .catalog
        .clone()
        .ok_or_else(|| not_ready(&id))?;
    let answer = tokio::task::spawn_blocking(move || {
        let (policy, inventory) = rollout
            .inputs
            .validate()
            .map_err(|e| failure(StatusCode::INTERNAL_SERVER_ERROR, e, None))?;
        let planner = ringleader_planner::plan::Planner {
            policy: &policy,
            inventory: &inventory,
            catalog: &catalog,
            at: rollout.inputs.start,
        };
        let explanation = planner.explain(&device).ok_or_else(|| {
            failure(
                StatusCode::NOT_FOUND,
                format!("rollout {id} has no device `{device}`"),
                None,
            )
        })?;
        let d = inventory
            .devices
            .iter()
            .find(|d| d.id == device)
            .ok_or_else(|| failure(StatusCode::NOT_FOUND, "device vanished", None))?;
        sorted_json(&crate::plan_view::explain(&planner, d, explanation))
    })
    .await
    .map_err(|e| failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None))??;
    Ok(answer.into_response())
}

/// The event a script sees for a log record; `None` for records of no interest to
/// people (the core's time ticks).
pub(crate) fn event_v1(rollout: &Rollout, cursor: u64, record: Record) -> Option<EventV1> {
    let facts = rollout.facts.read().unwrap_or_else(|e| e.into_inner());
    let device = |job: (u16, u32)| {
        facts
            .devices
            .get(usize::from(job.0))
            .and_then(|ring| ring.get(job.1 as usize))
            .cloned()
    };
    let ring_name = |ring: u16| {
        let live = rollout.live.read().unwrap_or_else(|e| e.into_inner());
        live.status
            .as_ref()
            .and_then(|s| s.rings.get(usize::from(ring)))
            .map(|r| r.name.clone())
    };
    // Its time and kind are the record's, set below.
    let mut e = EventV1::new(cursor, Timestamp::UNIX_EPOCH, EventKind::Completed);
    let patch_of = |job: (u16, u32), step: u16| {
        facts
            .steps
            .get(usize::from(job.0))
            .and_then(|ring| ring.get(job.1 as usize))
            .and_then(|steps| steps.get(usize::from(step)))
            .cloned()
    };
    // The component a step changes, from the device's version before it (as
    // inventoried, then as the job's earlier steps left it) to the patch's.
    let versions_of = |job: (u16, u32), step: u16| {
        let steps = facts
            .steps
            .get(usize::from(job.0))
            .and_then(|ring| ring.get(job.1 as usize))?;
        let (component, to, _) = facts.patches.get(steps.get(usize::from(step))?)?;
        let mut from = facts
            .components
            .get(&device(job)?)?
            .iter()
            .find(|(c, _)| c == component)
            .map(|(_, v)| v.clone());
        for earlier in &steps[..usize::from(step)] {
            if let Some((c, v, _)) = facts.patches.get(earlier)
                && c == component
            {
                from = Some(v.clone());
            }
        }
        Some((component.clone(), from, to.clone()))
    };
    let step_of = |e: &mut EventV1, job: (u16, u32), step: u16| {
        e.device = device(job);
        e.ring = ring_name(job.0);
        e.patch = patch_of(job, step);
        if let Some((component, from, to)) = versions_of(job, step) {
            (e.component, e.from, e.to) = (Some(component), from, Some(to));
        }
    };
    let (at, kind) = match record {
        Record::Event { at, event } => {
            let kind = match event {
                StoredEvent::Tick => return None,
                StoredEvent::StepSucceeded { job, step, .. } => {
                    step_of(&mut e, job, step);
                    EventKind::StepSucceeded
                }
                StoredEvent::StepFailed { job, step, reason } => {
                    step_of(&mut e, job, step);
                    e.reason = Some(reason);
                    EventKind::StepFailed
                }
                StoredEvent::RollbackFinished { job, ok, reason } => {
                    e.device = device(job);
                    e.ring = ring_name(job.0);
                    e.ok = Some(ok);
                    e.reason = reason;
                    EventKind::RollbackFinished
                }
                StoredEvent::RebootFinished { job, ok, reason } => {
                    e.device = device(job);
                    e.ring = ring_name(job.0);
                    e.ok = Some(ok);
                    e.reason = reason;
                    EventKind::RebootFinished
                }
                StoredEvent::Approve => EventKind::Approve,
                StoredEvent::Pause => EventKind::Pause,
                StoredEvent::Resume => EventKind::Resume,
                StoredEvent::Abort => EventKind::Abort,
                StoredEvent::RollBack { ring, job } => {
                    e.ring = ring.and_then(ring_name);
                    e.device = job.and_then(device);
                    EventKind::Rollback
                }
                StoredEvent::Retry { job } => {
                    e.device = job.and_then(device);
                    EventKind::Retry
                }
                StoredEvent::DevicesAdded { ring, .. } => {
                    e.ring = ring_name(ring);
                    EventKind::DevicesJoined
                }
            };
            (at, kind)
        }
        Record::Dispatched { at, job, step } => {
            step_of(&mut e, job, step);
            (at, EventKind::Dispatched)
        }
        Record::RollbackDispatched { at, job } => {
            e.device = device(job);
            e.ring = ring_name(job.0);
            (at, EventKind::RollbackDispatched)
        }
        Record::RebootDispatched { at, job } => {
            e.device = device(job);
            e.ring = ring_name(job.0);
            (at, EventKind::RebootDispatched)
        }
        // The boot id before a reboot: kept for a resumed wait, not an event.
        Record::BootObserved { .. } => return None,
        Record::Resumed { at } => (at, EventKind::Resumed),
        // What a device ran before a step: kept for its rollback, not an event.
        Record::Observed { .. } => return None,
        Record::Joined { at, .. } => {
            return Some(EventV1::new(cursor, ts(at), EventKind::DevicesJoined));
        }
        Record::Decided { at, decision } => {
            let kind = match decision {
                Note::RingComplete { ring } => {
                    e.ring = ring_name(ring);
                    EventKind::RingComplete
                }
                Note::AwaitingApproval { ring } => {
                    e.ring = ring_name(ring);
                    EventKind::AwaitingApproval
                }
                Note::ApprovedByRule { ring, reason } => {
                    e.ring = ring_name(ring);
                    e.reason = Some(reason);
                    EventKind::ApprovedByRule
                }
                Note::Halted { ring, reason } => {
                    e.ring = ring_name(ring);
                    e.reason = Some(reason);
                    EventKind::Halted
                }
                Note::DeviceUnresponsive { job, .. } => {
                    e.device = device(job);
                    e.ring = ring_name(job.0);
                    EventKind::DeviceUnresponsive
                }
                Note::Completed => EventKind::Completed,
            };
            (at, kind)
        }
        Record::Stalled { at, reason } => {
            e.reason = Some(reason);
            (at, EventKind::Stalled)
        }
        Record::Audit { at, by, action } => {
            e.by = Some(by);
            e.action = Some(action);
            (at, EventKind::Audit)
        }
    };
    e.at = ts(at);
    e.kind = kind;
    Some(e)
}

fn ts(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH)
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    #[serde(default)]
    since: u64,
    /// Most log records to scan (events shown are fewer: ticks are skipped).
    #[serde(default = "default_limit")]
    limit: usize,
    /// Seconds to wait for new events when there are none (long-poll), at most 60.
    #[serde(default)]
    wait: u64,
}

fn default_limit() -> usize {
    1000
}

/// Reads events from `since`: returns them and the cursor after the last record read.
fn read_events(
    rollout: &Rollout,
    since: u64,
    limit: usize,
) -> Result<(Vec<EventV1>, u64), Failure> {
    let records = rollout
        .store
        .records_from(since, limit.clamp(1, 10_000))
        .map_err(|e| failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None))?;
    let next = records.last().map_or(since, |(seq, _)| seq + 1);
    let events = records
        .into_iter()
        .filter_map(|(seq, record)| event_v1(rollout, seq, record))
        .collect();
    Ok((events, next))
}

async fn events(
    Extract(state): Extract<State>,
    Path(id): Path<String>,
    Query(query): Query<EventsQuery>,
    caller: Caller,
) -> Result<Response, Failure> {
    authorize(&state, &caller, false)?;
    let rollout = find(&state, &id)?;
    let mut changed = rollout.changed.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(query.wait.min(60));
    let (mut events, mut next) = read_events(&rollout, query.since, query.limit)?;
    // Long-poll: wait for something to show, while the rollout can still move. A
    // rollout that stalls or goes on after a stall answers at once: that shows too.
    let stalled_before = stall_of(&rollout);
    while events.is_empty()
        && next == query.since
        && query.wait > 0
        && !ended(&rollout)
        && stall_of(&rollout) == stalled_before
    {
        if tokio::time::timeout_at(deadline, changed.changed())
            .await
            .is_err()
        {
            break;
        }
        (events, next) = read_events(&rollout, query.since, query.limit)?;
    }
    let page = EventsV1 {
        schema: Schema::new(),
        rollout: id,
        events,
        next,
        ended: ended(&rollout),
        // Present only while the rollout stalls: its log cannot be written, so nothing
        // new can show among the events until it can (then a `stalled` event is logged).
        stalled: stall_of(&rollout),
    };
    Ok(sorted_json(&page)?.into_response())
}

fn ended(rollout: &Rollout) -> bool {
    let live = rollout.live.read().unwrap_or_else(|e| e.into_inner());
    live.ended || live.error.is_some()
}

/// Why the rollout stalls now (its log cannot be written), if it does.
fn stall_of(rollout: &Rollout) -> Option<String> {
    let live = rollout.live.read().unwrap_or_else(|e| e.into_inner());
    live.stalled.clone()
}

/// The stream's `stalled` message: sent once when the rollout stalls, without an
/// `id` (it is no record of the log, so a client's `Last-Event-ID` stays).
fn stall_message(id: &str, reason: &str) -> SseEvent {
    let stall = StallV1 {
        schema: Schema::new(),
        rollout: id.to_string(),
        reason: reason.to_string(),
    };
    // Its keys sorted, as the stream has always sent them (see `sorted_json`).
    SseEvent::default()
        .event(EventKind::Stalled.as_str())
        .json_data(serde_json::to_value(&stall).unwrap_or_default())
        .unwrap_or_default()
}

async fn stream(
    Extract(state): Extract<State>,
    Path(id): Path<String>,
    Query(query): Query<EventsQuery>,
    caller: Caller,
) -> Result<Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>>, Failure> {
    authorize(&state, &caller, false)?;
    let rollout = find(&state, &id)?;
    // Held as long as the stream is open.
    let permit = state.streams.clone().try_acquire_owned().map_err(|_| {
        tracing::warn!(
            "refused an event stream of {id}: {} are open, the most this daemon serves (--max-event-streams)",
            state.limits.event_streams
        );
        failure(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{} event streams are open, the most this daemon serves (`ringleader serve --max-event-streams`); close one, or long-poll `GET /v1/rollouts/{id}/events?wait=60`",
                state.limits.event_streams
            ),
            None,
        )
    })?;
    let changed = rollout.changed.subscribe();
    let follow = Follow {
        rollout,
        cursor: query.since,
        changed,
        pending: Vec::new().into_iter(),
        stall: None,
        _permit: permit,
    };
    let stream = futures_util::stream::unfold(follow, |mut follow| async move {
        loop {
            if let Some(event) = follow.pending.next() {
                let sse = SseEvent::default()
                    .id(event.cursor.to_string())
                    .event(event.kind.as_str())
                    .json_data(&event)
                    .unwrap_or_default();
                return Some((Ok(sse), follow));
            }
            let stall = stall_of(&follow.rollout);
            if stall != follow.stall {
                follow.stall = stall;
                if let Some(reason) = &follow.stall {
                    let sse = stall_message(&follow.rollout.id, reason);
                    return Some((Ok(sse), follow));
                }
            }
            let (events, next) = read_events(&follow.rollout, follow.cursor, 1000).ok()?;
            if next != follow.cursor {
                follow.cursor = next;
                follow.pending = events.into_iter();
                continue;
            }
            if ended(&follow.rollout) {
                return None;
            }
            // Wait for the rollout to move (or the daemon to stop).
            follow.changed.changed().await.ok()?;
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(state.limits.sse_keep_alive)))
}

/// Where an event stream is: the next record to read, what is read and not yet sent,
/// and the stall last told.
struct Follow {
    rollout: Arc<Rollout>,
    cursor: u64,
    changed: tokio::sync::watch::Receiver<u64>,
    pending: std::vec::IntoIter<EventV1>,
    stall: Option<String>,
    /// Held as long as the stream is open.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

async fn metrics(Extract(state): Extract<State>, caller: Caller) -> Result<Response, Failure> {
    authorize(&state, &caller, false)?;
    let rollouts = state.rollouts.list();
    let mut by_state: HashMap<RolloutState, u64> = HashMap::new();
    let mut waiting: HashMap<Gate, u64> = HashMap::new();
    let (mut ok, mut failed, mut calls, mut call_failures, mut nanos, mut rollbacks) =
        (0, 0, 0, 0, 0, 0);
    let mut buckets = [0u64; PLUGIN_CALL_BUCKETS.len() + 1];
    *by_state.entry(RolloutState::Unreadable).or_default() +=
        state.rollouts.list_unreadable().len() as u64;
    for rollout in &rollouts {
        let status = status_of(rollout);
        *by_state.entry(status.state).or_default() += 1;
        if let Some(w) = &status.waiting {
            *waiting.entry(w.for_).or_default() += 1;
        }
        let m = &rollout.metrics;
        ok += m.steps_succeeded.load(Ordering::Relaxed);
        failed += m.steps_failed.load(Ordering::Relaxed);
        calls += m.plugin_calls.load(Ordering::Relaxed);
        call_failures += m.plugin_call_failures.load(Ordering::Relaxed);
        nanos += m.plugin_call_nanos.load(Ordering::Relaxed);
        rollbacks += m.rollbacks.load(Ordering::Relaxed);
        for (total, bucket) in buckets.iter_mut().zip(&m.plugin_call_buckets) {
            *total += bucket.load(Ordering::Relaxed);
        }
    }
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, value) in samples {
            out.push_str(&format!("{name}{labels} {value}\n"));
        }
    };
    metric(
        "ringleader_rollouts",
        "gauge",
        "Rollouts by state.",
        &RolloutState::ALL
            .iter()
            .map(|s| {
                (
                    format!("{{state=\"{s}\"}}"),
                    *by_state.get(s).unwrap_or(&0) as f64,
                )
            })
            .collect::<Vec<_>>(),
    );
    metric(
        "ringleader_device_steps_total",
        "counter",
        "Device-steps that reported, by result (since the daemon started).",
        &[
            ("{result=\"succeeded\"}".into(), ok as f64),
            ("{result=\"failed\"}".into(), failed as f64),
        ],
    );
    let polls = &state.rollouts.polls;
    metric(
        "ringleader_source_polls_total",
        "counter",
        "Polls of the patch sources ([sources] poll), by result (since the daemon started).",
        &[
            (
                "{result=\"ok\"}".into(),
                polls[0]
                    .load(Ordering::Relaxed)
                    .saturating_sub(polls[1].load(Ordering::Relaxed)) as f64,
            ),
            (
                "{result=\"failed\"}".into(),
                polls[1].load(Ordering::Relaxed) as f64,
            ),
        ],
    );
    metric(
        "ringleader_patches_published_total",
        "counter",
        "Patches the source polls found new or changed, by severity (since the daemon started).",
        &ringleader_planner::compliance::SEVERITIES
            .iter()
            .map(|s| {
                (
                    format!(
                        "{{severity=\"{}\"}}",
                        ringleader_planner::policy::severity_name(*s)
                    ),
                    state.rollouts.published[ringleader_planner::compliance::rank(*s)]
                        .load(Ordering::Relaxed) as f64,
                )
            })
            .collect::<Vec<_>>(),
    );
    metric(
        "ringleader_rollbacks_total",
        "counter",
        "Device rollbacks that finished.",
        &[(String::new(), rollbacks as f64)],
    );
    metric(
        "ringleader_plugin_calls_total",
        "counter",
        "Installer plugin calls.",
        &[(String::new(), calls as f64)],
    );
    metric(
        "ringleader_plugin_call_failures_total",
        "counter",
        "Installer plugin calls that returned an error.",
        &[(String::new(), call_failures as f64)],
    );
    let mut histogram = Vec::new();
    let mut cumulative = 0;
    for (i, count) in buckets.iter().enumerate() {
        cumulative += count;
        let le = PLUGIN_CALL_BUCKETS
            .get(i)
            .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
        histogram.push((format!("_bucket{{le=\"{le}\"}}"), cumulative as f64));
    }
    histogram.push(("_sum".to_string(), nanos as f64 / 1e9));
    histogram.push(("_count".to_string(), cumulative as f64));
    metric(
        "ringleader_plugin_call_duration_seconds",
        "histogram",
        "Real time of installer plugin calls.",
        &histogram,
    );
    metric(
        "ringleader_gate_waits",
        "gauge",
        "Rollouts waiting at a gate now, by gate.",
        &Gate::ALL
            .iter()
            .map(|g| {
                (
                    format!("{{gate=\"{g}\"}}"),
                    *waiting.get(g).unwrap_or(&0) as f64,
                )
            })
            .collect::<Vec<_>>(),
    );
    // The fleet's compliance, against the kept catalog (discovered when stale); a
    // registry or sources that fail leave the gauges out, never the other metrics.
    match state
        .rollouts
        .compliance(Default::default(), None, false)
        .await
    {
        Ok(answer) => {
            for (name, help, samples) in crate::compliance::gauges(&answer.doc) {
                metric(name, "gauge", help, &samples);
            }
        }
        Err(e) => tracing::warn!("/metrics leaves out the compliance gauges: {e:#}"),
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}
