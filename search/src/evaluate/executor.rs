//! The in-process executor: W worker threads pull trials from a shared queue.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex};

use super::{Evaluation, Executor, TrialEvaluator, TrialSpec};

/// A pool of `workers` threads on this machine, each evaluating one trial at a time.
pub struct LocalPool {
    evaluator: Arc<dyn TrialEvaluator>,
    workers: usize,
}

impl LocalPool {
    pub fn new(evaluator: Arc<dyn TrialEvaluator>, workers: usize) -> Self {
        LocalPool { evaluator, workers: workers.max(1) }
    }
}

/// Runs the evaluator, turning a panic into an error (shared with the distributed worker).
pub(crate) fn evaluate_guarded(evaluator: &dyn TrialEvaluator, trial: &TrialSpec) -> Result<Evaluation, String> {
    match catch_unwind(AssertUnwindSafe(|| evaluator.evaluate(trial))) {
        Ok(result) => result,
        Err(panic) => {
            let what =
                panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
            Err(format!("evaluator panicked: {}", what.unwrap_or_else(|| "unknown panic".into())))
        }
    }
}

impl Executor for LocalPool {
    fn run(&self, trials: Vec<TrialSpec>, done: &mut dyn FnMut(&TrialSpec, Result<Evaluation, String>)) {
        let queue = Mutex::new(trials.into_iter().collect::<VecDeque<_>>());
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|scope| {
            for _ in 0..self.workers {
                let (tx, queue, evaluator) = (tx.clone(), &queue, &*self.evaluator);
                scope.spawn(move || loop {
                    let Some(trial) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front() else { break };
                    let result = evaluate_guarded(evaluator, &trial);
                    if tx.send((trial, result)).is_err() {
                        break;
                    }
                });
            }
            drop(tx);
            for (trial, result) in rx {
                done(&trial, result);
            }
        });
    }

    fn workers(&self) -> usize {
        self.workers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Flaky;

    impl TrialEvaluator for Flaky {
        fn evaluate(&self, t: &TrialSpec) -> Result<Evaluation, String> {
            match t.id % 3 {
                0 => panic!("boom {}", t.id),
                1 => Err("out of memory".into()),
                _ => Ok(Evaluation {
                    score: 0.5,
                    latency_ms: t.id as f64,
                    latency_source: "surrogate".into(),
                    macs: 0,
                    params: 0,
                    train_seconds: 0.0,
                    details: Default::default(),
                }),
            }
        }
    }

    #[test]
    fn every_trial_is_reported_once_and_panics_become_errors() {
        let pool = LocalPool::new(Arc::new(Flaky), 3);
        let arch = space::presets::mixnet_s();
        let trials: Vec<_> = (0..9)
            .map(|id| TrialSpec { id, arch: arch.clone(), choices: vec![], seed: id, threads: 1, epochs: None })
            .collect();
        let mut seen = Vec::new();
        pool.run(trials, &mut |t, r| seen.push((t.id, r.map(|e| e.latency_ms))));
        seen.sort_by_key(|s| s.0);
        assert_eq!(seen.len(), 9);
        assert!(seen[3].1.as_ref().unwrap_err().contains("panicked: boom 3"));
        assert_eq!(seen[4].1, Err("out of memory".to_string()));
        assert_eq!(seen[5].1, Ok(5.0));
    }
}
