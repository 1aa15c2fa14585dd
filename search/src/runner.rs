//! The search loop: the [`Runner`] asks a strategy for a batch, has an executor evaluate it in
//! parallel, journals each result as it finishes, then tells the strategy, in trial-id order.
//!
//! Resume and its guarantees. Batch b holds trial ids `[b*B, (b+1)*B)`. The checkpoint
//! (`strategy.json`, written atomically) holds the strategy state after observing batches
//! `0..k` and nothing later, so proposing from it re-derives batch k exactly (the RNG is in the
//! state). On resume, batch k is re-proposed; trials already in the journal are reused (their
//! choices must match, or resume stops with an error), the rest are re-issued; then the strategy
//! observes the full batch. Therefore: a SIGKILL at any instant loses no journalled trial,
//! counts none twice (ids are unique; a journalled id is never re-evaluated), and the resumed
//! run reaches the same trials as an uninterrupted one. Journal line order can differ with
//! several workers (lines are appended on completion); the content per id does not, except
//! timestamps.
//!
//! With successive halving ([`crate::halving`]) a batch is a bracket: its candidates are
//! scored at rung 0 and the promoted ones again at each rung above, before the strategy
//! observes the batch. Bracket b holds ids `[b*E, (b+1)*E)`, E being the most evaluations a
//! bracket makes; rung r's ids follow rung r-1's. Promotions are recomputed from the journalled
//! scores, so resume keeps the guarantees above.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use evaluator::rng::mix;
use serde::{Deserialize, Serialize};

use crate::evaluate::{Evaluation, Executor, TrialSpec};
use crate::halving::{promote, Fidelity};
use crate::proxy::ProxySettings;
use crate::results::{
    self, append_line, parse_json, read_json, read_lines, unix_now, write_json, Status, Summary, TrialRecord,
};
use crate::reward::{LatencyBudget, Reward, Target};
use crate::setup::EvaluatorKind;
use crate::strategy::{self, Observation, Strategy, StrategyConfig};

/// Reward given to invalid and failed candidates.
pub const PENALTY: f64 = 0.0;

/// Everything needed to reproduce a run; written to `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunConfig {
    pub seed: u64,
    pub strategy: StrategyConfig,
    /// `default` or a search-space file.
    pub space: String,
    pub classes: Option<usize>,
    pub reward: Reward,
    pub evaluator: EvaluatorKind,
    pub trials: usize,
    /// Wall-clock budget in seconds; checked between batches.
    pub time_seconds: Option<f64>,
    pub workers: usize,
    /// CPU threads in total, shared evenly by the workers.
    pub threads: usize,
    /// Candidates per strategy update (0: one per worker, at least 8).
    pub batch_size: usize,
    pub data: String,
    /// The proxy trainer's settings (defaults filled in).
    pub proxy: ProxySettings,
    /// Full (each candidate once) or successive halving; `trials` counts candidates either way.
    #[serde(skip_serializing_if = "Fidelity::is_full")]
    pub fidelity: Fidelity,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            seed: 0,
            strategy: StrategyConfig::default(),
            space: "default".into(),
            classes: None,
            // Hard: a zero-cost score has no accuracy scale for the soft exponent to trade against.
            reward: Reward::hard(Target::Latency(LatencyBudget::from_ms(75.0).unwrap())),
            evaluator: EvaluatorKind::Zero(crate::setup::ZeroScore::Naswot),
            trials: 300,
            time_seconds: None,
            workers: 1,
            threads: 1,
            batch_size: 0,
            data: "default".into(),
            proxy: ProxySettings { epochs: 5, resolution: Some(32), ..Default::default() },
            fidelity: Fidelity::Full,
        }
    }
}

impl RunConfig {
    /// Candidates per strategy update (a bracket under successive halving: [`Fidelity::bracket`]).
    pub fn batch(&self) -> usize {
        self.fidelity.bracket(self.batch_size, self.workers)
    }

