pub mod cli;

pub mod controller;
pub mod evaluate;
pub mod reward;
pub mod strategy;
pub mod proxy;
pub mod results;
pub mod runner;
