//! Webhook notifications (docs/notifications.md): what the operator config's
//! `[webhooks.NAME]` ask for, queued durably in `DATA/notifications/` (sled) and POSTed
//! to each webhook in order, signed with its secret.
//!
//! - Followers read what happened where it is already durable: each rollout's log
//!   (from a cursor per rollout), the publications log, the fleet registry's scan
//!   times. A notification is queued, for every webhook that wants it, before its
//!   cursor moves past it: a crash between the two sends it again (with the same `id`),
//!   never loses it.
//! - One delivery task per webhook sends its queue oldest first, one at a time: a
//!   receiver sees notifications in the order they happened. A failed try is retried
//!   after 1 s, then twice as long each time up to `retry_max`; after `attempts` tries
//!   the notification is dropped (kept in the delivery log as such) and the next one
//!   goes. Nothing here is on a rollout's path: a webhook that never answers leaves
//!   every rollout to run as it would.
//! - A rollout, or the publications, already there when the daemon starts with
//!   webhooks and never followed before are followed from their end: turning webhooks
//!   on does not replay history.

use super::now;
use super::rollouts::{Rollout, Rollouts};
use crate::publications::seq_of;
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use ringleader_api::Schema;
use ringleader_api::event::EventKind;
use ringleader_api::notification::{
    AttemptErrorV1, DeliveryState, DeliveryV1, NotificationKind, NotificationV1, NotificationsV1,
    WebhookV1,
};
use ringleader_api::plugin::SeverityV1;
use ringleader_runtime::config::{NotificationsConfig, WebhookConfig};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const CACHE_BYTES: u64 = 4 * 1024 * 1024;
/// Deliveries kept in the log (the oldest settled ones go first).
const LOG_KEPT: usize = 10_000;
/// How often the followers look for something new.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);
/// How often, at most, the registry's scan times are checked (`device-not-scanned`).
const SCAN_CHECK_EVERY: Duration = Duration::from_secs(60);
/// Most bytes of a receiver's answer shown in an error.
const ANSWER_SHOWN: usize = 200;

/// The header that carries the signature: `sha256=` and the lowercase hex of
/// HMAC-SHA256(secret, body).
pub const SIGNATURE_HEADER: &str = "Ringleader-Signature";

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("cannot open the notifications in {dir}: {message}")]
    Open { dir: String, message: String },
    #[error("the notifications store failed: {0}")]
    Store(#[from] sled::Error),
    #[error("a notification record is unreadable: {0}")]
    Record(#[from] serde_json::Error),
}

/// A webhook as the notifier uses it.
#[derive(Debug)]
struct Hook {
    config: WebhookConfig,
    kinds: Vec<NotificationKind>,
    severities: Vec<SeverityV1>,
    wake: tokio::sync::Notify,
}

impl Hook {
    fn wants(&self, n: &NotificationV1) -> bool {
        self.kinds.contains(&n.kind)
            && (n.kind != NotificationKind::PatchPublished
                || n.severity.is_some_and(|s| self.severities.contains(&s)))
    }
}

/// A notification waiting for one webhook (the `queue` tree).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Queued {
    /// Its entry in the delivery log.
    seq: u64,
    id: String,
    kind: NotificationKind,
    /// The body, exactly as signed and sent.
    body: String,
    attempts: u32,
}

/// How a webhook's deliveries went (the `stats` tree).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Stats {
    delivered: u64,
    dropped: u64,
    last_delivered: Option<Timestamp>,
    last_error: Option<AttemptErrorV1>,
}

/// What `device-not-scanned` knows of a device (the `stale` tree).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Unscanned {
    /// When the notifier first saw the device (its age when never scanned).
    noticed: i64,
    /// The last scan time it was notified for (`i64::MIN`: never scanned).
    notified_for: Option<i64>,
}

/// The notifier: its store and its webhooks.
#[derive(Debug)]
pub struct Notifier {
    db: sled::Db,
    queue: sled::Tree,
    log: sled::Tree,
    cursors: sled::Tree,
    stale: sled::Tree,
    stats: sled::Tree,
    hooks: Vec<Hook>,
    config: NotificationsConfig,
}