    /// The training epochs of each rung's evaluations (`None`: the evaluator's own, for one
    /// that does not train and at full fidelity), or why the fidelity settings cannot run;
    /// checked before a run folder is made.
    pub fn rung_epochs(&self) -> Result<Vec<Option<usize>>, String> {
        let batch = self.batch();
        if let Fidelity::Halving { eta, rungs } = self.fidelity {
            let min = self.fidelity.min_bracket();
            if self.trials < min {
                return Err(format!(
                    "--trials {} with --fidelity sh --eta {eta} --rungs {rungs}: fewer than {min} candidates never reach the top rung; use --trials {min} or more (best a multiple of the bracket, {batch})",
                    self.trials
                ));
            }
        }
        // At full fidelity the evaluator keeps its own epochs, and the journal its old form.
        match self.evaluator.trains() && !self.fidelity.is_full() {
            true => Ok(self.fidelity.rung_epochs(self.proxy.epochs)?.into_iter().map(Some).collect()),
            false => Ok(vec![None; self.fidelity.rungs()]),
        }
    }

    /// The most journal records the run makes: every candidate's rung-0 evaluation plus the
    /// promotions (one per candidate at full fidelity).
    pub fn planned_evaluations(&self) -> usize {
        let batch = self.batch();
        let (full, rest) = (self.trials / batch, self.trials % batch);
        full * self.fidelity.evaluations(batch) + self.fidelity.evaluations(rest)
    }
}

/// The strategy checkpoint (`strategy.json`): its state after observing `batches_done` batches.
#[derive(Serialize, Deserialize)]
struct StrategyCheckpoint {
    batches_done: u64,
    elapsed_seconds: f64,
    strategy: serde_json::Value,
}

pub struct Runner {
    dir: PathBuf,
    config: RunConfig,
    space: space::SearchSpace,
    executor: Box<dyn Executor>,
    strategy: Box<dyn Strategy>,
    records: HashMap<u64, TrialRecord>,
    /// Training epochs per rung, from [`RunConfig::rung_epochs`].
    rung_epochs: Vec<Option<usize>>,
    batches_done: u64,
    elapsed_before: f64,
    progress: bool,
    /// Test hook: stop (as if killed) after this many journal appends.
    pub crash_after: Option<usize>,
}

/// The initialisation seed of trial `id` in a run seeded `seed`.
pub fn trial_seed(seed: u64, id: u64) -> u64 {
    mix(seed ^ mix(id))
}

