pub mod alloc;
pub mod cli;

pub mod controller;
pub mod distributed;
pub mod evaluate;
pub mod experiment;
pub mod proxy;
pub mod report;
pub mod results;
pub mod reward;
pub mod runner;
pub mod strategy;