impl Notifier {
    /// Opens (or creates) the notifications in `dir`, for `webhooks`.
    pub fn open(
        dir: &Path,
        webhooks: &[WebhookConfig],
        config: NotificationsConfig,
    ) -> Result<Notifier, NotifyError> {
        let db =
            ringleader_runtime::durable::open(dir, CACHE_BYTES).map_err(|e| NotifyError::Open {
                dir: dir.display().to_string(),
                message: e.to_string(),
            })?;
        let hooks = webhooks
            .iter()
            .map(|w| Hook {
                config: w.clone(),
                kinds: w
                    .events
                    .iter()
                    .filter_map(|e| NotificationKind::from_name(e))
                    .collect(),
                severities: w
                    .severities
                    .iter()
                    .filter_map(|s| SeverityV1::from_name(s))
                    .collect(),
                wake: tokio::sync::Notify::new(),
            })
            .collect();
        Ok(Notifier {
            queue: db.open_tree("queue")?,
            log: db.open_tree("log")?,
            cursors: db.open_tree("cursors")?,
            stale: db.open_tree("stale")?,
            stats: db.open_tree("stats")?,
            db,
            hooks,
            config,
        })
    }

    /// Starts the followers and one delivery task per webhook (none without webhooks).
    pub fn spawn(self: &Arc<Self>, rollouts: Arc<Rollouts>) -> Result<(), NotifyError> {
        if self.hooks.is_empty() {
            return Ok(());
        }
        // What is there now and was never followed is followed from its end.
        for rollout in rollouts.list() {
            let key = rollout_key(&rollout.id);
            if self.cursors.get(&key)?.is_none() {
                self.set_cursor(&key, rollout.store.committed_len())?;
            }
        }
        if self.cursors.get(PUBLICATIONS)?.is_none() {
            let end = rollouts.publications_end().unwrap_or(0);
            self.set_cursor(PUBLICATIONS.as_bytes(), end)?;
        }
        self.db.flush()?;
        for i in 0..self.hooks.len() {
            tokio::spawn(self.clone().deliver(i));
        }
        tokio::spawn(self.clone().follow(rollouts));
        Ok(())
    }

    /// The delivery log: every webhook, and the latest `limit` deliveries.
    pub fn document(&self, limit: usize) -> Result<NotificationsV1, NotifyError> {
        let mut webhooks = Vec::new();
        for hook in &self.hooks {
            let stats = self.stats_of(&hook.config.name)?;
            webhooks.push(WebhookV1 {
                name: hook.config.name.clone(),
                url: shown_url(&hook.config.url),
                events: hook.kinds.clone(),
                pending: self
                    .queue
                    .scan_prefix(queue_prefix(&hook.config.name))
                    .count() as u64,
                delivered: stats.delivered,
                dropped: stats.dropped,
                last_delivered: stats.last_delivered,
                last_error: stats.last_error,
            });
        }
        let mut deliveries = Vec::new();
        for item in self.log.iter().rev().take(limit) {
            let (_, value) = item?;
            deliveries.push(serde_json::from_slice(&value)?);
        }
        Ok(NotificationsV1 {
            schema: Schema::new(),
            webhooks,
            deliveries,
        })
    }

    fn stats_of(&self, name: &str) -> Result<Stats, NotifyError> {
        Ok(match self.stats.get(name.as_bytes())? {
            Some(v) => serde_json::from_slice(&v)?,
            None => Stats::default(),
        })
    }

    fn set_cursor(&self, key: &[u8], at: u64) -> Result<(), NotifyError> {
        self.cursors.insert(key, &at.to_be_bytes())?;
        Ok(())
    }

    fn cursor(&self, key: &[u8]) -> Result<Option<u64>, NotifyError> {
        Ok(self.cursors.get(key)?.map(|v| seq_of(&v)))
    }

    /// Queues `n` for every webhook that wants it (not yet flushed).
    fn enqueue(&self, n: &NotificationV1) -> Result<(), NotifyError> {
        let body = serde_json::to_string(n)?;
        for hook in self.hooks.iter().filter(|h| h.wants(n)) {
            let seq = self.db.generate_id()?;
            let delivery = DeliveryV1 {
                id: n.id.clone(),
                webhook: hook.config.name.clone(),
                kind: n.kind,
                queued: now(),
                state: DeliveryState::Pending,
                attempts: 0,
                delivered: None,
                last_error: None,
            };
            self.log
                .insert(seq.to_be_bytes(), serde_json::to_vec(&delivery)?)?;
            let queued = Queued {
                seq,
                id: n.id.clone(),
                kind: n.kind,
                body: body.clone(),
                attempts: 0,
            };
            let mut key = queue_prefix(&hook.config.name);
            key.extend_from_slice(&seq.to_be_bytes());
            self.queue.insert(key, serde_json::to_vec(&queued)?)?;
        }
        Ok(())
    }

    /// Made durable, then the webhooks told there is more.
    async fn commit(&self) -> Result<(), NotifyError> {
        self.db.flush_async().await?;
        for hook in &self.hooks {
            hook.wake.notify_one();
        }
        Ok(())
    }

