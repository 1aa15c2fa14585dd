//! The runner on the surrogate: resume after a crash gives the uninterrupted journal; failed
//! evaluations are penalised, not fatal; duplicates reuse earlier results; the run folder is
//! complete and best.json loads; successive halving promotes the best third rung by rung, the
//! strategy learns each candidate's top rung, and resume keeps its journal too.

use std::path::Path;
use std::sync::Arc;

use search::evaluate::{Evaluation, LocalPool, SurrogateEvaluator, TrialEvaluator, TrialSpec};
use search::halving::Fidelity;
use search::results::{read_lines, Status, TrialRecord};
use search::runner::{RunConfig, Runner};
use search::setup::EvaluatorKind;
use search::strategy::StrategyKind;

fn config(kind: StrategyKind, trials: usize) -> RunConfig {
    let mut c = RunConfig {
        trials,
        workers: 3,
        threads: 3,
        batch_size: 6,
        evaluator: search::setup::EvaluatorKind::Surrogate,
        seed: 11,
        ..Default::default()
    };
    c.strategy.kind = kind;
    c
}

fn runner(dir: &Path, c: RunConfig, ev: Arc<dyn TrialEvaluator>, space: space::SearchSpace) -> Runner {
    let workers = c.workers;
    Runner::create(dir, c, space, Box::new(LocalPool::new(ev, workers))).unwrap()
}

/// The journal by id, without timestamps.
fn journal(dir: &Path) -> Vec<TrialRecord> {
    let mut r: Vec<TrialRecord> = read_lines(&dir.join("trials.jsonl")).unwrap();
    r.sort_by_key(|r| r.id);
    for t in &mut r {
        (t.started_at, t.finished_at) = (0.0, 0.0);
    }
    r
}

#[test]
fn resume_after_a_crash_reaches_the_same_journal() {
    for kind in [StrategyKind::Reinforce, StrategyKind::Ppo, StrategyKind::Evolution, StrategyKind::Random] {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        let space = space::SearchSpace::default_space();
        runner(&a, config(kind, 40), Arc::new(SurrogateEvaluator), space.clone()).run().unwrap();
        for crash in [9, 4, 13] {
            let c = config(kind, 40);
            let mut r = match b.join("config.json").exists() {
                false => runner(&b, c, Arc::new(SurrogateEvaluator), space.clone()),
                true => Runner::resume(&b, c, space.clone(), Box::new(LocalPool::new(Arc::new(SurrogateEvaluator), 3)))
                    .unwrap(),
            };
            r.crash_after = Some(crash);
            assert_eq!(r.run().unwrap_err(), "simulated crash");
        }
        let c = Runner::read_config(&b).unwrap();
        let s = Runner::resume(&b, c, space, Box::new(LocalPool::new(Arc::new(SurrogateEvaluator), 2)))
            .unwrap()
            .run()
            .unwrap();
        assert_eq!(s.trials, 40);
        assert_eq!(journal(&a), journal(&b), "{kind:?}");
        for f in ["config.json", "strategy.json", "started.jsonl", "best.json", "pareto.json", "summary.json"] {
            assert!(b.join(f).exists(), "{f}");
        }
        let best = space::load_arch(b.join("best.json").to_str().unwrap()).unwrap();
        assert_eq!(best.provenance.unwrap().latency_source.as_deref(), Some("surrogate"));
    }
}

/// A run that ended within a batch (2 trials of a batch of 6) goes on when resumed with more
/// trials: a new batch, laid out where a full first batch would have ended.
#[test]
fn more_trials_after_a_partial_last_batch_run_a_new_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let space = space::SearchSpace::default_space();
    runner(&dir, config(StrategyKind::Random, 2), Arc::new(SurrogateEvaluator), space.clone()).run().unwrap();
    let pool = Box::new(LocalPool::new(Arc::new(SurrogateEvaluator), 3));
    let s = Runner::resume(&dir, config(StrategyKind::Random, 5), space, pool).unwrap().run().unwrap();
    assert_eq!(s.trials, 5);
    assert_eq!(journal(&dir).iter().map(|r| r.id).collect::<Vec<_>>(), [0, 1, 6, 7, 8]);
}

