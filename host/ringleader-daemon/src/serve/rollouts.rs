//! The daemon's rollouts: each one a directory under `DATA/rollouts/`, an executor task
//! while it runs, and what the API reads about it.

pub use crate::session::{Clock, Fleet, Inputs};
use crate::session::{Run, Session};
use jiff::Timestamp;
use ringleader_engine::core::{Core, JobId, Phase};
use ringleader_engine::executor::{Command, Metrics};
use ringleader_engine::store::{PhaseName, Record, Status, Store, StoredEvent};
use ringleader_planner::catalog::Catalog;
use ringleader_planner::inventory::Inventory;
use ringleader_planner::policy::Policy;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// What is known about a rollout's patches and devices, for the device views.
#[derive(Debug, Default)]
pub struct Facts {
    /// Patch id: component, fixed version, release time.
    pub patches: HashMap<String, (String, String, i64)>,
    /// Device id: its components and versions when the rollout started.
    pub components: HashMap<String, Vec<(String, String)>>,
    /// Device id of every job.
    pub devices: Vec<Vec<String>>,
    /// Patch ids of every job's steps.
    pub steps: Vec<Vec<Vec<String>>>,
    /// Job of every device.
    pub jobs: HashMap<String, JobId>,
    /// The patches as planned, for explaining the plan.
    pub catalog: Option<Arc<Catalog>>,
}

/// Where a rollout is, as the API reports it.
#[derive(Debug, Clone)]
pub struct Live {
    pub status: Option<Status>,
    /// Still discovering and planning (or replaying after a restart).
    pub preparing: bool,
    /// Preparing failed: why.
    pub error: Option<String>,
    /// The executor returned (completed, halted and idle, aborted, or shut down).
    pub ended: bool,
    /// The log cannot be written (why): nothing is dispatched; the daemon opens the
    /// store again every [`STALL_RETRY`] and goes on once a write succeeds.
    pub stalled: Option<String>,
}

impl Live {
    /// Halted, and its executor returned: it waits for an operator (`retry`,
    /// `rollback`, `abort`), who runs it again from its log.
    pub fn halted(&self) -> bool {
        self.ended
            && self.error.is_none()
            && self
                .status
                .as_ref()
                .is_some_and(|s| s.phase == PhaseName::Halted)
    }
}

/// How often a stalled rollout's store is tried again.
pub const STALL_RETRY: Duration = Duration::from_secs(5);

/// One rollout of the daemon.
pub struct Rollout {
    pub id: String,
    /// The policy's name.
    pub policy: String,
    pub inputs: Inputs,
    pub store: Store,
    pub live: RwLock<Live>,
    pub facts: RwLock<Facts>,
    pub metrics: Arc<Metrics>,
    control: Mutex<Option<mpsc::UnboundedSender<Command>>>,
    /// The core once the executor has returned, for questions after the end.
    last: RwLock<Option<(Core, Timestamp)>>,
    /// Bumped whenever the rollout moves: event readers wait on it.
    pub changed: watch::Sender<u64>,
}

impl std::fmt::Debug for Rollout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rollout").field("id", &self.id).finish()
    }
}

/// Why a command could not be given to a rollout.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("rollout {0} has ended; it takes no more commands")]
    Ended(String),
    #[error("rollout {0} is still being prepared; try again in a moment")]
    Preparing(String),
}

impl Rollout {
    /// Over with nothing left to run: completed, aborted, or halted with every
    /// rollback finished.
    fn settled(status: &Status) -> bool {
        status.phase.is_final()
            && !status.unsettled
            && status.rings.iter().all(|r| r.rolling_back == 0)
    }
}

impl Rollout {
    /// Sends an operator command, with who asked for it (logged first, for audit).
    pub fn command(&self, command: Command, action: &str, by: &str) -> Result<(), CommandError> {
        let guard = self.control.lock().unwrap_or_else(|e| e.into_inner());
        let Some(control) = guard.as_ref() else {
            let live = self.live.read().unwrap_or_else(|e| e.into_inner());
            return Err(if live.preparing {
                CommandError::Preparing(self.id.clone())
            } else {
                CommandError::Ended(self.id.clone())
            });
        };
        let audit = Command::Audit {
            by: by.to_string(),
            action: action.to_string(),
        };
        if control.send(audit).is_err() || control.send(command).is_err() {
            return Err(CommandError::Ended(self.id.clone()));
        }
        Ok(())
    }