    /// Follows the rollouts, the publications and the scan times, for ever.
    async fn follow(self: Arc<Self>, rollouts: Arc<Rollouts>) {
        let mut checked: Option<tokio::time::Instant> = None;
        let mut failing = false;
        loop {
            let mut result = Ok(());
            for rollout in rollouts.list() {
                result = result.and_then(|()| self.follow_rollout(&rollout));
            }
            result = result.and_then(|()| self.follow_publications(&rollouts));
            // Every minute, or twice per threshold when it is shorter.
            if let Some(after) = self.config.not_scanned_after
                && checked.is_none_or(|t| {
                    t.elapsed() >= (after / 2).clamp(FOLLOW_EVERY, SCAN_CHECK_EVERY)
                })
            {
                checked = Some(tokio::time::Instant::now());
                result = result.and_then(|()| self.check_scans(&rollouts));
            }
            let result = match result {
                Ok(()) => self.commit().await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => failing = false,
                // Logged once until it works again; what was not queued is read again.
                Err(e) if !failing => {
                    failing = true;
                    tracing::error!("notifications: {e}");
                }
                Err(_) => {}
            }
            tokio::time::sleep(FOLLOW_EVERY).await;
        }
    }

    /// Queues what a rollout logged since its cursor.
    fn follow_rollout(&self, rollout: &Rollout) -> Result<(), NotifyError> {
        // The device of a job is known once the rollout is prepared.
        if rollout
            .live
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .preparing
        {
            return Ok(());
        }
        let key = rollout_key(&rollout.id);
        let mut cursor = self.cursor(&key)?.unwrap_or(0);
        let end = rollout.store.committed_len();
        while cursor < end {
            let Ok(records) = rollout.store.records_from(cursor, 1000) else {
                break;
            };
            let Some(last) = records.last().map(|(seq, _)| *seq) else {
                break;
            };
            for (seq, record) in records {
                if seq >= end {
                    break;
                }
                if let Some(n) = super::api::event_v1(rollout, seq, record)
                    .and_then(|e| notification_of(rollout, e))
                {
                    self.enqueue(&n)?;
                }
            }
            cursor = (last + 1).min(end);
            self.set_cursor(&key, cursor)?;
        }
        Ok(())
    }

    /// Queues the patches published since the publications' cursor.
    fn follow_publications(&self, rollouts: &Rollouts) -> Result<(), NotifyError> {
        let cursor = self.cursor(PUBLICATIONS.as_bytes())?.unwrap_or(0);
        let Ok(entries) = rollouts.publications_since(cursor, 1000) else {
            return Ok(());
        };
        let Some(next) = entries.last().map(|(c, _)| c + 1) else {
            return Ok(());
        };
        for (_, p) in entries {
            let publication = p.publication;
            let mut n = NotificationV1::new(
                format!("patch-{}-{}", publication.id, publication.revision),
                NotificationKind::PatchPublished,
                ts(publication.first_seen),
            );
            n.patch = Some(publication.id.clone());
            n.severity = Some(publication.severity.into());
            n.source = Some(p.source);
            n.reason = Some(if publication.revision == 1 {
                "new".to_string()
            } else {
                format!("changed (revision {})", publication.revision)
            });
            self.enqueue(&n)?;
        }
        self.set_cursor(PUBLICATIONS.as_bytes(), next)
    }

    /// Queues `device-not-scanned` for each registry device whose last successful scan
    /// (or, never scanned, its first sighting here) is older than the threshold, once
    /// per scan time.
    fn check_scans(&self, rollouts: &Rollouts) -> Result<(), NotifyError> {
        let Some(after) = self.config.not_scanned_after else {
            return Ok(());
        };
        let Ok(entries) = rollouts.fleet().list() else {
            return Ok(());
        };
        let now = now().as_second();
        let limit = i64::try_from(after.as_secs()).unwrap_or(i64::MAX);
        for entry in entries {
            let mut state = match self.stale.get(entry.id.as_bytes())? {
                Some(v) => serde_json::from_slice(&v)?,
                None => Unscanned {
                    noticed: now,
                    notified_for: None,
                },
            };
            let last = entry.last_scan.as_ref().map(|s| s.at.as_second());
            let since = last.unwrap_or(state.noticed);
            let key = last.unwrap_or(i64::MIN);
            if now.saturating_sub(since) > limit && state.notified_for != Some(key) {
                let mut n = NotificationV1::new(
                    format!("not-scanned-{}-{}", entry.id, since),
                    NotificationKind::DeviceNotScanned,
                    ts(now),
                );
                n.device = Some(entry.id.clone());
                n.last_scan = last.map(ts);
                n.reason = Some(match last {
                    Some(_) => format!(
                        "not scanned for {} (more than {})",
                        age(now - since),
                        humantime::format_duration(after)
                    ),
                    None => format!(
                        "never scanned, registered here {} ago (more than {})",
                        age(now - since),
                        humantime::format_duration(after)
                    ),
                });
                self.enqueue(&n)?;
                state.notified_for = Some(key);
            }
            self.stale
                .insert(entry.id.as_bytes(), serde_json::to_vec(&state)?)?;
        }
        Ok(())
    }

