//! `nas worker`: pulls trials from the shared durable consumer, `concurrency` at a time,
//! evaluates each on a blocking thread while sending progress acks, publishes the result and
//! only then acks the trial. A worker that dies leaves its trials to be redelivered.
//!
//! Test hooks (off unless set; for the integration tests only):
//! `MIXNAS_TEST_WORKER_DELAY_MS=N` sleeps N ms before each evaluation, so a test can kill a
//! worker mid-trial; `MIXNAS_TEST_WORKER_CRASH_TRIAL=ID` makes the worker exit at once (no ack,
//! no result, as a crash would) when it receives trial ID.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull, AckKind};
use evaluator::latency::LatencyService;
use futures_util::StreamExt;

use super::broker::{self, HEARTBEAT, HEARTBEAT_SUBJECT, TRIALS_STREAM, WORKERS_CONSUMER};
use super::connection::Connection;
use super::messages::{ResultMessage, TrialMessage, WorkerStatus, MIXNAS_VERSION};
use crate::evaluate::{evaluate_guarded, TrialEvaluator};

pub struct WorkerOptions {
    pub broker: Connection,
    /// CPU threads in total, shared by the concurrent trials.
    pub threads: usize,
    /// Trials evaluated at once.
    pub concurrency: usize,
    /// Where this machine keeps the proxy data, when not where the coordinator has it.
    pub data: Option<String>,
    /// Where trials' latencies come from (the `nas` binary answers for missing parts).
    pub latency: LatencyService,
    /// Exit after this long without a trial (for batch-scheduler jobs); `None`: never.
    pub idle_exit: Option<Duration>,
    pub name: String,
}

type Consumer = jetstream::consumer::Consumer<pull::Config>;
type Built = Result<(Arc<dyn TrialEvaluator>, String), String>;

struct Worker {
    opts: WorkerOptions,
    js: jetstream::Context,
    /// The consumer's ack_wait in ms, re-read with every heartbeat (a coordinator may change it).
    ack_wait_ms: AtomicU64,
    /// Evaluators by setup (JSON), built on first use: loading proxy data is slow.
    evaluators: Mutex<HashMap<String, Built>>,
    busy: AtomicUsize,
    refused: Mutex<Option<String>>,
    last_trial: Mutex<Instant>,
    delay: Duration,
    crash_trial: Option<u64>,
}

fn test_hook(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Runs a worker until it is killed, or idle for `idle_exit`.
pub fn run_worker(opts: WorkerOptions) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("starting the async runtime: {e}"))?;
    runtime.block_on(work(opts))
}

