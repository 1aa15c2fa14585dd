
pub mod controller;
pub mod evaluate;
pub mod reward;
pub mod strategy;
