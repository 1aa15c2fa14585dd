//! The coordinator's side: an [`Executor`] that publishes a batch of trials to the work queue
//! and reports results as workers deliver them. The runner around it is unchanged: it journals
//! each reported result (fsynced) before the strategy learns, so the broker's state only ever
//! runs ahead of the journal, never behind it.
//!
//! Per batch: results already waiting (a resumed run) are taken first; the rest are published
//! (message id `<run>.<trial>`: a re-published trial still queued is not queued twice); then
//! results and max-deliveries advisories are read until every trial is reported. A result is
//! acked only after the runner has journalled it; results for trials not in the batch (second
//! deliveries of trials already journalled) are acked and dropped.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, consumer::pull};
use futures_util::StreamExt;

use super::broker::{self, BrokerSettings, HEARTBEAT, HEARTBEAT_SUBJECT, RESULTS_STREAM, TRIALS_STREAM};
use super::messages::{EvalSetup, ResultMessage, TrialMessage, WorkerStatus, MIXNAS_VERSION};
use crate::evaluate::{Evaluation, Executor, TrialSpec};

type Done<'a> = &'a mut dyn FnMut(&TrialSpec, Result<Evaluation, String>);
type Seen = Arc<Mutex<HashMap<String, (Instant, WorkerStatus)>>>;

/// Evaluates trials on `nas worker` processes through NATS JetStream.
pub struct NatsExecutor {
    runtime: tokio::runtime::Runtime,
    js: jetstream::Context,
    /// The broker URL with credentials masked, for hints.
    url: String,
    run_id: String,
    setup: EvalSetup,
    fingerprint: String,
    workers: usize,
    trials: jetstream::stream::Stream,
    results: consumer::Consumer<pull::Config>,
    failures: consumer::Consumer<pull::Config>,
    /// Workers by name, with their latest heartbeat.
    seen: Seen,
    connected: Instant,
}

/// What the status line last said.
struct StatusLine {
    active: Option<usize>,
    printed: Instant,
    refusals: HashSet<String>,
}

impl NatsExecutor {
    /// Connects and declares the streams and consumers; fails with one line if the broker is
    /// unreachable or lacks JetStream. `workers` sizes batches as `--workers` does locally.
    pub fn connect(
        settings: &BrokerSettings,
        run_id: &str,
        setup: EvalSetup,
        fingerprint: String,
        workers: usize,
    ) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| format!("starting the async runtime: {e}"))?;
        let seen: Seen = Arc::default();
        let (js, trials, results, failures) = runtime.block_on(open(settings, run_id, seen.clone()))?;
        Ok(NatsExecutor {
            runtime,
            js,
            url: settings.connection.shown(),
            run_id: run_id.into(),
            setup,
            fingerprint,
            workers: workers.max(1),
            trials,
            results,
            failures,
            seen,
            connected: Instant::now(),
        })
    }

    async fn run_batch(&self, trials: Vec<TrialSpec>, done: Done<'_>) {
        let mut pending: HashMap<u64, TrialSpec> = trials.into_iter().map(|t| (t.id, t)).collect();
        self.take_results(&mut pending, done, None).await;
        let mut ids: Vec<u64> = pending.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let message = TrialMessage {
                mixnas_version: MIXNAS_VERSION.into(),
                data_fingerprint: self.fingerprint.clone(),
                run_id: self.run_id.clone(),
                setup: self.setup.clone(),
                trial: pending[&id].clone(),
            };
            let body = serde_json::to_vec(&message).unwrap_or_default();
            let subject = broker::trial_subject(&self.run_id);
            if let Err(e) = broker::publish(&self.js, subject, &format!("{}.{id}", self.run_id), body).await {
                self.give_up(&e);
            }
        }
        let mut status = StatusLine { active: None, printed: Instant::now(), refusals: HashSet::new() };
        while !pending.is_empty() {
            self.take_results(&mut pending, done, Some(Duration::from_millis(500))).await;
            self.take_failures(&mut pending, done).await;
            self.report_status(pending.len(), &mut status);
        }
    }

    /// The broker stayed unreachable: stop; the journal holds every reported trial.
    fn give_up(&self, error: &str) -> ! {
        eprintln!("nas: {error} (hint: the run folder is intact; continue with --resume DIR --broker {})", self.url);
        std::process::exit(2);
    }

    /// Reports the results that arrive within `wait` (`None`: only those already waiting).
    async fn take_results(&self, pending: &mut HashMap<u64, TrialSpec>, done: Done<'_>, wait: Option<Duration>) {
        let batch = match wait {
            None => self.results.fetch().max_messages(64).messages().await,
            Some(w) => self.results.batch().max_messages(64).expires(w).messages().await,
        };
        let mut batch = match batch {
            Ok(b) => b,
            Err(e) => return self.retry_later(&format!("reading results: {e}")).await,
        };
        while let Some(message) = batch.next().await {
            let Ok(message) = message else { continue };
            match serde_json::from_slice::<ResultMessage>(&message.payload) {
                Ok(r) if r.run_id == self.run_id => {
                    if let Some(spec) = pending.remove(&r.trial_id) {
                        done(&spec, r.result);
                    }
                }
                Ok(_) => {}
                Err(e) => eprintln!("nas search: dropping a malformed result on {}: {e}", message.subject),
            }
            // After the journal line is durable: an unacked result is redelivered on resume.
            let _ = message.ack().await;
        }
    }

    /// Trials the server gave up on after `max_deliver` deliveries become failed trials.
    async fn take_failures(&self, pending: &mut HashMap<u64, TrialSpec>, done: Done<'_>) {
        let mut batch = match self.failures.fetch().max_messages(64).messages().await {
            Ok(b) => b,
            Err(e) => return self.retry_later(&format!("reading advisories: {e}")).await,
        };
        while let Some(message) = batch.next().await {
            let Ok(message) = message else { continue };
            let advisory: serde_json::Value = serde_json::from_slice(&message.payload).unwrap_or_default();
            if let Some(seq) = advisory["stream_seq"].as_u64() {
                let deliveries = advisory["deliveries"].as_u64().unwrap_or(0);
                self.give_up_on(seq, deliveries, pending, done).await;
            }
            let _ = message.ack().await;
        }
    }

    async fn give_up_on(&self, seq: u64, deliveries: u64, pending: &mut HashMap<u64, TrialSpec>, done: Done<'_>) {
        let Ok(stored) = self.trials.get_raw_message(seq).await else { return };
        let Ok(trial) = serde_json::from_slice::<TrialMessage>(&stored.payload) else { return };
        if trial.run_id != self.run_id {
            return;
        }
        if let Some(spec) = pending.remove(&trial.trial.id) {
            let why = format!(
                "no result after {deliveries} deliveries (max_deliver): its workers crashed, vanished or refused it"
            );
            done(&spec, Err(why));
        }
        let _ = self.trials.delete_message(seq).await;
    }

    async fn retry_later(&self, what: &str) {
        eprintln!("nas search: {what}; retrying");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    /// Prints workers and trials in flight when the number of workers changes, every 30 s,
    /// and any new refusal.
    fn report_status(&self, in_flight: usize, status: &mut StatusLine) {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let fresh: Vec<&WorkerStatus> =
            seen.values().filter(|(at, _)| at.elapsed() < 3 * HEARTBEAT).map(|(_, s)| s).collect();
        for why in fresh.iter().filter_map(|s| s.refused.as_ref()) {
            if status.refusals.insert(why.clone()) {
                eprintln!("nas search: a worker is {why}");
            }
        }
        let running: usize = fresh.iter().map(|s| s.busy).sum();
        let active = fresh.len();
        // Until a heartbeat period has passed, no workers seen means none heard yet.
        let heard = self.connected.elapsed() > HEARTBEAT + Duration::from_millis(500);
        if heard && (status.active != Some(active) || status.printed.elapsed() > Duration::from_secs(30)) {
            let hint = if active == 0 { " (start one: nas worker --broker URL)" } else { "" };
            eprintln!("nas search: workers active: {active}, trials in flight: {in_flight} ({running} running){hint}");
            (status.active, status.printed) = (Some(active), Instant::now());
        }
    }
}