async fn work(opts: WorkerOptions) -> Result<(), String> {
    let client = opts.broker.connect(&opts.name).await?;
    let js = broker::jetstream(client.clone());
    broker::declare_streams(&js).await?;
    let consumer = wait_for_queue(&js).await?;
    eprintln!(
        "nas worker {}: pulling trials from {} ({} at a time, {} threads in total; mixnas {MIXNAS_VERSION})",
        opts.name,
        opts.broker.shown(),
        opts.concurrency,
        opts.threads
    );
    let worker = Arc::new(Worker {
        js,
        ack_wait_ms: AtomicU64::new(consumer.cached_info().config.ack_wait.as_millis() as u64),
        evaluators: Mutex::new(HashMap::new()),
        busy: AtomicUsize::new(0),
        refused: Mutex::new(None),
        last_trial: Mutex::new(Instant::now()),
        delay: Duration::from_millis(test_hook("MIXNAS_TEST_WORKER_DELAY_MS").unwrap_or(0)),
        crash_trial: test_hook("MIXNAS_TEST_WORKER_CRASH_TRIAL"),
        opts,
    });
    tokio::spawn(heartbeat(worker.clone(), client, consumer.clone()));
    let slots: Vec<_> =
        (0..worker.opts.concurrency).map(|_| tokio::spawn(pull_loop(worker.clone(), consumer.clone()))).collect();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle = lock(&worker.last_trial).elapsed();
        let Some(limit) = worker.opts.idle_exit else { continue };
        if idle >= limit && worker.busy.load(Ordering::SeqCst) == 0 {
            slots.iter().for_each(|s| s.abort());
            // The limit, not the measured idle time: that is only checked every 500 ms.
            eprintln!("nas worker {}: no trial for {}s (--idle-exit), exiting", worker.opts.name, limit.as_secs_f64());
            return Ok(());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The workers' consumer, once a coordinator has created it.
async fn wait_for_queue(js: &jetstream::Context) -> Result<Consumer, String> {
    let stream = js.get_stream(TRIALS_STREAM).await.map_err(|e| format!("NATS stream {TRIALS_STREAM}: {e}"))?;
    let mut told = false;
    loop {
        match stream.get_consumer(WORKERS_CONSUMER).await {
            Ok(consumer) => return Ok(consumer),
            Err(_) if !told => {
                eprintln!("nas worker: waiting for a coordinator (`nas search --broker ...`) to create the queue");
                told = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn status(worker: &Worker) -> Vec<u8> {
    let status = WorkerStatus {
        worker: worker.opts.name.clone(),
        concurrency: worker.opts.concurrency,
        busy: worker.busy.load(Ordering::SeqCst),
        refused: lock(&worker.refused).clone(),
    };
    serde_json::to_vec(&status).unwrap_or_default()
}

async fn heartbeat(worker: Arc<Worker>, client: async_nats::Client, consumer: Consumer) {
    loop {
        let _ = client.publish(HEARTBEAT_SUBJECT, status(&worker).into()).await;
        if let Ok(info) = consumer.get_info().await {
            worker.ack_wait_ms.store(info.config.ack_wait.as_millis() as u64, Ordering::SeqCst);
        }
        tokio::time::sleep(HEARTBEAT).await;
    }
}

/// One slot: fetch one trial, evaluate it, repeat.
async fn pull_loop(worker: Arc<Worker>, consumer: Consumer) {
    loop {
        let batch = consumer.batch().max_messages(1).expires(Duration::from_secs(5)).messages().await;
        let mut batch = match batch {
            Ok(b) => b,
            Err(e) => {
                eprintln!("nas worker {}: pulling trials: {e}; retrying", worker.opts.name);
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        while let Some(message) = batch.next().await {
            match message {
                Ok(m) => handle(&worker, m).await,
                Err(e) => eprintln!("nas worker {}: receiving a trial: {e}", worker.opts.name),
            }
        }
    }
}

/// The evaluator for `setup` and the fingerprint of its data, built once per setup.
async fn evaluator_for(worker: &Arc<Worker>, setup: &super::EvalSetup) -> Built {
    let key = serde_json::to_string(setup).unwrap_or_default();
    let (worker, setup) = (worker.clone(), setup.clone());
    let built = tokio::task::spawn_blocking(move || {
        let mut cache = lock(&worker.evaluators);
        cache.entry(key).or_insert_with(|| setup.build(worker.opts.data.as_deref(), &worker.opts.latency)).clone()
    });
    built.await.unwrap_or_else(|e| Err(format!("building the evaluator: {e}")))
}

/// Awaits `work` while telling the server every third of `ack_wait` that the trial is still
/// in progress, so long data loads and trainings are not redelivered.
async fn with_progress<T>(worker: &Worker, message: &jetstream::Message, work: impl Future<Output = T>) -> T {
    let ack_wait = Duration::from_millis(worker.ack_wait_ms.load(Ordering::SeqCst)).max(Duration::from_millis(300));
    let mut tick = tokio::time::interval(ack_wait / 3);
    tick.tick().await;
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = tick.tick() => {
                let _ = message.ack_with(AckKind::Progress).await;
            }
        }
    }
}

/// Handles one delivery, counted as busy (for heartbeats and --idle-exit) throughout.
async fn handle(worker: &Arc<Worker>, message: jetstream::Message) {
    worker.busy.fetch_add(1, Ordering::SeqCst);
    process(worker, message).await;
    *lock(&worker.last_trial) = Instant::now();
    worker.busy.fetch_sub(1, Ordering::SeqCst);
}

async fn process(worker: &Arc<Worker>, message: jetstream::Message) {
    let name = &worker.opts.name;
    let trial: TrialMessage = match serde_json::from_slice(&message.payload) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("nas worker {name}: dropping a malformed trial message on {}: {e}", message.subject);
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    let (id, run) = (trial.trial.id, trial.run_id.clone());
    let evaluator = match with_progress(worker, &message, evaluator_for(worker, &trial.setup)).await {
        Ok((evaluator, fingerprint)) => trial.refusal(MIXNAS_VERSION, &fingerprint).map_or(Ok(evaluator), Err),
        Err(e) => Err(format!("refusing trial {id} of run {run}: cannot build its evaluator here: {e}")),
    };
    let evaluator = match evaluator {
        Ok(e) => e,
        Err(why) => {
            eprintln!("nas worker {name}: {why}");
            *lock(&worker.refused) = Some(why);
            // Tell the coordinator now rather than at the next heartbeat.
            let _ = worker.js.client().publish(HEARTBEAT_SUBJECT, status(worker).into()).await;
            // Back to the queue for another worker; it counts as a delivery.
            let _ = message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
            return;
        }
    };
    if worker.crash_trial == Some(id) {
        eprintln!("nas worker {name}: test hook MIXNAS_TEST_WORKER_CRASH_TRIAL: crashing on trial {id}");
        std::process::exit(101);
    }
    let attempt = message.info().map(|i| i.delivered).unwrap_or(1);
    eprintln!("nas worker {name}: trial {id} of run {run} (delivery {attempt}): evaluating");
    let mut spec = trial.trial.clone();
    spec.threads = (worker.opts.threads / worker.opts.concurrency).max(1);
    let delay = worker.delay;
    let task = tokio::task::spawn_blocking(move || {
        std::thread::sleep(delay);
        evaluate_guarded(&*evaluator, &spec)
    });
    let result = with_progress(worker, &message, task).await;
    let result = result.unwrap_or_else(|e| Err(format!("evaluation task failed: {e}")));
    let summary = match &result {
        Ok(e) => format!("score {:.4} latency {:.1}ms", e.score, e.latency_ms),
        Err(e) => format!("failed: {e}"),
    };
    let reply = ResultMessage { run_id: run.clone(), trial_id: id, worker: name.clone(), result };
    let body = serde_json::to_vec(&reply).unwrap_or_default();
    if let Err(e) = broker::publish(&worker.js, broker::result_subject(&run), &format!("{run}.{id}"), body).await {
        // Not acked: the trial is redelivered after ack_wait.
        eprintln!("nas worker {name}: trial {id} of run {run}: {e}");
        return;
    }
    if let Err(e) = message.double_ack().await {
        eprintln!("nas worker {name}: trial {id} of run {run}: ack after publishing the result: {e}");
    }
    eprintln!("nas worker {name}: trial {id} of run {run} (delivery {attempt}): {summary}");
}