impl Runner {
    /// Starts a new run in `dir` (created; must not already hold a run).
    pub fn create(
        dir: &Path,
        config: RunConfig,
        space: space::SearchSpace,
        executor: Box<dyn Executor>,
    ) -> Result<Self, String> {
        if dir.join("config.json").exists() {
            return Err(format!("{} already holds a run (hint: --resume {0} continues it)", dir.display()));
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        write_json(&dir.join("config.json"), &config)?;
        Self::open(dir, config, space, executor)
    }

    /// Reopens a run from its folder, with `config` as recorded there (budget fields may differ).
    pub fn resume(
        dir: &Path,
        config: RunConfig,
        space: space::SearchSpace,
        executor: Box<dyn Executor>,
    ) -> Result<Self, String> {
        write_json(&dir.join("config.json"), &config)?;
        Self::open(dir, config, space, executor)
    }

    /// Reads `config.json` of a run folder.
    pub fn read_config(dir: &Path) -> Result<RunConfig, String> {
        let path = dir.join("config.json");
        let bytes =
            std::fs::read(&path).map_err(|e| format!("{}: {e} (hint: is this a run folder?)", path.display()))?;
        parse_json(&path, &bytes)
    }

    fn open(
        dir: &Path,
        config: RunConfig,
        space: space::SearchSpace,
        executor: Box<dyn Executor>,
    ) -> Result<Self, String> {
        let rung_epochs = config.rung_epochs()?;
        let mut strategy = strategy::build(&config.strategy, &space.num_options(), config.seed)?;
        let (mut batches_done, mut elapsed_before) = (0, 0.0);
        let ckpt = dir.join("strategy.json");
        if ckpt.exists() {
            let c: StrategyCheckpoint = read_json(&ckpt)?;
            strategy.load(c.strategy)?;
            (batches_done, elapsed_before) = (c.batches_done, c.elapsed_seconds);
        }
        let records = read_lines::<TrialRecord>(&dir.join("trials.jsonl"))?.into_iter().map(|r| (r.id, r)).collect();
        let dir = dir.to_path_buf();
        Ok(Runner {
            dir,
            config,
            space,
            executor,
            strategy,
            records,
            rung_epochs,
            batches_done,
            elapsed_before,
            progress: false,
            crash_after: None,
        })
    }

    pub fn with_progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// All finished trials so far, by id.
    pub fn records(&self) -> Vec<TrialRecord> {
        let mut all: Vec<TrialRecord> = self.records.values().cloned().collect();
        all.sort_by_key(|r| r.id);
        all
    }

    /// Runs until the trial or time budget is spent, then writes the reports.
    /// The run folder.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub fn run(&mut self) -> Result<Summary, String> {
        let start = Instant::now();
        let bar = self.progress_bar();
        let batch = self.config.batch() as u64;
        let total = self.config.trials as u64;
        let mut appended = 0usize;
        while self.candidates_done() < total {
            let elapsed = self.elapsed_before + start.elapsed().as_secs_f64();
            if self.config.time_seconds.is_some_and(|t| elapsed >= t) {
                break;
            }
            let n = batch.min(total - self.candidates_done()) as usize;
            let proposals = self.strategy.propose(n);
            let observations = self.run_bracket(batch as usize, proposals, &mut appended, &bar)?;
            self.strategy.observe(&observations);
            self.batches_done += 1;
            let elapsed = self.elapsed_before + start.elapsed().as_secs_f64();
            let ckpt = StrategyCheckpoint {
                batches_done: self.batches_done,
                elapsed_seconds: elapsed,
                strategy: self.strategy.save(),
            };
            write_json(&self.dir.join("strategy.json"), &ckpt)?;
        }
        bar.finish_and_clear();
        let wall = self.elapsed_before + start.elapsed().as_secs_f64();
        let run = self.dir.file_name().map_or("run".into(), |n| n.to_string_lossy().into_owned());
        let kind = self.config.evaluator.value_kind();
        results::write_reports(&self.dir, &run, &self.records(), &self.config.reward, kind, wall)
    }

    /// Candidates of the finished batches. A run that stopped at a partial last batch and is
    /// resumed with more trials goes on with a new batch (its ids start where a full batch would
    /// have ended), instead of counting the partial batch as full.
    fn candidates_done(&self) -> u64 {
        let end = self.batches_done * self.config.fidelity.evaluations(self.config.batch()) as u64;
        self.records.values().filter(|r| r.rung == 0 && r.id < end).count() as u64
    }

    /// Scores the proposals of this batch at rung 0, then the promoted ones rung by rung, and
    /// returns what the strategy observes: each candidate's outcome at its highest rung.
    /// `batch` is the full batch size, which lays out the ids.
    fn run_bracket(
        &mut self,
        batch: usize,
        proposals: Vec<Vec<usize>>,
        appended: &mut usize,
        bar: &indicatif::ProgressBar,
    ) -> Result<Vec<Observation>, String> {
        let fidelity = self.config.fidelity;
        let sizes = fidelity.rung_sizes(batch);
        let mut first_id = self.batches_done * fidelity.evaluations(batch) as u64;
        let plan: Vec<Planned> = proposals
            .into_iter()
            .enumerate()
            .map(|(i, choices)| {
                let id = first_id + i as u64;
                Planned { id, choices, seed: trial_seed(self.config.seed, id), rung: 0, promoted_from: None }
            })
            .collect();
        // Per candidate, in proposal order: the id of its record at the highest rung so far.
        let mut highest: Vec<u64> = plan.iter().map(|p| p.id).collect();
        self.run_batch(plan, appended, bar)?;
        let mut current = highest.clone();
        for rung in 1..fidelity.rungs() {
            first_id += sizes[rung - 1] as u64;
            let Fidelity::Halving { eta, .. } = fidelity else { break };
            let scores: Vec<(u64, Option<f64>)> = current.iter().map(|id| (*id, score(&self.records[id]))).collect();
            let promoted = promote(&scores, eta);
            let plan: Vec<Planned> = promoted
                .iter()
                .enumerate()
                .map(|(i, &from)| {
                    let r = &self.records[&from];
                    let (choices, seed) = (r.choices.clone(), r.seed);
                    Planned { id: first_id + i as u64, choices, seed, rung, promoted_from: Some(from) }
                })
                .collect();
            current = plan.iter().map(|p| p.id).collect();
            for p in &plan {
                let from = p.promoted_from.expect("a promotion");
                highest.iter_mut().filter(|h| **h == from).for_each(|h| *h = p.id);
            }
            self.run_batch(plan, appended, bar)?;
        }
        Ok(highest.iter().map(|id| observation(&self.records[id])).collect())
    }