    /// Sends webhook `i`'s queue, oldest first, for ever.
    async fn deliver(self: Arc<Self>, i: usize) {
        let hook = &self.hooks[i];
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .max_redirects(0)
                .http_status_as_error(false)
                .timeout_global(Some(hook.config.timeout))
                .user_agent(concat!("ringleader/", env!("CARGO_PKG_VERSION")))
                .build(),
        );
        let prefix = queue_prefix(&hook.config.name);
        loop {
            let next = match self.queue.scan_prefix(&prefix).next() {
                Some(Ok((key, value))) => match serde_json::from_slice::<Queued>(&value) {
                    Ok(q) => Some((key, q)),
                    Err(e) => {
                        // Never written so by this code: dropped, said once.
                        tracing::error!(
                            "webhook {}: an unreadable queued notification is dropped: {e}",
                            hook.config.name
                        );
                        let _ = self.queue.remove(key);
                        continue;
                    }
                },
                Some(Err(e)) => {
                    tracing::error!("webhook {}: {e}", hook.config.name);
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
                None => None,
            };
            let Some((key, mut queued)) = next else {
                let _ = tokio::time::timeout(Duration::from_secs(5), hook.wake.notified()).await;
                continue;
            };
            queued.attempts += 1;
            let sent = {
                let (agent, url) = (agent.clone(), hook.config.url.clone());
                let secret = hook.config.secret.clone();
                let q = queued.clone();
                tokio::task::spawn_blocking(move || post(&agent, &url, &secret, &q))
                    .await
                    .unwrap_or_else(|e| Err(format!("the delivery task failed: {e}")))
            };
            if let Err(e) = self.settle(hook, &key, &queued, sent.clone()).await {
                tracing::error!("webhook {}: {e}", hook.config.name);
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
            if let Err(message) = sent {
                tracing::warn!(
                    "webhook {}: notification {} not delivered (try {} of {}): {message}",
                    hook.config.name,
                    queued.id,
                    queued.attempts,
                    hook.config.attempts
                );
                if queued.attempts < hook.config.attempts {
                    tokio::time::sleep(backoff(queued.attempts, hook.config.retry_max)).await;
                }
            }
        }
    }

    /// Records how a try went: delivered or dropped (out of the queue), else tried
    /// again later; durable before the next try.
    async fn settle(
        &self,
        hook: &Hook,
        key: &[u8],
        queued: &Queued,
        sent: Result<(), String>,
    ) -> Result<(), NotifyError> {
        let name = &hook.config.name;
        let mut stats = self.stats_of(name)?;
        let at = now();
        let state = match &sent {
            Ok(()) => {
                stats.delivered += 1;
                stats.last_delivered = Some(at);
                DeliveryState::Delivered
            }
            Err(message) => {
                stats.last_error = Some(AttemptErrorV1 {
                    at,
                    notification: queued.id.clone(),
                    attempt: queued.attempts,
                    message: message.clone(),
                });
                if queued.attempts >= hook.config.attempts {
                    stats.dropped += 1;
                    DeliveryState::Dropped
                } else {
                    DeliveryState::Pending
                }
            }
        };
        if state == DeliveryState::Pending {
            self.queue.insert(key, serde_json::to_vec(queued)?)?;
        } else {
            self.queue.remove(key)?;
        }
        if let Some(v) = self.log.get(queued.seq.to_be_bytes())? {
            let mut d: DeliveryV1 = serde_json::from_slice(&v)?;
            d.state = state;
            d.attempts = queued.attempts;
            if sent.is_ok() {
                d.delivered = Some(at);
            }
            d.last_error = sent.err().or(d.last_error);
            self.log
                .insert(queued.seq.to_be_bytes(), serde_json::to_vec(&d)?)?;
        }
        self.stats
            .insert(name.as_bytes(), serde_json::to_vec(&stats)?)?;
        self.trim()?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// Keeps the delivery log at [`LOG_KEPT`] entries, dropping the oldest settled.
    fn trim(&self) -> Result<(), NotifyError> {
        let mut over = self.log.len().saturating_sub(LOG_KEPT);
        for item in self.log.iter() {
            if over == 0 {
                break;
            }
            let (key, value) = item?;
            let d: DeliveryV1 = serde_json::from_slice(&value)?;
            if d.state != DeliveryState::Pending {
                self.log.remove(key)?;
                over -= 1;
            }
        }
        Ok(())
    }
}

const PUBLICATIONS: &str = "publications";

fn rollout_key(id: &str) -> Vec<u8> {
    format!("rollout:{id}").into_bytes()
}

fn queue_prefix(name: &str) -> Vec<u8> {
    let mut key = name.as_bytes().to_vec();
    key.push(0);
    key
}

fn ts(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn age(seconds: i64) -> String {
    humantime::format_duration(Duration::from_secs(u64::try_from(seconds).unwrap_or(0))).to_string()
}

/// The wait after try `attempt` failed: 1 s, doubling, at most `max`.
pub fn backoff(attempt: u32, max: Duration) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(20)).min(max)
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`: the signature header.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The URL as shown: no user, password or query (where a token may hide).
fn shown_url(url: &str) -> String {
    match url.parse::<ureq::http::Uri>() {
        Ok(uri) => format!(
            "{}://{}{}",
            uri.scheme_str().unwrap_or("https"),
            uri.host().unwrap_or_default(),
            uri.port().map_or(String::new(), |p| format!(":{p}")) + uri.path()
        ),
        Err(_) => String::from("(not a URL)"),
    }
}

/// One try: POST the body, signed; a 2xx answer delivers it.
fn post(agent: &ureq::Agent, url: &str, secret: &[u8], q: &Queued) -> Result<(), String> {
    use std::io::Read;
    let request = ureq::http::Request::builder()
        .method("POST")
        .uri(url)
        .header("Content-Type", "application/json")
        .header(SIGNATURE_HEADER, signature(secret, q.body.as_bytes()))
        .header("Ringleader-Delivery", &q.id)
        .header("Ringleader-Event", q.kind.as_str())
        .header("Ringleader-Attempt", q.attempts.to_string())
        .body(q.body.clone())
        .map_err(|e| format!("invalid request: {e}"))?;
    let response = agent.run(request).map_err(|e| e.to_string())?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let mut answer = Vec::new();
    let _ = response
        .into_body()
        .into_reader()
        .take(ANSWER_SHOWN as u64)
        .read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    let answer = answer.trim();
    Err(if answer.is_empty() {
        format!("the receiver answered {status}")
    } else {
        format!(
            "the receiver answered {status}: {}",
            ringleader_diag::escape(answer)
        )
    })
}

/// The notification a rollout's event makes, if it makes one.
fn notification_of(rollout: &Rollout, e: ringleader_api::event::EventV1) -> Option<NotificationV1> {
    let kind = match e.kind {
        EventKind::AwaitingApproval => NotificationKind::AwaitingApproval,
        EventKind::Halted => NotificationKind::Halted,
        EventKind::Completed => NotificationKind::Completed,
        EventKind::StepFailed => NotificationKind::DeviceFailed,
        EventKind::RebootFinished if e.ok == Some(false) => NotificationKind::DeviceFailed,
        EventKind::RollbackFinished if e.ok == Some(false) => NotificationKind::RollbackFailed,
        _ => return None,
    };
    let mut n = NotificationV1::new(format!("{}-{}", rollout.id, e.cursor), kind, e.at);
    n.rollout = Some(rollout.id.clone());
    n.policy = Some(rollout.policy.clone());
    n.ring = e.ring;
    n.device = e.device;
    n.patch = e.patch;
    n.reason = match e.kind {
        EventKind::RebootFinished => Some(format!(
            "reboot failed: {}",
            e.reason.as_deref().unwrap_or("no reason given")
        )),
        _ => e.reason,
    };
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_sha256_of_the_body_in_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn retries_wait_twice_as_long_each_time_up_to_the_cap() {
        let max = Duration::from_secs(300);
        let waits: Vec<u64> = (1..=11).map(|n| backoff(n, max).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(u32::MAX, max), max);
    }

    #[test]
    fn the_config_names_every_kind_the_api_has() {
        let api: Vec<&str> = NotificationKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(api, ringleader_runtime::config::WEBHOOK_EVENTS);
    }

    #[test]
    fn a_shown_url_has_no_password_or_query() {
        assert_eq!(
            shown_url("https://u:p@hooks.example.com:8443/in?token=x"),
            "https://hooks.example.com:8443/in"
        );
    }
}
