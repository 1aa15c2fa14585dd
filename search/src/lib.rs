//! `search`: the search engine. A [`strategy`] (REINFORCE or PPO over the [`controller`], random,
//! evolution) proposes architectures of a `space::SearchSpace`; an [`evaluate::Executor`] scores
//! them (proxy training, the surrogate, or [`distributed`] workers); the [`runner`] journals each
//! result and tells the strategy, with the [`reward`] of accuracy and latency.

pub mod controller;
pub mod distributed;
pub mod evaluate;
pub mod fidelity;
pub mod halving;
pub mod landscape;
pub mod proxy;
pub mod results;
pub mod reward;
pub mod runner;
pub mod setup;
pub mod strategy;
