//! `nas search --broker`: the distributed executor for a run, and the run's id on the broker
//! (kept in `broker.json` in the run folder, so a resumed coordinator finds its results).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use evaluator::latency::LatencyService;
use serde::{Deserialize, Serialize};

use search::distributed::{BrokerSettings, Connection, EvalSetup, NatsExecutor};
use search::evaluate::Executor;
use search::runner::RunConfig;

/// How `nas search --broker` and `nas worker` authenticate to the broker, besides credentials in
/// the URL: flags, or the NATS_* variables NATS tools read. Secrets are read from files or the
/// environment, never from flags, so they stay out of shell history and process lists.
#[derive(Args, Debug, Clone, Default)]
pub struct AuthArgs {
    /// A file holding the broker's token [or the variable NATS_TOKEN]; with NATS_USER and
    /// NATS_PASSWORD set, those are the user and password.
    #[arg(long, value_name = "FILE", help_heading = "Distributed options")]
    pub token_file: Option<PathBuf>,
    /// A .creds file (user JWT and NKey seed) or a file holding an NKey seed.
    #[arg(long, value_name = "FILE", env = "NATS_CREDS", help_heading = "Distributed options")]
    pub creds: Option<PathBuf>,
    /// The CA certificate (PEM) that signed the broker's, for a private CA.
    #[arg(long, value_name = "FILE", env = "NATS_CA", help_heading = "Distributed options")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM), for a broker that verifies clients; with --tls-key.
    #[arg(long, value_name = "FILE", env = "NATS_CERT", help_heading = "Distributed options")]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", env = "NATS_KEY", help_heading = "Distributed options")]
    pub tls_key: Option<PathBuf>,
}

fn env_secret(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl AuthArgs {
    /// The connection to `url` with these credentials.
    pub fn connection(&self, url: &str) -> Result<Connection, String> {
        let token = match &self.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("--token-file {}: {e}", path.display()))?
                    .trim()
                    .to_string(),
            ),
            None => env_secret("NATS_TOKEN"),
        };
        let user = match (env_secret("NATS_USER"), env_secret("NATS_PASSWORD")) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            _ => return Err("NATS_USER and NATS_PASSWORD go together: set both or neither".into()),
        };
        Ok(Connection {
            url: url.into(),
            user,
            token,
            creds: self.creds.clone(),
            tls_ca: self.tls_ca.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
        })
    }
}

/// What `broker.json` records; the URL with its credentials masked.
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
    connection: Connection,
    queue: Queue,
    resume: Option<&Path>,
    config: &RunConfig,
    latency: &LatencyService,
) -> Result<(Box<dyn Executor>, String), String> {
    let run_id = run_id(resume)?;
    let setup = EvalSetup {
        evaluator: config.evaluator.clone(),
        data: config.data.clone(),
        proxy: config.proxy.clone(),
        seed: config.seed,
    };
    let (_, fingerprint) = setup.build(None, latency)?;
    let shown = connection.shown();
    let settings = BrokerSettings {
        connection,
        ack_wait: Duration::from_secs_f64(queue.ack_wait),
        max_deliver: queue.max_deliver,
    };
    let executor = NatsExecutor::connect(&settings, &run_id, setup, fingerprint, config.workers)?;
    eprintln!("nas search: run {run_id} on {shown} (trials wait for `nas worker --broker {shown}`)");
    Ok((Box::new(executor), run_id))
}

/// Writes `broker.json` once the run folder exists.
pub fn record_run_id(dir: &Path, connection: &Connection, run_id: &str) -> Result<(), String> {
    let record = BrokerRecord { run_id: run_id.into(), broker: connection.shown() };
    search::results::write_json(&dir.join("broker.json"), &record)
}