struct Flaky;

impl TrialEvaluator for Flaky {
    fn evaluate(&self, t: &TrialSpec) -> Result<Evaluation, String> {
        let mut e = SurrogateEvaluator.evaluate(t)?;
        match t.id % 4 {
            0 => Err("out of memory".into()),
            1 => panic!("kernel failure"),
            2 => {
                e.score = f64::NAN;
                Ok(e)
            }
            _ => Ok(e),
        }
    }
}

#[test]
fn failed_candidates_are_penalised_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let s =
        runner(tmp.path(), config(StrategyKind::Reinforce, 24), Arc::new(Flaky), space::SearchSpace::default_space())
            .run()
            .unwrap();
    assert_eq!((s.trials, s.failed), (24, 18));
    for r in journal(tmp.path()) {
        let failed = r.status == Status::Failed;
        assert_eq!(failed, r.id % 4 != 3, "{}", r.id);
        if failed {
            assert_eq!(r.reward, 0.0);
            assert!(r.error.is_some());
        }
    }
}

#[test]
fn duplicate_architectures_reuse_the_earlier_result() {
    // Only row 1's depth varies: two architectures, so most trials are duplicates.
    let mut v: serde_json::Value = serde_json::from_str(include_str!("../../configs/space-mixnet.json")).unwrap();
    for (_, opts) in v["options"].as_object_mut().unwrap() {
        opts.as_array_mut().unwrap().truncate(1);
    }
    for row in v["rows"].as_array_mut().unwrap() {
        row.as_object_mut().unwrap().remove("layers");
    }
    v["rows"][0]["layers"] = serde_json::json!([1, 2]);
    let space = space::SearchSpace::parse(v.to_string().as_bytes(), "tiny.json").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let s = runner(tmp.path(), config(StrategyKind::Random, 12), Arc::new(SurrogateEvaluator), space).run().unwrap();
    let j = journal(tmp.path());
    assert_eq!(j.iter().filter(|r| r.status == Status::Ok).count(), 2);
    assert_eq!(s.cached, 10);
    for r in j.iter().filter(|r| r.status == Status::Cached) {
        let orig = &j[r.cached_from.unwrap() as usize];
        assert_eq!((orig.status, &orig.choices, orig.reward), (Status::Ok, &r.choices, r.reward));
    }
}

/// The surrogate scored by the epochs the trial was given, out of 9: more training, higher score.
struct ByEpochs;

impl TrialEvaluator for ByEpochs {
    fn evaluate(&self, t: &TrialSpec) -> Result<Evaluation, String> {
        let mut e = SurrogateEvaluator.evaluate(t)?;
        let epochs = t.epochs.ok_or("no epochs given")?;
        e.score *= epochs as f64 / 9.0;
        e.details.insert("epochs".into(), epochs.into());
        Ok(e)
    }
}

/// Brackets of 9 candidates, 9 -> 3 -> 1, at 1, 3 and 9 epochs (a training evaluator is
/// recorded, so trials carry their rung's epochs).
fn halving_config(kind: StrategyKind, trials: usize) -> RunConfig {
    let mut c = config(kind, trials);
    (c.fidelity, c.batch_size, c.evaluator, c.proxy.epochs) =
        (Fidelity::halving(3, 3).unwrap(), 9, EvaluatorKind::Proxy, 9);
    c
}