    /// Progress as one stderr line per finished trial, where no terminal shows the bar.
    fn progress_lines(&self) -> bool {
        self.progress && !std::io::stderr().is_terminal()
    }

    fn progress_bar(&self) -> indicatif::ProgressBar {
        if !self.progress || self.progress_lines() {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new(self.config.planned_evaluations() as u64);
        let style = indicatif::ProgressStyle::with_template("trial {pos}/{len} [{elapsed_precise}, eta {eta}] {msg}");
        bar.set_style(style.unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()));
        bar.set_position(self.records.len() as u64);
        bar
    }

    /// Evaluates the not-yet-journalled trials of one rung of a batch and journals each on
    /// completion.
    fn run_batch(
        &mut self,
        plan: Vec<Planned>,
        appended: &mut usize,
        bar: &indicatif::ProgressBar,
    ) -> Result<(), String> {
        // Keyed by rung and canonical choices: non-canonical vectors decode to the same
        // architecture, and a score at one rung says nothing of another.
        let key = |rung: usize, c: &[usize]| (rung, self.space.canonical(c).unwrap_or_else(|_| c.to_vec()));
        let mut by_choices: HashMap<(usize, Vec<usize>), u64> = HashMap::new();
        for r in self.records.values().filter(|r| matches!(r.status, Status::Ok | Status::Failed)) {
            by_choices.entry(key(r.rung, &r.choices)).and_modify(|id| *id = (*id).min(r.id)).or_insert(r.id);
        }
        let (mut specs, mut duplicates, mut instant) = (Vec::new(), Vec::new(), Vec::new());
        let mut placed: HashMap<u64, (usize, Option<u64>)> = HashMap::new();
        for Planned { id, choices, seed, rung, promoted_from } in plan {
            if let Some(done) = self.records.get(&id) {
                if done.choices != choices || done.rung != rung {
                    return Err(format!(
                        "trial {id}: journal disagrees with the checkpointed strategy (was the run folder edited?)"
                    ));
                }
                continue;
            }
            let record = |status, error: Option<String>| TrialRecord {
                id,
                batch: self.batches_done,
                choices: choices.clone(),
                status,
                reward: PENALTY,
                seed,
                rung,
                promoted_from,
                cached_from: None,
                error,
                evaluation: None,
                arch: None,
                started_at: unix_now(),
                finished_at: unix_now(),
            };
            if let Some(&orig) = by_choices.get(&key(rung, &choices)) {
                duplicates.push((record(Status::Cached, None), orig));
                continue;
            }
            match self.space.decode(&choices) {
                Err(e) => instant.push(record(Status::Invalid, Some(e.to_string()))),
                Ok(arch) => {
                    by_choices.insert(key(rung, &choices), id);
                    placed.insert(id, (rung, promoted_from));
                    let threads = (self.config.threads / self.executor.workers()).max(1);
                    let epochs = self.rung_epochs[rung];
                    specs.push(TrialSpec { id, arch, choices, seed, threads, epochs });
                }
            }
        }
        for (id, spec) in specs.iter().map(|s| (s.id, s)) {
            append_line(
                &self.dir.join("started.jsonl"),
                &serde_json::json!({"id": id, "choices": spec.choices, "at": unix_now()}),
            )?;
        }
        for r in instant {
            self.journal(r, appended, bar)?;
        }
        let batch_index = self.batches_done;
        let started = unix_now();
        let reward = self.config.reward;
        let mut failure = Ok(());
        let executor = std::mem::replace(&mut self.executor, Box::new(NoExecutor));
        executor.run(specs, &mut |spec, result| {
            let mut r = finished(spec, result.and_then(Evaluation::check), &reward, batch_index, started);
            (r.rung, r.promoted_from) = placed[&spec.id];
            if failure.is_ok() {
                failure = self.journal(r, appended, bar);
            }
        });
        self.executor = executor;
        failure?;
        for (mut r, orig) in duplicates {
            let o = &self.records[&orig];
            (r.status, r.reward, r.evaluation, r.arch, r.error) =
                (Status::Cached, o.reward, o.evaluation.clone(), o.arch.clone(), o.error.clone());
            r.cached_from = Some(orig);
            r.finished_at = unix_now();
            self.journal(r, appended, bar)?;
        }
        Ok(())
    }

