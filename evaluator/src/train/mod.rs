//! Model-independent pieces of training: optimisers, learning-rate schedules, the loss, a weight
//! EMA and atomic checkpoint I/O. Parameters are always `(name, Var)` pairs so that optimiser
//! state, EMA shadows and checkpoints share the model's key space.

pub mod checkpoint;
pub mod ema;
pub mod fit;
pub mod init;
pub mod loss;
pub mod optim;
pub mod run;
pub mod schedule;
pub mod trainer;
