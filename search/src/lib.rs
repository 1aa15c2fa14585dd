pub mod cli;

pub mod controller;
pub mod evaluate;
pub mod proxy;
pub mod results;
pub mod reward;
pub mod runner;
pub mod strategy;
