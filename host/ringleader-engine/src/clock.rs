//! Time for plugins during a rollout: the runtime's `HostClock` has two
//! implementations, real time (`ringleader_runtime::services::SystemClock`) and the
//! virtual time here, which the virtual executor moves forward. Plugins see the same
//! time the rollout core decides by, so a simulated rollout is consistent end to end.
//! ([`VirtualClock`] is plain data; its `HostClock` impl comes with the `runtime`
//! feature.)

use jiff::Timestamp;
#[cfg(feature = "runtime")]
use ringleader_runtime::services::{BoxFuture, HostClock};
#[cfg(feature = "runtime")]
use ringleader_types::Timestamp as Seconds;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
#[cfg(feature = "runtime")]
use std::time::Duration;

/// Virtual time, shared by the executor (which sets it) and plugins (which read it).
#[derive(Debug, Clone)]
pub struct VirtualClock {
    seconds: Arc<AtomicI64>,
}

impl VirtualClock {
    pub fn new(start: Timestamp) -> VirtualClock {
        VirtualClock {
            seconds: Arc::new(AtomicI64::new(start.as_second())),
        }
    }

    /// Moves virtual time to `now` (never backwards).
    pub fn set(&self, now: Timestamp) {
        self.seconds.fetch_max(now.as_second(), Ordering::SeqCst);
    }

    pub fn now(&self) -> Timestamp {
        Timestamp::from_second(self.seconds.load(Ordering::SeqCst)).unwrap_or(Timestamp::UNIX_EPOCH)
    }
}

#[cfg(feature = "runtime")]
impl HostClock for VirtualClock {
    fn now(&self) -> Seconds {
        self.seconds.load(Ordering::SeqCst)
    }

    /// A plugin's sleep passes no real time; the step's simulated duration already
    /// accounts for how long the device takes.
    fn sleep(&self, _duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_time_only_moves_forward() {
        let clock = VirtualClock::new("2026-11-02T08:00:00Z".parse().unwrap());
        clock.set("2026-11-03T08:00:00Z".parse().unwrap());
        clock.set("2026-11-01T08:00:00Z".parse().unwrap());
        assert_eq!(clock.now(), "2026-11-03T08:00:00Z".parse().unwrap());
        #[cfg(feature = "runtime")]
        assert_eq!(HostClock::now(&clock), clock.now().as_second());
    }
}