    /// Answers `look` from the rollout's core: the running executor's (between two
    /// events) or the last one's. `None` while the rollout is being prepared. An
    /// executor that ends while asked leaves its last core a moment later: `look` is
    /// answered from that one (never "being prepared" for a rollout that ran).
    pub async fn inspect<T: Send + 'static>(
        &self,
        look: impl FnOnce(&Core, Timestamp) -> T + Send + 'static,
    ) -> Option<T> {
        // Shared with the executor's inspector: taken by whichever runs it.
        let look = Arc::new(Mutex::new(Some(look)));
        for _ in 0..500 {
            let receiver = {
                let guard = self.control.lock().unwrap_or_else(|e| e.into_inner());
                match guard.as_ref() {
                    Some(control) => {
                        let (tx, rx) = oneshot::channel();
                        let shared = look.clone();
                        let inspector = Box::new(move |core: &Core, now: Timestamp| {
                            let look = shared.lock().unwrap_or_else(|e| e.into_inner()).take();
                            if let Some(look) = look {
                                let _ = tx.send(look(core, now));
                            }
                        });
                        control
                            .send(Command::Inspect(inspector))
                            .is_ok()
                            .then_some(rx)
                    }
                    None => {
                        let last = self.last.read().unwrap_or_else(|e| e.into_inner());
                        let look = look.lock().unwrap_or_else(|e| e.into_inner()).take()?;
                        return last.as_ref().map(|(core, now)| look(core, *now));
                    }
                }
            };
            if let Some(rx) = receiver {
                match tokio::time::timeout(Duration::from_secs(30), rx).await {
                    Ok(Ok(value)) => return Some(value),
                    // The executor ended before it answered.
                    Ok(Err(_)) => {}
                    Err(_) => return None,
                }
            }
            // The executor is ending: its last core is kept before it stops taking
            // commands, in a moment.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// An executor runs it now (it takes commands).
    pub fn is_running(&self) -> bool {
        self.control
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    fn set_live(&self, update: impl FnOnce(&mut Live)) {
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        update(&mut live);
        drop(live);
        self.changed.send_modify(|n| *n += 1);
    }
}

/// A rollout whose store cannot be read: listed with the reason, its files left as
/// they are, never run; the daemon serves the others.
#[derive(Debug, Clone)]
pub struct Unreadable {
    pub id: String,
    pub path: PathBuf,
    pub error: String,
}

/// A rollout's store, its inputs and its status view, or why they cannot be read.
fn open_rollout(path: &Path) -> Result<(Store, Inputs, Option<Status>), String> {
    let store = Store::open(path).map_err(|e| e.to_string())?;
    let inputs = Inputs::of_store(&store)?
        .ok_or("its store holds no inputs (what the rollout was started from)")?;
    let status = store.status().map_err(|e| e.to_string())?;
    Ok((store, inputs, status))
}

/// Every rollout of the daemon, and what running them needs.
pub struct Rollouts {
    /// The standing schedules it runs (`serve --schedules`).
    scheduler: std::sync::OnceLock<Arc<super::schedules::Scheduler>>,
    /// The webhooks' notifications (`DATA/notifications/`).
    notifier: Arc<super::notify::Notifier>,
    /// Rollouts whose store could not be read, by number.
    unreadable: RwLock<BTreeMap<u64, Unreadable>>,
    dir: PathBuf,
    /// What every rollout runs with: plugins, grants, the simulated devices' state and
    /// the plugins' kv store (on disk: it survives restarts, as the contract says).
    session: Session,
    /// The fleet registry (`DATA/fleet/`): what scans found on each device.
    fleet: crate::fleet::Registry,
    /// One fleet scan at a time (an operator's or the periodic one).
    scanning: tokio::sync::Mutex<()>,
    /// The last catalog discovered for compliance.
    catalog: crate::compliance::CatalogCache,
    /// The patches the sources published, each first sighting kept (`DATA/publications/`).
    publications: crate::publications::Watch,
    /// Source polls since the start: made, failed; patches published by severity rank.
    pub polls: [std::sync::atomic::AtomicU64; 2],
    pub published: [std::sync::atomic::AtomicU64; 5],
    /// One poll at a time.
    polling: tokio::sync::Mutex<()>,
    /// The last compliance computed "now", and its JSON: answered again for
    /// [`COMPLIANCE_REUSE`] while the registry and the catalog stay the same.
    compliance: tokio::sync::Mutex<Option<CachedCompliance>>,
    /// What compliance last read of the registry (read again only as a write calls
    /// for).
    registry_reads: Arc<Mutex<crate::compliance::RegistryReads>>,
    all: RwLock<BTreeMap<u64, Arc<Rollout>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// How long a compliance computed for "now" is answered again, while the registry and
/// the catalog stay the same (its `at` says when it was computed; ages are in days).
pub const COMPLIANCE_REUSE: Duration = Duration::from_secs(10);

/// How long after it was computed a compliance for "now" is still answered, while a
/// newer one is computed in the background (the registry and the catalog the same):
/// a dashboard that polls never waits for the computation, and a script that asks
/// once in a while gets an answer computed for it.
pub const COMPLIANCE_STALE: Duration = Duration::from_secs(60);

/// A compliance answer: the document, its JSON (keys sorted, as the API writes it),
/// and that JSON gzip-compressed (for clients that accept it: a large fleet's answer
/// is tens of megabytes and compresses about seventyfold).
#[derive(Debug, Clone)]
pub struct ComplianceAnswer {
    pub doc: Arc<ringleader_api::compliance::ComplianceV1>,
    pub json: axum::body::Bytes,
    pub gzip: axum::body::Bytes,
}

/// A compliance answer and what it was computed from.
#[derive(Debug)]
struct CachedCompliance {
    /// The filter (as JSON) and the registry's generation.
    key: (String, u64),
    /// When the catalog it was computed against was discovered.
    discovered_at: Timestamp,
    computed: std::time::Instant,
    answer: ComplianceAnswer,
    /// A newer one is being computed in the background.
    refreshing: bool,
}

impl CachedCompliance {
    /// `answer`, computed just now.
    fn new(key: (String, u64), discovered_at: Timestamp, answer: ComplianceAnswer) -> Self {
        CachedCompliance {
            key,
            discovered_at,
            computed: std::time::Instant::now(),
            answer,
            refreshing: false,
        }
    }
}

impl std::fmt::Debug for Rollouts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rollouts").field("dir", &self.dir).finish()
    }
}

/// The number in a rollout id: exactly `r` and decimal digits without a leading zero
/// (`r1`, `r42`), so one rollout has one id (`r01` and `r+1` name none).
fn number(id: &str) -> Option<u64> {
    let digits = id.strip_prefix('r')?;
    let plain = digits.starts_with(|c: char| matches!(c, '1'..='9'))
        && digits.bytes().all(|b| b.is_ascii_digit());
    plain.then(|| digits.parse().ok()).flatten()
}

impl Rollouts {
    /// Opens every rollout in `data`, and resumes those that had not ended.
    pub fn open(data: &Path, session: Session) -> anyhow::Result<Arc<Rollouts>> {
        let dir = data.join("rollouts");
        std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("failed to create {}: {e}", dir.display()))?;
        let fleet = crate::fleet::Registry::open(&data.join("fleet"))?;
        let publications = crate::publications::Watch::open(&data.join("publications"))?;
        let (webhooks, notifications) = session.webhooks();
        let notifier = Arc::new(super::notify::Notifier::open(
            &data.join("notifications"),
            webhooks,
            notifications,
        )?);
        let rollouts = Arc::new(Rollouts {
            scheduler: std::sync::OnceLock::new(),
            notifier,
            publications,
            polls: Default::default(),
            published: Default::default(),
            polling: tokio::sync::Mutex::new(()),
            dir: dir.clone(),
            session,
            fleet,
            scanning: tokio::sync::Mutex::new(()),
            catalog: crate::compliance::CatalogCache::default(),
            compliance: tokio::sync::Mutex::new(None),
            registry_reads: Arc::default(),
            all: RwLock::new(BTreeMap::new()),
            unreadable: RwLock::new(BTreeMap::new()),
            tasks: Mutex::new(Vec::new()),
        });
        let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(&dir)
            .map_err(|e| anyhow::anyhow!("failed to read {}: {e}", dir.display()))?
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let name = entry.file_name().into_string().ok()?;
                Some((number(&name)?, entry.path()))
            })
            .collect();
        found.sort();
        for (n, path) in found {
            let (store, inputs, status) = match open_rollout(&path) {
                Ok(opened) => opened,
                Err(error) => {
                    tracing::error!(
                        "rollout r{n} is unreadable and left as it is (its files in {}): {error}",
                        path.display()
                    );
                    let unreadable = Unreadable {
                        id: format!("r{n}"),
                        path,
                        error,
                    };
                    rollouts
                        .unreadable
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(n, unreadable);
                    continue;
                }
            };
            // Halted with rollbacks still to finish (an operator's rollback cut off by
            // a restart, say): run on.
            let ended = status.as_ref().is_some_and(Rollout::settled);
            let rollout = rollouts.insert(n, inputs, store, status);
            if ended {
                // Finished: read-only, answered from the log and its status view; the
                // core is rebuilt in the background for device questions.
                rollout.set_live(|l| {
                    l.preparing = false;
                    l.ended = true;
                });
            }
            rollouts.launch(rollout, !ended, None);
        }
        Ok(rollouts)
    }

    fn insert(&self, n: u64, inputs: Inputs, store: Store, status: Option<Status>) -> Arc<Rollout> {
        let (changed, _) = watch::channel(0);
        let policy = Policy::parse(Path::new(&inputs.policy_name), &inputs.policy)
            .0
            .map_or_else(|| inputs.policy_name.clone(), |p| p.name);
        let rollout = Arc::new(Rollout {
            id: format!("r{n}"),
            policy,
            inputs,
            store,
            live: RwLock::new(Live {
                status,
                preparing: true,
                error: None,
                ended: false,
                stalled: None,
            }),
            facts: RwLock::new(Facts::default()),
            metrics: Arc::default(),
            control: Mutex::new(None),
            last: RwLock::new(None),
            changed,
        });
        self.all
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(n, rollout.clone());
        rollout
    }

    /// Whether every device can be reached and patched: its transport can be used with
    /// the operator's config (the credentials it names exist), and the installer it
    /// names is loaded.
    pub fn check_devices(&self, inventory: &Inventory) -> Result<(), String> {
        self.session.check_devices(inventory)
    }

    /// The fleet registry.
    pub fn fleet(&self) -> &crate::fleet::Registry {
        &self.fleet
    }

    /// How fleet scans run (the operator config's `[scan]`).
    pub fn scan_options(&self) -> crate::session::ScanOptions {
        self.session.scan_options()
    }

    /// The rollout that rolled `device`'s `component` back after `since`, if one did:
    /// one whose steps on the device changed the component and whose log has a
    /// rollback of the device that succeeded since then. A scan that finds such a
    /// component lower than before records a change, not drift.
    fn rolled_back(&self, device: &str, component: &str, since: Timestamp) -> Option<String> {
        let since = since.as_second();
        self.list().into_iter().find_map(|rollout| {
            let job = {
                let facts = rollout.facts.read().unwrap_or_else(|e| e.into_inner());
                let job = *facts.jobs.get(device)?;
                let steps = facts
                    .steps
                    .get(usize::from(job.ring))?
                    .get(job.index as usize)?;
                let touched = steps.iter().any(|patch| {
                    facts
                        .patches
                        .get(patch)
                        .is_some_and(|(c, _, _)| c == component)
                });
                touched.then_some(job)?
            };
            let records = rollout.store.records_of_job((job.ring, job.index)).ok()?;
            records
                .into_iter()
                .any(|(_, record)| {
                    matches!(
                        record,
                        Record::Event {
                            at,
                            event: StoredEvent::RollbackFinished { ok: true, .. },
                        } if at >= since
                    )
                })
                .then(|| rollout.id.clone())
        })
    }

    /// How often the registry is scanned on its own, if it is.
    pub fn scan_every(&self) -> Option<Duration> {
        self.session.scan_every()
    }

    /// Scans devices into the registry: those of `inventory` (name, text; added to the
    /// registry first), else of every inventory the registry has; only `ids` when some
    /// are given. One scan at a time; devices a rollout step runs on are skipped
    /// (`busy`) and scanned next time.
    pub async fn scan(
        &self,
        inventory: Option<(String, String)>,
        ids: &[String],
        options: crate::session::ScanOptions,
    ) -> anyhow::Result<ringleader_api::fleet::FleetScanV1> {
        use ringleader_api::fleet::{FleetScanV1, ScannedV1};
        let _one = self.scanning.lock().await;
        let started = std::time::Instant::now();
        // An inventory given is added to the registry; the registry's own files
        // (a periodic scan) are already in it.
        let given = inventory.is_some();
        let files = match inventory {
            Some(file) => vec![file],
            None => self.fleet.inventories()?,
        };
        let mut devices = Vec::new();
        let mut found = std::collections::HashSet::new();
        for (name, text) in files {
            let parsed =
                Inventory::parse(Path::new(&name), &text).map_err(|e| anyhow::anyhow!("{e}"))?;
            self.session
                .check_devices(&parsed)
                .map_err(anyhow::Error::msg)?;
            if given {
                self.fleet.register(&name, &text, &parsed)?;
            }
            found.extend(parsed.devices.iter().map(|d| d.id.clone()));
            let fleet = self.fleet.clone();
            let mut failed_to_record = None;
            self.session
                .scan(&parsed, ids, options, |outcome| {
                    let mut seen = ScannedV1 {
                        id: outcome.id.clone(),
                        ok: outcome.result.is_ok(),
                        duration_ms: outcome.duration_ms,
                        components: outcome.result.as_ref().ok().map(|s| s.components.len()),
                        changed: 0,
                        error: outcome.result.as_ref().err().cloned(),
                    };
                    let device = outcome.id.clone();
                    let rolled_back = |component: &str, since: Timestamp| {
                        self.rolled_back(&device, component, since)
                    };
                    match fleet.record(outcome, rolled_back) {
                        Ok(changed) => seen.changed = changed,
                        Err(e) => failed_to_record = Some(e),
                    }
                    devices.push(seen);
                })
                .await?;
            if let Some(e) = failed_to_record {
                return Err(e.into());
            }
        }
        if let Some(missing) = ids.iter().find(|id| !found.contains(*id)) {
            anyhow::bail!("no device `{missing}` in the inventory");
        }
        devices.sort_by(|a, b| a.id.cmp(&b.id));
        let ok = devices.iter().filter(|d| d.ok).count();
        Ok(FleetScanV1 {
            schema: ringleader_api::Schema::new(),
            scanned: devices.len(),
            ok,
            failed: devices.len() - ok,
            duration_ms: started.elapsed().as_millis() as u64,
            devices,
        })
    }

    /// The fleet registry's compliance (`ringleader.compliance/v1`) and its JSON:
    /// against the kept catalog, discovered again when stale or when `refresh`. For
    /// "now" (no `at`), one computed from the same registry, catalog and filter is
    /// answered again: as it is within [`COMPLIANCE_REUSE`], and up to
    /// [`COMPLIANCE_STALE`] while a newer one is computed in the background. Callers
    /// that come while an answer is computed for them wait for that one: a dashboard
    /// polling a large fleet costs one computation every few seconds, not one per
    /// request. The work runs off the async threads.
    pub async fn compliance(
        self: &Arc<Self>,
        filter: ringleader_api::compliance::FilterV1,
        at: Option<Timestamp>,
        refresh: bool,
    ) -> anyhow::Result<ComplianceAnswer> {
        if at.is_some() {
            return Ok(self.compute_compliance(filter, at, refresh).await?.0);
        }
        let key = self.compliance_key(&filter);
        // Checked before anything is read: a reused answer costs a lock and a clone.
        let mut cache = self.compliance.lock().await;
        if !refresh
            && let Some(c) = cache.as_mut()
            && c.key == key
            && self.catalog.kept_at().await == Some(c.discovered_at)
        {
            let age = c.computed.elapsed();
            if age < COMPLIANCE_REUSE {
                return Ok(c.answer.clone());
            }
            if age < COMPLIANCE_STALE {
                if !c.refreshing {
                    c.refreshing = true;
                    let this = self.clone();
                    tokio::spawn(async move { this.refresh_compliance(filter).await });
                }
                return Ok(c.answer.clone());
            }
        }
        let (answer, discovered_at) = self.compute_compliance(filter, None, refresh).await?;
        *cache = Some(CachedCompliance::new(key, discovered_at, answer.clone()));
        Ok(answer)
    }

    /// The cache key of a compliance for "now" with `filter`.
    fn compliance_key(&self, filter: &ringleader_api::compliance::FilterV1) -> (String, u64) {
        (
            serde_json::to_string(filter).unwrap_or_default(),
            self.fleet.generation(),
        )
    }

    /// Computes a compliance for "now" in the background, and keeps it unless a newer
    /// one was kept meanwhile; callers are answered the one before until then.
    async fn refresh_compliance(self: Arc<Self>, filter: ringleader_api::compliance::FilterV1) {
        let key = self.compliance_key(&filter);
        let started = std::time::Instant::now();
        let computed = self.compute_compliance(filter, None, false).await;
        let mut cache = self.compliance.lock().await;
        match computed {
            Ok((answer, discovered_at)) => {
                if cache.as_ref().is_none_or(|c| c.computed < started) {
                    *cache = Some(CachedCompliance::new(key, discovered_at, answer));
                }
            }
            Err(e) => {
                tracing::warn!("compliance computed in the background failed: {e:#}");
                if let Some(c) = cache.as_mut() {
                    c.refreshing = false;
                }
            }
        }
    }

    /// The registry's devices for compliance: the last ones read, unless a write
    /// changed the registry since.
    async fn compliance_devices(&self) -> anyhow::Result<crate::compliance::RegistryDevices> {
        let (fleet, reads) = (self.fleet.clone(), self.registry_reads.clone());
        tokio::task::spawn_blocking(move || {
            reads
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .devices(&fleet)
        })
        .await
        .map_err(|e| anyhow::anyhow!("compliance: {e}"))?
    }

    /// Polls the sources named `only` (every source: `None`) for the registry's
    /// devices and records what is new or changed, each at this poll's time (whole
    /// seconds), durably before returning.
    pub async fn poll_sources(
        &self,
        only: Option<&[String]>,
    ) -> anyhow::Result<Vec<crate::publications::Published>> {
        use std::sync::atomic::Ordering;
        let _one = self.polling.lock().await;
        self.polls[0].fetch_add(1, Ordering::Relaxed);
        let result = async {
            let devices = self.compliance_devices().await?;
            if devices.1.devices.is_empty() {
                return Ok(Vec::new());
            }
            let sources = self.session.sources_for(&devices.1).await?;
            let reported = match only {
                Some(names) => sources.poll_only(names).await?,
                None => sources.poll().await?,
            };
            let at = super::now();
            let watch = &self.publications;
            Ok(watch.observe(at, &reported)?)
        }
        .await;
        match &result {
            Ok(new) => {
                for p in new {
                    let rank = ringleader_planner::compliance::rank(p.publication.severity);
                    self.published[rank].fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(_) => {
                self.polls[1].fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }

    /// The publications log from cursor `since`, at most `limit` entries.
    pub fn publications_since(
        &self,
        since: u64,
        limit: usize,
    ) -> anyhow::Result<Vec<(u64, crate::publications::Published)>> {
        Ok(self.publications.since(since, limit)?)
    }

    /// Time to patch at `at` (default now): each patch from its first sighting to each
    /// install the rollouts' logs hold; the registry's devices that still lack it
    /// (its compliance) are outstanding.
    pub async fn time_to_patch(
        self: &Arc<Self>,
        at: Option<Timestamp>,
    ) -> anyhow::Result<ringleader_api::report::TimeToPatchReportV1> {
        use ringleader_planner::time_to_patch::{Pair, report};
        let at = at.unwrap_or_else(super::now);
        let publications = self.publications.known().for_time_to_patch();
        let rollouts = self.list();
        let (installs, read, unread) = tokio::task::spawn_blocking(move || {
            let mut installs: BTreeMap<(String, String), Timestamp> = BTreeMap::new();
            let (mut read, mut unread) = (0u32, Vec::new());
            for rollout in rollouts {
                let preparing = rollout
                    .live
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .preparing;
                if preparing {
                    unread.push(rollout.id.clone());
                    continue;
                }
                let mut log = crate::time_to_patch::LogInstalls::default();
                let (mut from, end) = (0, rollout.store.committed_len());
                while from < end {
                    let records = rollout.store.records_from(from, 10_000)?;
                    let Some(last) = records.last().map(|(seq, _)| *seq) else {
                        break;
                    };
                    for (seq, record) in &records {
                        if *seq < end {
                            log.see(record);
                        }
                    }
                    from = last + 1;
                }
                let facts = rollout.facts.read().unwrap_or_else(|e| e.into_inner());
                let job = |(ring, index): (u16, u32)| {
                    let device = facts.devices.get(usize::from(ring))?.get(index as usize)?;
                    let steps = facts.steps.get(usize::from(ring))?.get(index as usize)?;
                    Some((device.as_str(), steps.as_slice()))
                };
                for (device, patch, t) in log.installs(job) {
                    installs
                        .entry((device, patch))
                        .and_modify(|e| *e = (*e).min(t))
                        .or_insert(t);
                }
                read += 1;
            }
            anyhow::Ok((installs, read, unread))
        })
        .await
        .map_err(|e| anyhow::anyhow!("time to patch: {e}"))??;
        let compliance = self
            .compliance(ringleader_api::compliance::FilterV1::default(), None, false)
            .await
            .map_err(|e| {
                anyhow::anyhow!("the registry's compliance (what devices still lack): {e:#}")
            })?;
        let mut pairs: Vec<Pair> = installs
            .iter()
            .map(|((device, patch), t)| Pair {
                patch: patch.clone(),
                device: device.clone(),
                installed: Some(t.as_second()),
            })
            .collect();
        for d in &compliance.doc.devices {
            for m in &d.missing {
                if !installs.contains_key(&(d.id.clone(), m.patch.clone())) {
                    pairs.push(Pair {
                        patch: m.patch.clone(),
                        device: d.id.clone(),
                        installed: None,
                    });
                }
            }
        }
        let times = report(&publications, &pairs, at.as_second());
        Ok(ringleader_api::report::TimeToPatchReportV1 {
            schema: ringleader_api::Schema::new(),
            at,
            publications: publications
                .iter()
                .filter(|p| p.published <= at.as_second())
                .count() as u32,
            rollouts: read,
            unread,
            installs: installs.values().filter(|t| **t <= at).count() as u32,
            severities: times.iter().map(crate::time_to_patch::times_v1).collect(),
        })
    }

    /// The standing schedules the daemon runs, once it runs them.
    pub fn set_scheduler(&self, scheduler: Arc<super::schedules::Scheduler>) {
        let _ = self.scheduler.set(scheduler);
    }

    /// The standing schedules it runs, if it runs any.
    pub fn scheduler(&self) -> Option<&Arc<super::schedules::Scheduler>> {
        self.scheduler.get()
    }

    /// What every rollout runs with.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The webhooks' notifier.
    pub fn notifier(&self) -> &Arc<super::notify::Notifier> {
        &self.notifier
    }

    /// The cursor the publications log's next entry will have.
    pub fn publications_end(&self) -> anyhow::Result<u64> {
        Ok(self.publications.end()?)
    }

    /// Each source polled on its own, with its interval (`[sources]`).
    pub fn poll_plan(&self) -> anyhow::Result<Vec<(String, std::time::Duration)>> {
        self.session.poll_plan()
    }

    /// Computes a compliance (for `at`, else now), with the catalog's discovery time.
    async fn compute_compliance(
        &self,
        filter: ringleader_api::compliance::FilterV1,
        at: Option<Timestamp>,
        refresh: bool,
    ) -> anyhow::Result<(ComplianceAnswer, Timestamp)> {
        let began = std::time::Instant::now();
        let devices = self.compliance_devices().await?;
        let read = began.elapsed();
        let (catalog, discovered_at) = self.catalog.get(&self.session, &devices.1, refresh).await?;
        let discovered = began.elapsed();
        let request = crate::compliance::Request {
            filter,
            at: at.unwrap_or_else(super::now),
            interval: self.scan_every().unwrap_or(crate::compliance::RECENT_SCAN),
        };
        let answer = tokio::task::spawn_blocking(move || {
            let (entries, inventory) = &*devices;
            let doc =
                crate::compliance::document(entries, inventory, &catalog, discovered_at, &request);
            let computed = began.elapsed();
            // Keys sorted, as every other answer of the API: the document's fields are
            // declared in key order (ringleader_api::compliance).
            let json = serde_json::to_vec(&doc).map_err(|e| anyhow::anyhow!("compliance: {e}"))?;
            let written = began.elapsed();
            let gzip = gzip(&json).map_err(|e| anyhow::anyhow!("compliance: {e}"))?;
            tracing::info!(
                devices = doc.devices.len(),
                bytes = json.len(),
                gzip_bytes = gzip.len(),
                "compliance computed in {} ms (registry read {} ms, catalog {} ms, \
                 numbers {} ms, JSON {} ms, gzip {} ms)",
                began.elapsed().as_millis(),
                read.as_millis(),
                (discovered - read).as_millis(),
                (computed - discovered).as_millis(),
                (written - computed).as_millis(),
                (began.elapsed() - written).as_millis(),
            );
            anyhow::Ok(ComplianceAnswer {
                doc: Arc::new(doc),
                json: json.into(),
                gzip: gzip.into(),
            })
        })
        .await
        .map_err(|e| anyhow::anyhow!("compliance: {e}"))??;
        Ok((answer, discovered_at))
    }

    /// What the registry's last scans found on the devices of `inventory` (for a
    /// rollout to plan with); devices never scanned are left out.
    pub fn observed(
        &self,
        inventory: &Inventory,
    ) -> anyhow::Result<BTreeMap<String, crate::session::Observed>> {
        let mut observed = BTreeMap::new();
        for device in &inventory.devices {
            if let Some(scan) = self.fleet.get(&device.id)?.and_then(|e| e.last_scan) {
                observed.insert(
                    device.id.clone(),
                    crate::session::Observed {
                        components: scan.components,
                        os: scan.os,
                    },
                );
            }
        }
        Ok(observed)
    }

    /// Creates a rollout from validated inputs and starts it; `by` (the token's name)
    /// is recorded as its first audit entry.
    pub fn start(&self, inputs: Inputs, by: &str) -> anyhow::Result<Arc<Rollout>> {
        let n = {
            let all = self.all.read().unwrap_or_else(|e| e.into_inner());
            let unreadable = self.unreadable.read().unwrap_or_else(|e| e.into_inner());
            let last = all.keys().next_back().max(unreadable.keys().next_back());
            last.map_or(1, |n| n + 1)
        };
        let dir = self.dir.join(format!("r{n}"));
        let mut store = Store::open(&dir)?;
        // Who started it is the log's first record, durable before the answer.
        store.append(&Record::Audit {
            at: inputs.start.as_second(),
            by: by.to_string(),
            action: "start".into(),
        })?;
        inputs.record(&store)?;
        let rollout = self.insert(n, inputs, store, None);
        self.launch(rollout.clone(), true, None);
        Ok(rollout)
    }

    pub fn get(&self, id: &str) -> Option<Arc<Rollout>> {
        let n = number(id)?;
        self.all
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&n)
            .cloned()
    }

    /// The rollout `id` if its store could not be read.
    pub fn unreadable(&self, id: &str) -> Option<Unreadable> {
        let n = number(id)?;
        self.unreadable
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&n)
            .cloned()
    }

    /// Every rollout whose store could not be read, by number.
    pub fn list_unreadable(&self) -> Vec<Unreadable> {
        self.unreadable
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn list(&self) -> Vec<Arc<Rollout>> {
        self.all
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// An operator's command to a rollout: sent to its executor when it runs; a halted
    /// rollout whose executor ended (nothing left to do by itself) is run again from
    /// its log, the command (after its audit record) first. Whether the command
    /// applies is the caller's to check.
    pub fn operate(
        &self,
        rollout: &Arc<Rollout>,
        command: Command,
        action: &str,
        by: &str,
    ) -> Result<(), CommandError> {
        let rx = {
            let mut guard = rollout.control.lock().unwrap_or_else(|e| e.into_inner());
            if guard.is_some() {
                drop(guard);
                return rollout.command(command, action, by);
            }
            let halted = {
                let live = rollout.live.read().unwrap_or_else(|e| e.into_inner());
                if live.preparing {
                    return Err(CommandError::Preparing(rollout.id.clone()));
                }
                live.halted()
            };
            if !halted {
                return Err(CommandError::Ended(rollout.id.clone()));
            }
            let (tx, rx) = mpsc::unbounded_channel();
            let audit = Command::Audit {
                by: by.to_string(),
                action: action.to_string(),
            };
            let _ = tx.send(audit);
            let _ = tx.send(command);
            *guard = Some(tx);
            rx
        };
        rollout.set_live(|l| {
            l.ended = false;
            l.preparing = true;
        });
        self.launch(rollout.clone(), true, Some(rx));
        Ok(())
    }

    /// Prepares the rollout (discover, plan, replay its log) and, when `run`, runs it
    /// to its end in a task; otherwise only rebuilds its core for questions. `control`:
    /// the channel of commands already sent to it (an operator acting on a halted
    /// rollout), else a new one.
    fn launch(
        &self,
        rollout: Arc<Rollout>,
        run: bool,
        mut control: Option<mpsc::UnboundedReceiver<Command>>,
    ) {
        let session = self.session.clone();
        let task = tokio::spawn(async move {
            let mut stalled = None;
            loop {
                match execute(&rollout, &session, run, stalled.take(), control.take()).await {
                    Ok(None) => break,
                    // The log could not be written: nothing more was dispatched. Open
                    // the store again until a write succeeds, then go on from the log
                    // as after a restart.
                    Ok(Some(reason)) => {
                        tracing::error!(
                            "rollout {} stalls: {reason}; nothing is dispatched until its log can be written (trying again every {}s)",
                            rollout.id,
                            STALL_RETRY.as_secs()
                        );
                        rollout.set_live(|l| l.stalled = Some(reason.clone()));
                        loop {
                            tokio::time::sleep(STALL_RETRY).await;
                            let store = rollout.store.clone();
                            let sim = session.devices().clone();
                            let reopened = move || -> Result<(), String> {
                                // The simulated devices' state shares the disk.
                                if sim.flush().is_err() {
                                    sim.reopen().map_err(|e| e.to_string())?;
                                }
                                store.reopen().map_err(|e| e.to_string())
                            };
                            match tokio::task::spawn_blocking(reopened).await {
                                Ok(Ok(())) => break,
                                Ok(Err(e)) => {
                                    tracing::debug!("rollout {} still stalls: {e}", rollout.id);
                                }
                                Err(e) => tracing::error!("reopening a rollout store: {e}"),
                            }
                        }
                        tracing::warn!(
                            "rollout {}: its log can be written again; going on",
                            rollout.id
                        );
                        rollout.set_live(|l| {
                            l.stalled = None;
                            l.preparing = true;
                        });
                        stalled = Some(reason);
                    }
                    Err(e) => {
                        tracing::error!("rollout {}: {e:#}", rollout.id);
                        *rollout.control.lock().unwrap_or_else(|e| e.into_inner()) = None;
                        rollout.set_live(|l| {
                            l.preparing = false;
                            l.ended = true;
                            l.error = Some(format!("{e:#}"));
                        });
                        break;
                    }
                }
            }
        });
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
    }

    /// Stops every running rollout: plugin calls in flight get `grace` to finish, then
    /// are cancelled; everything is flushed. The next start resumes them.
    pub async fn shutdown(&self, grace: Duration) {
        for rollout in self.list() {
            let guard = rollout.control.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(control) = guard.as_ref() {
                let _ = control.send(Command::Shutdown { grace });
            }
        }
        let tasks: Vec<_> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            if tokio::time::timeout(grace + Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::warn!("a rollout did not stop within the grace period");
            }
        }
        if let Err(e) = self.session.devices().flush() {
            tracing::error!("failed to flush the simulated devices' state: {e}");
        }
    }
}

/// Prepares and (when `run`) runs one rollout. Returns why its log stopped taking
/// writes if it did (the rollout stalled; the caller goes on once it takes them
/// again); `stalled` is why it stalled before, logged before it goes on.
async fn execute(
    rollout: &Arc<Rollout>,
    session: &Session,
    run: bool,
    stalled: Option<String>,
    control: Option<mpsc::UnboundedReceiver<Command>>,
) -> anyhow::Result<Option<String>> {
    let ready = session
        .prepare(&rollout.inputs, Some(rollout.store.clone()))
        .await?;
    rollout
        .facts
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .catalog = Some(ready.catalog.clone());
    if let Some(reason) = stalled {
        let mut store = rollout.store.clone();
        store.append(&Record::Stalled {
            at: ready.now.as_second(),
            reason,
        })?;
        store.flush()?;
    }
    {
        let mut facts = rollout.facts.write().unwrap_or_else(|e| e.into_inner());
        facts.patches = ready
            .targets
            .patches
            .values()
            .map(|p| {
                (
                    p.id.clone(),
                    (p.component.clone(), p.fixed_version.clone(), p.released),
                )
            })
            .collect();
        facts.components = ready
            .targets
            .devices
            .values()
            .map(|d| {
                (
                    d.id.clone(),
                    d.components
                        .iter()
                        .map(|c| (c.name.clone(), c.version.clone()))
                        .collect(),
                )
            })
            .collect();
        let core = &ready.core;
        facts.devices = (0..core.ring_count() as u16)
            .map(|ring| {
                (0..core.ring_len(ring) as u32)
                    .map(|index| {
                        core.job_spec(JobId { ring, index })
                            .map(|j| j.device.clone())
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .collect();
        facts.steps = (0..core.ring_count() as u16)
            .map(|ring| {
                (0..core.ring_len(ring) as u32)
                    .map(|index| {
                        core.job_spec(JobId { ring, index })
                            .map(|j| j.steps.iter().map(|s| s.patch.clone()).collect())
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .collect();
        let jobs: HashMap<String, JobId> = facts
            .devices
            .iter()
            .enumerate()
            .flat_map(|(ring, ids)| {
                ids.iter().enumerate().map(move |(index, id)| {
                    (
                        id.clone(),
                        JobId {
                            ring: ring as u16,
                            index: index as u32,
                        },
                    )
                })
            })
            .collect();
        facts.jobs = jobs;
    }
    if !run {
        let now = ready.now;
        *rollout.last.write().unwrap_or_else(|e| e.into_inner()) = Some((ready.core, now));
        rollout.set_live(|l| l.preparing = false);
        return Ok(None);
    }
    let rx = match control {
        // Its sender is already the rollout's.
        Some(rx) => rx,
        None => {
            let (tx, rx) = mpsc::unbounded_channel();
            *rollout.control.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
            rx
        }
    };
    let status = Status::of(&ready.core, ready.now, rollout.store.committed_len());
    rollout.set_live(|l| {
        l.preparing = false;
        l.status = Some(status);
    });
    let watcher = rollout.clone();
    let run = Run {
        auto_approve_after: None,
        control: Some(rx),
        metrics: rollout.metrics.clone(),
        horizon: None,
    };
    let (core, report) = ready
        .run(run, move |core, now| {
            let status = Status::of(core, now, watcher.store.committed_len());
            watcher.set_live(|l| l.status = Some(status));
        })
        .await;
    let status = Status::of(&core, report.finished, rollout.store.committed_len());
    let over = matches!(
        core.phase(),
        Phase::Completed | Phase::Aborted | Phase::Halted { .. }
    );
    // The last core first: a reader that found the executor gone answers from it.
    *rollout.last.write().unwrap_or_else(|e| e.into_inner()) = Some((core, report.finished));
    // Commands from here on find the rollout ended.
    *rollout.control.lock().unwrap_or_else(|e| e.into_inner()) = None;
    if let Some(reason) = report.stalled {
        rollout.set_live(|l| l.status = Some(status));
        return Ok(Some(reason));
    }
    rollout.set_live(|l| {
        l.status = Some(status);
        l.ended = over;
    });
    Ok(None)
}

/// `bytes` gzip-compressed, at the fastest level (JSON of a fleet is repetitive: the
/// fastest level already makes it about seventyfold smaller).
fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 8),
        flate2::Compression::fast(),
    );
    encoder.write_all(bytes)?;
    encoder.finish()
}