    /// Makes a finished trial durable, then visible to the loop.
    fn journal(
        &mut self,
        record: TrialRecord,
        appended: &mut usize,
        bar: &indicatif::ProgressBar,
    ) -> Result<(), String> {
        if self.crash_after.is_some_and(|n| *appended >= n) {
            return Err("simulated crash".into());
        }
        append_line(&self.dir.join("trials.jsonl"), &record)?;
        *appended += 1;
        let best = self.records.values().map(|r| r.reward).fold(record.reward, f64::max);
        let last = match &record.evaluation {
            Some(e) => format!("last {} {:.4} lat {:.1}ms", self.config.evaluator.value_kind(), e.score, e.latency_ms),
            None => format!("last {:?}", record.status).to_lowercase(),
        };
        bar.set_message(format!("best reward {best:.4} | {last}"));
        bar.inc(1);
        if self.progress_lines() {
            let done = self.records.len() + 1;
            let (planned, id) = (self.config.planned_evaluations(), record.id);
            let rung = if record.rung > 0 { format!(" rung {}", record.rung) } else { String::new() };
            eprintln!(
                "trial {id}{rung} ({done}/{planned}): {}",
                record.outcome_line(self.config.evaluator.value_kind())
            );
        }
        self.records.insert(record.id, record);
        Ok(())
    }
}

/// One evaluation of a batch, before it runs.
struct Planned {
    id: u64,
    choices: Vec<usize>,
    /// The candidate's seed: a promoted one trains again from the same start.
    seed: u64,
    rung: usize,
    promoted_from: Option<u64>,
}

/// What promotion ranks a record by: its reward, or nothing when it has no evaluation.
fn score(r: &TrialRecord) -> Option<f64> {
    r.evaluation.as_ref().map(|_| r.reward)
}

fn observation(r: &TrialRecord) -> Observation {
    let failed = matches!(r.status, Status::Invalid | Status::Failed) || r.evaluation.is_none();
    Observation { choices: r.choices.clone(), reward: r.reward, failed }
}

fn finished(
    spec: &TrialSpec,
    result: Result<Evaluation, String>,
    reward: &Reward,
    batch: u64,
    started: f64,
) -> TrialRecord {
    let (status, score, evaluation, error) = match result {
        Ok(e) => {
            let cost = reward.target.cost_of(e.latency_ms, e.macs, e.params);
            (Status::Ok, reward.score(e.score, cost), Some(e), None)
        }
        Err(msg) => (Status::Failed, PENALTY, None, Some(msg)),
    };
    TrialRecord {
        id: spec.id,
        batch,
        choices: spec.choices.clone(),
        status,
        reward: score,
        seed: spec.seed,
        rung: 0,
        promoted_from: None,
        cached_from: None,
        error,
        evaluation,
        arch: Some(spec.arch.clone()),
        started_at: started,
        finished_at: unix_now(),
    }
}

/// Placeholder while the real executor is borrowed out during a batch.
struct NoExecutor;

impl Executor for NoExecutor {
    fn run(&self, _: Vec<TrialSpec>, _: &mut dyn FnMut(&TrialSpec, Result<Evaluation, String>)) {}
    fn workers(&self) -> usize {
        1
    }
}
