//! Trials evaluated on many machines through NATS JetStream.
//!
//! The coordinator ([`NatsExecutor`], behind the runner's [`Executor`](crate::evaluate::Executor)
//! interface) publishes each trial to the work-queue stream `MIXNAS_TRIALS`; workers
//! (`nas worker`, [`run_worker`]) pull them through one shared durable consumer with explicit
//! acks, send progress acks while evaluating, publish the result to `MIXNAS_RESULTS` and only
//! then ack the trial. A trial whose worker dies is redelivered after `ack_wait`; after
//! `max_deliver` deliveries the server's advisory, kept in the stream `MIXNAS_FAILURES`, makes
//! the coordinator record it as failed. Every publish carries a message id, so a retry or a
//! resumed coordinator re-publishing a trial does not queue it twice within the duplicate window,
//! and the coordinator keeps only the first result per trial id.
//!
//! The async part (tokio, async-nats) stays inside this module; callers are synchronous.

mod broker;
mod connection;
mod coordinator;
mod messages;
mod worker;

pub use broker::BrokerSettings;
pub use connection::{mask_url, Connection};
pub use coordinator::NatsExecutor;
pub use messages::{EvalSetup, ResultMessage, TrialMessage, WorkerStatus, MIXNAS_VERSION};
pub use worker::{run_worker, WorkerOptions};
