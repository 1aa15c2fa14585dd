//! Strategies on the surrogate evaluator, 10 seeds at an equal budget: the RL controllers must
//! beat random search, and the hard-constrained search must drift toward the latency target.

use evaluator::rng::mix;
use search::evaluate::{SurrogateEvaluator, TrialEvaluator, TrialSpec};
use search::reward::{LatencyBudget, Reward, Target};
use search::strategy::{build, Observation, StrategyConfig, StrategyKind};

const TRIALS: usize = 300;
const BATCH: usize = 10;
const SEEDS: u64 = 10;

struct Run {
    best: f64,
    latencies: Vec<f64>,
}

fn search(kind: StrategyKind, reward: Reward, seed: u64) -> Run {
    let space = space::SearchSpace::default_space();
    let config = StrategyConfig { kind, ..Default::default() };
    let mut strategy = build(&config, &space.num_options(), seed).unwrap();
    let (mut best, mut latencies) = (0.0f64, Vec::new());
    for b in 0..TRIALS / BATCH {
        let batch = strategy.propose(BATCH);
        let mut obs = Vec::new();
        for (i, choices) in batch.into_iter().enumerate() {
            let id = (b * BATCH + i) as u64;
            let (reward, failed) = match space.decode(&choices) {
                Ok(arch) => {
                    let t = TrialSpec {
                        id,
                        arch,
                        choices: choices.clone(),
                        seed: mix(seed ^ id),
                        threads: 1,
                        epochs: None,
                    };
                    let e = SurrogateEvaluator.evaluate(&t).unwrap();
                    latencies.push(e.latency_ms);
                    (reward.score(e.score, e.latency_ms), false)
                }
                Err(_) => (0.0, true),
            };
            best = best.max(reward);
            obs.push(Observation { choices, reward, failed });
        }
        strategy.observe(&obs);
    }
    Run { best, latencies }
}

fn within(latencies: &[f64], target: f64) -> f64 {
    latencies.iter().filter(|&&l| (l - target).abs() <= 0.1 * target).count() as f64 / latencies.len() as f64
}

fn target() -> Target {
    Target::Latency(LatencyBudget::from_ms(75.0).unwrap())
}

#[test]
fn rl_beats_random_search_and_moves_toward_the_target() {
    let kinds = [StrategyKind::Random, StrategyKind::Reinforce, StrategyKind::Ppo];
    let mut mean_best = Vec::new();
    for reward in [Reward::hard(target())] {
        for kind in kinds {
            let runs: Vec<Run> = (0..SEEDS).map(|s| search(kind, reward, s)).collect();
            let mean = runs.iter().map(|r| r.best).sum::<f64>() / SEEDS as f64;
            let early: f64 = runs.iter().map(|r| within(&r.latencies[..60], 75.0)).sum::<f64>() / SEEDS as f64;
            let n = runs[0].latencies.len();
            let late: f64 = runs.iter().map(|r| within(&r.latencies[n - 60..], 75.0)).sum::<f64>() / SEEDS as f64;
            println!("alpha {:5} {kind:?}: mean best reward {mean:.4}; within 10% of 75ms: first 60 {early:.3}, last 60 {late:.3}", reward.alpha);
            mean_best.push((reward.alpha, kind, mean, early, late));
        }
    }
    for (alpha, kind, mean, early, late) in &mean_best {
        let random = mean_best.iter().find(|m| m.0 == *alpha && m.1 == StrategyKind::Random).unwrap().2;
        if matches!(kind, StrategyKind::Reinforce | StrategyKind::Ppo) {
            assert!(mean > &random, "{kind:?} (alpha {alpha}) {mean} <= random {random}");
            if *alpha == 0.0 {
                assert!(late > early, "{kind:?}: within-10% fraction did not rise: {early} -> {late}");
            }
        }
    }
}
