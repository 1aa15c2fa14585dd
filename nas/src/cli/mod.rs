//! The `nas` command line: clap types in, one `exec` per command, one error line out.

mod bench;
mod broker;
mod experiment;
mod export;
mod fidelity;
mod infer;
mod inspect;
mod latency;
mod report;
mod score;
mod search;
mod space;
mod supernet;
mod train;
mod worker;

use clap::{Parser, Subcommand};

/// mixnas: latency-aware architecture search for MixConv networks.
#[derive(Parser, Debug)]
#[command(name = "nas", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train an architecture (a search result or a preset) on real data, with checkpoints.
    Train(train::TrainArgs),
    /// Test accuracy of a checkpoint, as JSON.
    Eval(train::EvalArgs),
    /// Logits of a stored tensor, or the top-5 classes of images, from a checkpoint.
    Infer(infer::InferArgs),
    /// A checkpoint as ONNX (opset 17, BN folded), or a checkpoint or architecture as a timm model.
    Export(export::ExportArgs),
    /// Convert timm MixNet weights into a mixnas checkpoint.
    ImportTimm(infer::ImportTimmArgs),
    /// Per-block structure, parameters and MACs of an architecture file or preset.
    Inspect(inspect::InspectArgs),
    /// Describe the search space, or sample architectures from it.
    Space(space::SpaceArgs),
    /// Measured and predicted latency on this machine; build or validate the lookup table.
    Latency(latency::LatencyArgs),
    /// How well an evaluator's scores rank a ground truth's networks (NAS-Bench-Macro).
    Fidelity(fidelity::FidelityArgs),
    /// Weight-sharing supernets over a search space (`--evaluator supernet:DIR`).
    Supernet(supernet::SupernetArgs),
    /// Latency-aware architecture search; writes a run folder with best.json.
    Search(Box<search::SearchArgs>),
    /// Every point of a small space scored by the search's evaluator, as a table file.
    Score(score::ScoreArgs),
    /// An HTML report with plots of a search run or a `nas train` folder.
    Report(report::ReportArgs),
    /// Benchmarks matching the PyTorch / ONNX Runtime yardsticks.
    Bench(bench::BenchArgs),
    /// The MixConv paper's experiments (kernel size, partition, dilation, single layer) at proxy scale.
    Experiment(experiment::ExperimentArgs),
    /// Evaluate trials for `nas search --broker` runs (NATS JetStream) on this machine.
    Worker(worker::WorkerArgs),
}

fn exec(command: Command) -> Result<i32, String> {
    match command {
        Command::Train(a) => train::exec_train(a),
        Command::Eval(a) => train::exec_eval(a),
        Command::Infer(a) => infer::exec_infer(a),
        Command::ImportTimm(a) => infer::exec_import_timm(a),
        Command::Export(a) => export::exec(a),
        Command::Bench(a) => bench::exec(a),
        Command::Inspect(a) => inspect::exec(a),
        Command::Space(a) => space::exec(a),
        Command::Latency(a) => latency::exec(a),
        Command::Search(a) => search::exec(*a),
        Command::Supernet(a) => supernet::exec(a),
        Command::Fidelity(a) => fidelity::exec(a),
        Command::Score(a) => score::exec(a),
        Command::Report(a) => report::exec(a),
        Command::Worker(a) => worker::exec(a),
        Command::Experiment(a) => experiment::exec(a),
    }
}

/// Parses the arguments, runs the command and returns the exit code: 0 success, 1 finished
/// with failures, 2 error (one line on stderr).
pub fn main_impl() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Usage errors are one line like every other error; --help and --version print as usual.
        Err(e) if e.use_stderr() => {
            let text = e.to_string();
            eprintln!("nas: {}", text.lines().next().unwrap_or_default().trim_start_matches("error: "));
            return 2;
        }
        Err(e) => {
            let _ = e.print();
            return 0;
        }
    };
    match exec(cli.command) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("nas: {}", message.lines().next().unwrap_or_default());
            2
        }
    }
}

/// Prints `text` and a newline to stdout; a closed pipe (`nas ... | head`) is not an error.
pub(crate) fn print(text: &str) -> Result<i32, String> {
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("stdout: {e}")),
        _ => Ok(0),
    }
}
