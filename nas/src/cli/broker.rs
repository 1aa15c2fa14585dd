//! `nas search --broker`: the distributed executor for a run, and the run's id on the broker
//! (kept in `broker.json` in the run folder, so a resumed coordinator finds its results).

use std::path::Path;
use std::time::Duration;

use evaluator::latency::LatencyService;
use serde::{Deserialize, Serialize};

use search::distributed::{BrokerSettings, EvalSetup, NatsExecutor};
use search::evaluate::Executor;
use search::runner::RunConfig;

#[derive(Serialize, Deserialize)]
struct BrokerRecord {
    run_id: String,
    broker: String,
}

/// The run id of `dir` if it ran on a broker before, else a fresh one.
fn run_id(resume: Option<&Path>) -> Result<String, String> {
    if let Some(path) = resume.map(|d| d.join("broker.json")).filter(|p| p.exists()) {
        let r: BrokerRecord = search::results::read_json(&path)?;
        return Ok(r.run_id);
    }
    // Unique per coordinator start, not drawn from --seed: two runs with one seed must not
    // share a queue.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    Ok(format!("r{:x}{:x}", nanos as u64, std::process::id()))
}

/// How the broker's queue redelivers a trial (`--ack-wait` seconds, `--max-deliver`).
pub struct Queue {
    pub ack_wait: f64,
    pub max_deliver: i64,
}

/// Connects to the broker and builds the executor (loading the proxy data for its fingerprint),
/// before anything is written; `resume` is the run folder being continued.
pub fn executor(
    url: &str,
    queue: Queue,
    resume: Option<&Path>,
    config: &RunConfig,
    latency: &LatencyService,
) -> Result<(Box<dyn Executor>, String), String> {
    let run_id = run_id(resume)?;
    let setup = EvalSetup {
        evaluator: config.evaluator,
        data: config.data.clone(),
        proxy: config.proxy.clone(),
        seed: config.seed,
    };
    let (_, fingerprint) = setup.build(None, latency)?;
    let settings = BrokerSettings {
        url: url.into(),
        ack_wait: Duration::from_secs_f64(queue.ack_wait),
        max_deliver: queue.max_deliver,
    };
    let executor = NatsExecutor::connect(&settings, &run_id, setup, fingerprint, config.workers)?;
    eprintln!("nas search: run {run_id} on {url} (trials wait for `nas worker --broker {url}`)");
    Ok((Box::new(executor), run_id))
}

/// Writes `broker.json` once the run folder exists.
pub fn record_run_id(dir: &Path, url: &str, run_id: &str) -> Result<(), String> {
    search::results::write_json(&dir.join("broker.json"), &BrokerRecord { run_id: run_id.into(), broker: url.into() })
}
