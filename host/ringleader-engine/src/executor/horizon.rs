//! One virtual time for several rollouts: each executor runs in virtual time up to a
//! horizon the driver sets, and parks there until the driver moves it on. This is how
//! the continuous demo runs a schedule's rollouts, an expedited one among them, side
//! by side in one simulated month: the driver acts at an instant (a schedule's run, a
//! source's poll) only once every rollout has done everything due by that instant and
//! no plugin call is in flight.

use jiff::Timestamp;
use tokio::sync::watch;

/// Where one executor is, as its driver sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Working (or not yet started).
    Running,
    /// Everything due by `horizon` is done and nothing is in flight; the next thing
    /// it would do is later.
    Parked { horizon: Timestamp },
    /// The run returned.
    Done,
}

/// The driver's side: sets the horizon, and waits for every executor to reach it.
#[derive(Debug)]
pub struct Driver {
    horizon: watch::Sender<Timestamp>,
}

/// An executor's side ([`crate::executor::Executor::horizon`]).
#[derive(Debug)]
pub struct Horizon {
    horizon: watch::Receiver<Timestamp>,
    position: watch::Sender<Position>,
}

/// What the driver keeps of one executor: where it is.
#[derive(Debug, Clone)]
pub struct Follower {
    position: watch::Receiver<Position>,
}

impl Follower {
    /// Whether its run has returned (or is returning: its result is moments away).
    pub fn is_done(&self) -> bool {
        *self.position.borrow() == Position::Done
    }
}

impl Driver {
    /// A driver whose executors may run up to `at`.
    pub fn new(at: Timestamp) -> Driver {
        Driver {
            horizon: watch::Sender::new(at),
        }
    }

    /// The horizon now.
    pub fn at(&self) -> Timestamp {
        *self.horizon.borrow()
    }

    /// A new executor's horizon, and the driver's view of it.
    pub fn follow(&self) -> (Horizon, Follower) {
        let (position, seen) = watch::channel(Position::Running);
        (
            Horizon {
                horizon: self.horizon.subscribe(),
                position,
            },
            Follower { position: seen },
        )
    }

    /// Lets the executors run up to `at` (never back).
    pub fn advance(&self, at: Timestamp) {
        self.horizon.send_if_modified(|h| {
            let moved = at > *h;
            if moved {
                *h = at;
            }
            moved
        });
    }

    /// Waits until `follower` has parked at the horizon (or finished).
    pub async fn reached(&self, follower: &mut Follower) -> Position {
        let at = self.at();
        let waited = follower
            .position
            .wait_for(|p| match p {
                Position::Running => false,
                Position::Parked { horizon } => *horizon >= at,
                Position::Done => true,
            })
            .await
            .map(|p| *p);
        // A dropped executor (its task ended) is done.
        waited.unwrap_or(Position::Done)
    }
}

impl Horizon {
    /// How far time may move now.
    pub(crate) fn at(&self) -> Timestamp {
        *self.horizon.borrow()
    }

    /// Parks at the horizon until the driver moves it; false when the driver is gone
    /// (time is then unbounded).
    pub(crate) async fn park(&mut self) -> bool {
        let at = *self.horizon.borrow_and_update();
        self.position.send_replace(Position::Parked { horizon: at });
        let moved = self.horizon.changed().await.is_ok();
        self.position.send_replace(Position::Running);
        moved
    }

    pub(crate) fn done(&self) {
        self.position.send_replace(Position::Done);
    }
}

impl Drop for Horizon {
    fn drop(&mut self) {
        self.done();
    }
}
