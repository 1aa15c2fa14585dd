//! `nas worker`: evaluates trials for `nas search --broker` coordinators on this machine.

use std::time::Duration;

use clap::Args;

use search::distributed::{run_worker, WorkerOptions};

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// The NATS server with JetStream: nats://HOST:4222, tls://HOST:4222, nats://USER:PASS@HOST.
    #[arg(long, value_name = "URL", env = "NATS_URL")]
    pub broker: String,
    /// CPU threads in total, shared by the concurrent trials [default: all cores].
    #[arg(long, value_name = "T")]
    pub threads: Option<usize>,
    /// Trials evaluated at once.
    #[arg(long, value_name = "C", default_value_t = 1)]
    pub concurrency: usize,
    /// Where this machine keeps the proxy data, if not at the coordinator's path (it must be the
    /// same data: trials whose data fingerprint differs are refused).
    #[arg(long, value_name = "DIR")]
    pub data: Option<String>,
    /// Exit after this long without a trial (90s, 30m, 2h), e.g. at the end of a batch job.
    #[arg(long, value_name = "DURATION", value_parser = super::search::parse_duration)]
    pub idle_exit: Option<f64>,
    /// Name in logs and in the coordinator's status [default: HOST-PID].
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub auth: super::broker::AuthArgs,
}

fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::env::var("HOSTNAME"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "worker".into());
    format!("{host}-{}", std::process::id())
}

pub fn exec(args: WorkerArgs) -> Result<i32, String> {
    if args.concurrency == 0 {
        return Err("--concurrency: must be at least 1".into());
    }
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    // Each concurrent trial trains with its share of the threads.
    evaluator::set_threads((threads / args.concurrency).max(1));
    run_worker(WorkerOptions {
        broker: args.auth.connection(&args.broker)?,
        threads,
        concurrency: args.concurrency,
        data: args.data,
        latency: super::latency::service()?,
        idle_exit: args.idle_exit.map(Duration::from_secs_f64),
        name: args.name.unwrap_or_else(default_name),
    })?;
    Ok(0)
}
