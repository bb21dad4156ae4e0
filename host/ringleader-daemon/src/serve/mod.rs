//! `ringleader serve`: the daemon. It owns a data directory (only one process may open
//! it), runs its rollouts (resuming unfinished ones on start) and answers the HTTP API
//! that every other command and script talks to.

pub mod api;
pub mod auth;
mod listen;
pub mod notify;
pub mod rollouts;
pub mod schedules;

use anyhow::Context;
use ringleader_runtime::OperatorConfig;
use ringleader_runtime::services::SledKv;
use ringleader_runtime::sim_device::SimDevices;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Now, in whole seconds: the time the daemon records (publications, runs,
/// deliveries, reports).
pub(crate) fn now() -> jiff::Timestamp {
    jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// What the daemon runs with: `ringleader serve`'s options (their meaning: its `--help`).
#[derive(Debug, Clone)]
pub struct Options {
    /// Data directory: rollouts, the simulated devices' state, the API token.
    pub data: PathBuf,
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// A schedules file (docs/schedules.md) whose schedules the daemon runs: read at
    /// start, with the policies and inventories it names (inventories again at each
    /// run).
    pub schedules: Option<PathBuf>,
    /// Operator config: `[plugins.NAME]` capability grants and settings,
    /// `[credentials.NAME]` (docs/operations.md, "The operator config"). Read once, at
    /// start.
    pub config: Option<PathBuf>,
    /// A patch-source plugin: a bundled plugin's name (`ringleader plugin list`), or a
    /// manifest's path (anything with a `/` or ending in `.toml` or `.wasm`); repeat
    /// for several. Default: the built-in simulated vendor.
    pub sources: Vec<PathBuf>,
    /// An installer plugin: a bundled plugin's name or a manifest's path; repeat for
    /// several. The first is the default; a device whose inventory entry has
    /// `installer = "NAME"` uses the one of that name. Default: the built-in simulated
    /// vendor's.
    pub installers: Vec<PathBuf>,
    /// TLS certificate chain (PEM), for listening beyond loopback. Loaded again, with
    /// the key, on SIGHUP and when the files change (checked every 30 s).
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Listen beyond loopback WITHOUT TLS: tokens and data cross the network in
    /// plain text. Only for a network you trust completely.
    pub insecure_plaintext_on_network: bool,
    /// How long plugin calls in flight may take to finish when the daemon stops.
    pub shutdown_grace: Duration,
    /// Most bytes of a rollout start (its policy and inventory, as JSON; about 270
    /// bytes a device: 100,000 devices are ~27 MB). Other requests are capped at 2 MiB.
    pub max_inventory_size: usize,
    /// How long a client has, once connected, to send a whole request header (and
    /// finish the TLS handshake).
    pub header_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// How long a request body may stop arriving before the request fails (408).
    pub body_timeout: Duration,
    /// Most connections open at once; lowered to what the file limit (ulimit -n)
    /// allows. Beyond it, the oldest idle connection is closed to make room.
    pub max_connections: usize,
    /// Most event streams (`GET /v1/rollouts/ID/events/stream`) open at once; more
    /// are answered 503.
    pub max_event_streams: usize,
    /// How often an event stream with nothing to send gets a keep-alive comment.
    pub sse_keep_alive: Duration,
}

/// The daemon: refuse a plain listener off loopback, own the data directory, load the
/// token and the plugins, open the rollouts (resuming those that ran), serve the API
/// until SIGTERM or Ctrl-C, then stop the rollouts flushed.
pub async fn serve(args: Options) -> anyhow::Result<()> {
    let loopback = args.listen.ip().is_loopback();
    let tls = args.tls_cert.is_some();
    if !loopback && !tls && !args.insecure_plaintext_on_network {
        anyhow::bail!(
            "refusing to listen on {} without TLS: give --tls-cert and --tls-key, or listen on 127.0.0.1 (the default); --insecure-plaintext-on-network overrides this",
            args.listen
        );
    }
    let chosen = crate::plugins::Chosen::new(&args.sources, &args.installers)?;
    crate::data_dir::own(&args.data)?;
    let tokens = auth::Tokens::load_or_create(&args.data)?;
    tracing::warn!(
        "the API token is in {} (send it as `Authorization: Bearer TOKEN`; named ones: `ringleader token new NAME`)",
        tokens.path().display()
    );

    let rollouts = open_rollouts(&args, chosen)?;
    let plan = rollouts.poll_plan()?;
    if !plan.is_empty() {
        tokio::spawn(periodic_poll(rollouts.clone(), plan));
    }
    if let Some(every) = rollouts.scan_every() {
        tokio::spawn(periodic_scan(rollouts.clone(), every));
    }
    rollouts.notifier().spawn(rollouts.clone())?;
    if let Some(file) = &args.schedules {
        let sources = rollouts.session().source_names()?;
        let scheduler = Arc::new(schedules::Scheduler::load(file, &args.data, &sources)?);
        rollouts.set_scheduler(scheduler.clone());
        scheduler.spawn(rollouts.clone());
    }
    let state = api::State::new(
        rollouts.clone(),
        tokens,
        !loopback,
        api::Limits {
            start_body: args.max_inventory_size,
            body_timeout: args.body_timeout,
            event_streams: args.max_event_streams,
            sse_keep_alive: args.sse_keep_alive,
        },
    );
    let app = api::router(state);
    let limits = listen::Limits {
        header_timeout: args.header_timeout,
        idle_timeout: args.idle_timeout,
        body_timeout: args.body_timeout,
        max_connections: args.max_connections.max(1),
    };

    let grace: Duration = args.shutdown_grace;
    let shutdown = stop_signal(grace);
    bind_and_serve(&args, app, limits, shutdown).await?;
    rollouts.shutdown(grace).await;
    eprintln!("ringleader serve: stopped; state flushed");
    Ok(())
}

/// The operator's config (`--config`), the simulated devices' state, the plugins' kv
/// store, and the rollouts in the data directory with the plugins chosen.
fn open_rollouts(
    args: &Options,
    chosen: crate::plugins::Chosen,
) -> anyhow::Result<Arc<rollouts::Rollouts>> {
    let config = OperatorConfig::load(args.config.as_deref())?;
    let devices = Arc::new(
        SimDevices::open(&args.data.join("devices")).map_err(|e| {
            anyhow::anyhow!(
                "failed to open the simulated devices' state in {}: {e} (is another `ringleader serve` using this directory?)",
                args.data.display()
            )
        })?,
    );
    let kv_dir = args.data.join("plugin-kv");
    let kv = Arc::new(SledKv::open(&kv_dir).map_err(|e| {
        anyhow::anyhow!(
            "failed to open the plugins' kv store in {}: {e}",
            kv_dir.display()
        )
    })?);
    let session = crate::session::Session::new(chosen, &config, devices, kv)?;
    rollouts::Rollouts::open(&args.data, session)
}

/// Scans every device of the registry every `every` (the operator config's `[scan]`),
/// the first time one period after the start.
async fn periodic_scan(rollouts: Arc<rollouts::Rollouts>, every: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match rollouts.scan(None, &[], rollouts.scan_options()).await {
            Ok(done) => tracing::info!(
                "periodic scan: {} devices, {} scanned, {} failed, in {} ms",
                done.scanned,
                done.ok,
                done.failed,
                done.duration_ms
            ),
            Err(e) => tracing::error!("periodic scan failed: {e:#}"),
        }
    }
}

/// Polls each source of `plan` on its own interval (the operator config's
/// `[sources] poll` and `[sources.intervals]`), every one the first time at the start.
/// Sources due at the same moment are polled together; a poll that takes longer than
/// an interval delays the next (none is made up).
async fn periodic_poll(rollouts: Arc<rollouts::Rollouts>, plan: Vec<(String, Duration)>) {
    let start = tokio::time::Instant::now();
    let mut next: Vec<tokio::time::Instant> = vec![start; plan.len()];
    loop {
        let Some(soonest) = next.iter().min().copied() else {
            return;
        };
        tokio::time::sleep_until(soonest).await;
        let now = tokio::time::Instant::now();
        let due: Vec<String> = plan
            .iter()
            .zip(&mut next)
            .filter(|(_, at)| **at <= now)
            .map(|((name, every), at)| {
                *at = now + *every;
                name.clone()
            })
            .collect();
        match rollouts.poll_sources(Some(&due)).await {
            Ok(new) => {
                for p in &new {
                    tracing::info!(
                        "patch published: {} ({}, revision {}) by {}",
                        p.publication.id,
                        ringleader_planner::policy::severity_name(p.publication.severity),
                        p.publication.revision,
                        p.source
                    );
                }
            }
            Err(e) => tracing::error!("source poll failed: {e:#}"),
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C (never, if SIGTERM cannot be listened for).
async fn stop_signal(grace: Duration) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::error!("cannot listen for SIGTERM: {e}");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::warn!("stopping: finishing plugin calls in flight (up to {grace:?})");
}

/// Binds `--listen` and serves `app` on it, with TLS when configured (its files
/// reloaded when they change), until `shutdown` resolves.
async fn bind_and_serve(
    args: &Options,
    app: axum::Router,
    limits: listen::Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // As the files are before they are read: a renewal from here on is seen.
        let loaded = (stamp(cert), stamp(key));
        let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
            .await
            .with_context(|| {
                format!(
                    "failed to load the TLS certificate {} and key {}",
                    cert.display(),
                    key.display()
                )
            })?;
        tokio::spawn(reload_tls(
            config.clone(),
            cert.clone(),
            key.clone(),
            loaded,
        ));
        // Bound before saying so: a client that reads the address can connect at once.
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("failed to listen on {}", args.listen))?;
        eprintln!(
            "ringleader serve: listening on https://{}",
            listener.local_addr()?
        );
        listen::serve(listener, Some(config), app, limits, shutdown).await;
    } else {
        // SIGHUP reloads the TLS certificate; without TLS there is nothing to reload,
        // and the daemon is not stopped by it either (SIGTERM stops it, flushed).
        tokio::spawn(async {
            if let Ok(mut hangup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            {
                while hangup.recv().await.is_some() {
                    tracing::info!("SIGHUP: nothing to reload without TLS");
                }
            }
        });
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("failed to listen on {}", args.listen))?;
        eprintln!(
            "ringleader serve: listening on http://{}",
            listener.local_addr()?
        );
        listen::serve(listener, None, app, limits, shutdown).await;
    }
    Ok(())
}

/// A file's identity and last change (inode, change time, size): a file replaced or
/// rewritten has another.
type Stamp = Option<(u64, i64, i64, u64)>;

fn stamp(path: &std::path::Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.ctime(), m.ctime_nsec(), m.len()))
}

/// Loads the TLS certificate and key again when they change (checked every
/// [`TLS_CHECK`]) or on SIGHUP: a renewed certificate is served without a restart. A
/// pair that does not load (a renewal half written, say) is logged, and the one in use
/// kept until the files change again.
async fn reload_tls(
    config: axum_server::tls_rustls::RustlsConfig,
    cert: PathBuf,
    key: PathBuf,
    loaded: (Stamp, Stamp),
) {
    let mut seen = loaded;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut check = tokio::time::interval(TLS_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let asked = tokio::select! {
            Some(()) = async { hangup.as_mut()?.recv().await } => true,
            _ = check.tick() => false,
        };
        let now = (stamp(&cert), stamp(&key));
        if !asked && now == seen {
            continue;
        }
        seen = now;
        match config.reload_from_pem_file(&cert, &key).await {
            Ok(()) => tracing::info!("loaded the TLS certificate {} again", cert.display()),
            Err(e) => tracing::error!(
                "cannot load the TLS certificate {} and key {} again, still serving the previous one: {e}",
                cert.display(),
                key.display()
            ),
        }
    }
}

/// How often the TLS certificate and key files are checked for a change.
const TLS_CHECK: Duration = Duration::from_secs(30);