#[test]
fn halving_promotes_the_best_third_and_the_strategy_learns_the_top_rung() {
    let tmp = tempfile::tempdir().unwrap();
    let space = space::SearchSpace::default_space();
    let s = runner(tmp.path(), halving_config(StrategyKind::Evolution, 18), Arc::new(ByEpochs), space).run().unwrap();
    assert_eq!(s.trials, 26, "two brackets of 9 + 3 + 1 evaluations");
    let j = journal(tmp.path());
    let rungs: Vec<usize> = j.iter().map(|r| r.rung).collect();
    let bracket = [vec![0; 9], vec![1; 3], vec![2]].concat();
    assert_eq!(rungs, [bracket.clone(), bracket].concat());
    assert_eq!(j.iter().map(|r| r.id).collect::<Vec<_>>(), (0..26).collect::<Vec<_>>());
    for r in &j {
        assert_eq!(r.status, Status::Ok, "{r:?}");
        let epochs = r.evaluation.as_ref().unwrap().details["epochs"].as_u64().unwrap();
        assert_eq!(epochs, [1, 3, 9][r.rung], "trial {}", r.id);
        let Some(from) = r.promoted_from else { continue };
        let below = &j[from as usize];
        assert_eq!((below.rung + 1, &below.choices, below.seed, below.batch), (r.rung, &r.choices, r.seed, r.batch));
        // Promoted: no candidate of its rung and bracket left behind scored higher.
        let promoted: Vec<u64> = j.iter().filter(|p| p.rung == r.rung).filter_map(|p| p.promoted_from).collect();
        for other in j.iter().filter(|o| o.rung == below.rung && o.batch == below.batch && !promoted.contains(&o.id)) {
            assert!(
                other.reward <= below.reward,
                "trial {} left behind with {} > {}",
                other.id,
                other.reward,
                below.reward
            );
        }
    }
    // The strategy's population holds each candidate's reward at its highest rung.
    let ckpt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("strategy.json")).unwrap()).unwrap();
    let learned: Vec<f64> =
        ckpt["strategy"]["population"].as_array().unwrap().iter().map(|o| o["reward"].as_f64().unwrap()).collect();
    let top_rung = |r: &TrialRecord| {
        let mut at = r;
        while let Some(next) = j.iter().find(|n| n.promoted_from == Some(at.id)) {
            at = next;
        }
        at.reward
    };
    let expected: Vec<f64> = j.iter().filter(|r| r.rung == 0).map(top_rung).collect();
    assert_eq!(learned, expected);
    assert_ne!(learned, j.iter().filter(|r| r.rung == 0).map(|r| r.reward).collect::<Vec<_>>());
    let best = space::load_arch(tmp.path().join("best.json").to_str().unwrap()).unwrap();
    let trial = best.provenance.unwrap().trial.unwrap();
    assert_eq!(j[trial as usize].rung, 2, "best.json is a top-rung trial");
}

#[test]
fn halving_resumed_after_crashes_reaches_the_same_journal() {
    for kind in [StrategyKind::Reinforce, StrategyKind::Evolution] {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        let space = space::SearchSpace::default_space();
        runner(&a, halving_config(kind, 27), Arc::new(ByEpochs), space.clone()).run().unwrap();
        // Crashes at rung 0 and at rung 1 of the first bracket, and at rung 2 of the second.
        for crash in [5, 5, 15] {
            let c = halving_config(kind, 27);
            let mut r = match b.join("config.json").exists() {
                false => runner(&b, c, Arc::new(ByEpochs), space.clone()),
                true => Runner::resume(&b, c, space.clone(), Box::new(LocalPool::new(Arc::new(ByEpochs), 3))).unwrap(),
            };
            r.crash_after = Some(crash);
            assert_eq!(r.run().unwrap_err(), "simulated crash");
        }
        let c = Runner::read_config(&b).unwrap();
        let s = Runner::resume(&b, c, space, Box::new(LocalPool::new(Arc::new(ByEpochs), 2))).unwrap().run().unwrap();
        assert_eq!(s.trials, 39, "{kind:?}");
        assert_eq!(journal(&a), journal(&b), "{kind:?}");
    }
}
