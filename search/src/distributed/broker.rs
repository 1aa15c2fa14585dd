//! The broker's layout (streams, subjects, consumers) and the few operations both sides need:
//! declaring the streams, and publishing with a message id.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};

use super::connection::Connection;

/// Work queue of trials; subjects `mixnas.trials.<run id>`.
pub const TRIALS_STREAM: &str = "MIXNAS_TRIALS";
/// Results; subjects `mixnas.results.<run id>`, consumed by that run's coordinator.
pub const RESULTS_STREAM: &str = "MIXNAS_RESULTS";
/// The server's max-deliveries advisories for the workers' consumer, kept until read.
pub const FAILURES_STREAM: &str = "MIXNAS_FAILURES";
/// The durable pull consumer all workers share.
pub const WORKERS_CONSUMER: &str = "mixnas-workers";
/// Core-NATS subject of worker heartbeats (not stored: they only matter while fresh).
pub const HEARTBEAT_SUBJECT: &str = "mixnas.workers";
/// How often a worker says it is alive; the coordinator forgets it after three missed beats.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

pub fn trial_subject(run_id: &str) -> String {
    format!("mixnas.trials.{run_id}")
}

pub fn result_subject(run_id: &str) -> String {
    format!("mixnas.results.{run_id}")
}

fn max_deliveries_subject() -> String {
    format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{TRIALS_STREAM}.{WORKERS_CONSUMER}")
}

/// How the coordinator configures redelivery of trials.
#[derive(Clone, Debug)]
pub struct BrokerSettings {
    pub connection: Connection,
    /// A trial not acked (nor progress-acked) for this long goes to another worker.
    pub ack_wait: Duration,
    /// Deliveries before a trial is given up as failed.
    pub max_deliver: i64,
}

/// The JetStream context; the first stream declaration tells whether the server has JetStream.
pub fn jetstream(client: async_nats::Client) -> jetstream::Context {
    jetstream::new(client)
}

/// A work-queue stream (each message taken once) with a 10-minute duplicate window.
fn work_queue(name: &str, subjects: &str, max_age: Duration) -> stream::Config {
    stream::Config {
        name: name.into(),
        subjects: vec![subjects.into()],
        retention: stream::RetentionPolicy::WorkQueue,
        duplicate_window: Duration::from_secs(600),
        max_age,
        ..Default::default()
    }
}

/// Declares the three streams (idempotent; every coordinator and worker may call it).
pub async fn declare_streams(js: &jetstream::Context) -> Result<(), String> {
    let day = Duration::from_secs(24 * 3600);
    let streams = [
        work_queue(TRIALS_STREAM, "mixnas.trials.>", 7 * day),
        work_queue(RESULTS_STREAM, "mixnas.results.>", 7 * day),
        stream::Config {
            name: FAILURES_STREAM.into(),
            subjects: vec![max_deliveries_subject()],
            max_age: 7 * day,
            ..Default::default()
        },
    ];
    for config in streams {
        let name = config.name.clone();
        let mut created = js.get_or_create_stream(config.clone()).await.map(|_| ());
        // Two processes creating the stream at once: the loser's create fails ("subjects overlap
        // with an existing stream"), and the stream the winner made is there to get.
        if created.is_err() && js.get_stream(&name).await.is_ok() {
            created = Ok(());
        }
        created.map_err(|e| match e.to_string() {
            t if t.contains("no responders") => {
                format!("the NATS broker has no JetStream ({t}) (hint: run nats-server with -js)")
            }
            t => format!("NATS stream {name}: {t}"),
        })?;
    }
    Ok(())
}

/// Creates (or updates, for the redelivery settings) the workers' shared consumer.
pub async fn declare_workers_consumer(js: &jetstream::Context, s: &BrokerSettings) -> Result<(), String> {
    let trials = js.get_stream(TRIALS_STREAM).await.map_err(|e| format!("NATS stream {TRIALS_STREAM}: {e}"))?;
    let config = consumer::pull::Config {
        durable_name: Some(WORKERS_CONSUMER.into()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: s.ack_wait,
        max_deliver: s.max_deliver,
        filter_subject: "mixnas.trials.>".into(),
        ..Default::default()
    };
    trials.create_consumer(config).await.map_err(|e| format!("NATS consumer {WORKERS_CONSUMER}: {e}"))?;
    Ok(())
}

/// Publishes `payload` with message id `id` and waits for the stream's ack, retrying for about
/// a minute (a retry is safe: the id deduplicates it).
pub async fn publish(js: &jetstream::Context, subject: String, id: &str, payload: Vec<u8>) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 0..30 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let message = jetstream::message::PublishMessage::build().payload(payload.clone().into()).message_id(id);
        match js.send_publish(subject.clone(), message).await {
            Ok(ack) => match ack.await {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!("publishing {id} to {subject}: {last}"))
}
