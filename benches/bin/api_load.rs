//! Drives the daemon's API with concurrent readers while a rollout runs, and reports
//! the request rate and latency percentiles.
//!
//! Usage: api-load URL ROLLOUT READERS [COMPLIANCE-READERS [ENCODING]]
//!
//! Each reader loops over `GET /v1/rollouts/ROLLOUT` (status) and
//! `GET /v1/rollouts/ROLLOUT/events?since=CURSOR` (advancing its cursor, as a script
//! following the rollout would) until the rollout has ended; each compliance reader
//! loops over `GET /v1/compliance` (the fleet registry's compliance, as a dashboard
//! would), accepting gzip unless ENCODING is `identity` (the answer is read to its
//! end, not unpacked: the latency is the daemon's). Any non-2xx answer or transport error counts as an error. Prints a line of
//! results per kind of reader.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The body of a 2xx answer, read to its end (as it came: compressed if it was).
fn fetch(agent: &ureq::Agent, url: &str, gzip: bool) -> Result<Vec<u8>, String> {
    let mut request = agent.get(url);
    if gzip {
        request = request.header("Accept-Encoding", "gzip");
    }
    let response = request.call().map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    let mut body = Vec::new();
    response
        .into_body()
        .with_config()
        .limit(1 << 30)
        .reader()
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    Ok(body)
}

fn get(agent: &ureq::Agent, url: &str) -> Result<serde_json::Value, String> {
    serde_json::from_slice(&fetch(agent, url, false)?).map_err(|e| e.to_string())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(base), Some(rollout)) = (args.next(), args.next()) else {
        eprintln!("usage: api-load URL ROLLOUT READERS");
        std::process::exit(2);
    };
    let readers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);
    let compliance_readers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let gzip = args.next().is_none_or(|e| e != "identity");
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let compliance_errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let spawn = |compliance: bool| {
        let (base, rollout, stop) = (base.clone(), rollout.clone(), stop.clone());
        let errors = if compliance {
            compliance_errors.clone()
        } else {
            errors.clone()
        };
        std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into();
            let mut latencies: Vec<u32> = Vec::new();
            let mut cursor = 0u64;
            let mut turn = 0u64;
            while !stop.load(Ordering::Relaxed) {
                turn += 1;
                let url = if compliance {
                    format!("{base}/v1/compliance")
                } else if turn.is_multiple_of(2) {
                    format!("{base}/v1/rollouts/{rollout}")
                } else {
                    format!("{base}/v1/rollouts/{rollout}/events?since={cursor}&limit=500")
                };
                let t = Instant::now();
                // A compliance answer is read to its end, not parsed: its latency is the
                // daemon's, not this client's JSON parser's (17 MB at 10,000 devices).
                let answer = if compliance {
                    fetch(&agent, &url, gzip).map(|_| serde_json::Value::Null)
                } else {
                    get(&agent, &url)
                };
                match answer {
                    Ok(body) => {
                        if let Some(next) = body["next"].as_u64() {
                            cursor = next;
                        }
                    }
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("reader error: {e}");
                        }
                    }
                }
                latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            latencies
        })
    };
    let workers: Vec<_> = (0..readers).map(|_| spawn(false)).collect();
    let compliance_workers: Vec<_> = (0..compliance_readers).map(|_| spawn(true)).collect();
    // Until the rollout ends.
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        match get(&agent, &format!("{base}/v1/rollouts/{rollout}")) {
            Ok(status) if status["ended"].as_bool() == Some(true) => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("status: {e}");
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    report("readers", readers, workers, elapsed, &errors);
    if compliance_readers > 0 {
        report(
            "compliance readers",
            compliance_readers,
            compliance_workers,
            elapsed,
            &compliance_errors,
        );
    }
}

/// One line: the readers' request count, rate and latency percentiles.
fn report(
    what: &str,
    readers: usize,
    workers: Vec<std::thread::JoinHandle<Vec<u32>>>,
    elapsed: Duration,
    errors: &AtomicU64,
) {
    let mut all: Vec<u32> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap_or_default())
        .collect();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |us| f64::from(*us) / 1000.0)
    };
    println!(
        "{what} {readers}  requests {}  seconds {:.1}  rate {:.0}/s  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  errors {}",
        all.len(),
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        pct(1.0),
        errors.load(Ordering::Relaxed)
    );
}
