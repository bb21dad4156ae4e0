//! Webhook notifications (docs/notifications.md): `ringleader.notification/v1`, the body
//! the daemon POSTs to a webhook, and `ringleader.notifications/v1`, the delivery log
//! (`GET /v1/notifications`, `ringleader notifications --json`).

use crate::plugin::SeverityV1;
use crate::{Document, Schema};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

named! {
    /// What a notification is about; a webhook names the kinds it wants (`events`).
    pub enum NotificationKind {
        /// A ring waits for a person's approval.
        AwaitingApproval = "awaiting-approval",
        /// A rollout halted (`reason` says why).
        Halted = "halted",
        /// A rollout completed.
        Completed = "completed",
        /// A device's step or its reboot failed.
        DeviceFailed = "device-failed",
        /// A device's rollback failed: it is left as the failed step left it.
        RollbackFailed = "rollback-failed",
        /// A source published a patch of a severity the webhook asks for.
        PatchPublished = "patch-published",
        /// A device of the fleet registry has not been scanned for longer than
        /// `[notifications] not_scanned_after`.
        DeviceNotScanned = "device-not-scanned",
    }
}

/// `ringleader.notification/v1` (docs/schemas/notification.v1.json): one webhook body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationV1 {
    pub schema: Schema<NotificationV1>,
    /// The same for every delivery of the same thing (a retry, or a resend after a
    /// crash): a receiver that has seen it can ignore it.
    pub id: String,
    pub kind: NotificationKind,
    /// When it happened (a rollout's log time, a first sighting, the check's time).
    pub at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<String>,
    /// The rollout's policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<SeverityV1>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cves: Vec<String>,
    /// The source that published the patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Why: a halt's reason, a failure's, how long a device went unscanned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The device's last scan (`device-not-scanned`); absent when never scanned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_scan: Option<Timestamp>,
}

impl Document for NotificationV1 {
    const SCHEMA: &'static str = "ringleader.notification/v1";
}

impl NotificationV1 {
    /// A notification with nothing but its id, kind and time.
    pub fn new(id: String, kind: NotificationKind, at: Timestamp) -> NotificationV1 {
        NotificationV1 {
            schema: Schema::new(),
            id,
            kind,
            at,
            rollout: None,
            policy: None,
            ring: None,
            device: None,
            patch: None,
            severity: None,
            cves: Vec::new(),
            source: None,
            reason: None,
            last_scan: None,
        }
    }
}

/// `ringleader.notifications/v1` (docs/schemas/notifications.v1.json): the delivery log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationsV1 {
    pub schema: Schema<NotificationsV1>,
    /// Every webhook of the operator config, by name.
    pub webhooks: Vec<WebhookV1>,
    /// The latest deliveries, newest first (at most the `limit` asked for).
    pub deliveries: Vec<DeliveryV1>,
}

impl Document for NotificationsV1 {
    const SCHEMA: &'static str = "ringleader.notifications/v1";
}

/// One webhook and how its deliveries went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookV1 {
    pub name: String,
    /// Its URL without user, password or query.
    pub url: String,
    pub events: Vec<NotificationKind>,
    /// Waiting to be sent (the first of them being tried).
    pub pending: u64,
    pub delivered: u64,
    /// Given up after the webhook's `attempts`.
    pub dropped: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_delivered: Option<Timestamp>,
    /// The last failed attempt, kept after later successes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<AttemptErrorV1>,
}

/// A failed attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptErrorV1 {
    pub at: Timestamp,
    /// The notification's id.
    pub notification: String,
    /// 1 for the first try.
    pub attempt: u32,
    pub message: String,
}

named! {
    /// Where a delivery is.
    pub enum DeliveryState {
        Pending = "pending",
        Delivered = "delivered",
        Dropped = "dropped",
    }
}

/// One notification to one webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryV1 {
    /// The notification's id.
    pub id: String,
    pub webhook: String,
    pub kind: NotificationKind,
    /// When it was queued.
    pub queued: Timestamp,
    pub state: DeliveryState,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}