async fn open(
    settings: &BrokerSettings,
    run_id: &str,
    seen: Seen,
) -> Result<
    (jetstream::Context, jetstream::stream::Stream, consumer::Consumer<pull::Config>, consumer::Consumer<pull::Config>),
    String,
> {
    let client = settings.connection.connect(&format!("nas search {run_id}")).await?;
    let js = broker::jetstream(client.clone());
    broker::declare_streams(&js).await?;
    broker::declare_workers_consumer(&js, settings).await?;
    let stream = |name: &'static str| {
        let js = js.clone();
        async move { js.get_stream(name).await.map_err(|e| format!("NATS stream {name}: {e}")) }
    };
    let (trials, results, failures) =
        (stream(TRIALS_STREAM).await?, stream(RESULTS_STREAM).await?, stream(broker::FAILURES_STREAM).await?);
    let results = results
        .create_consumer(pull::Config {
            durable_name: Some(format!("coord-{run_id}")),
            ack_policy: consumer::AckPolicy::Explicit,
            // A result delivered to a coordinator that died before acking it comes back after this.
            ack_wait: settings.ack_wait,
            filter_subject: broker::result_subject(run_id),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("NATS consumer coord-{run_id}: {e}"))?;
    let failures = failures
        .create_consumer(pull::Config {
            durable_name: Some(format!("coord-{run_id}-failures")),
            ack_policy: consumer::AckPolicy::Explicit,
            deliver_policy: consumer::DeliverPolicy::New,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("NATS consumer coord-{run_id}-failures: {e}"))?;
    let mut beats = client.subscribe(HEARTBEAT_SUBJECT).await.map_err(|e| format!("subscribing to heartbeats: {e}"))?;
    tokio::spawn(async move {
        while let Some(m) = beats.next().await {
            if let Ok(s) = serde_json::from_slice::<WorkerStatus>(&m.payload) {
                seen.lock().unwrap_or_else(|p| p.into_inner()).insert(s.worker.clone(), (Instant::now(), s));
            }
        }
    });
    Ok((js, trials, results, failures))
}

impl Executor for NatsExecutor {
    fn run(&self, trials: Vec<TrialSpec>, done: &mut dyn FnMut(&TrialSpec, Result<Evaluation, String>)) {
        if !trials.is_empty() {
            self.runtime.block_on(self.run_batch(trials, done));
        }
    }

    fn workers(&self) -> usize {
        self.workers
    }
}
