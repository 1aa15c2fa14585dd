//! `nas space`: describe a search space, or sample architectures from it.

use std::path::{Path, PathBuf};

use clap::Args;
use rand::rngs::StdRng;
use rand::SeedableRng;
use space::SearchSpace;

#[derive(Args, Debug)]
pub struct SpaceArgs {
    /// Space file (format mixnas.space/1); default: the embedded configs/space-mixnet.json.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Sample N architectures (uniform over the space's points) instead of describing.
    #[arg(long, value_name = "N")]
    pub sample: Option<usize>,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// Write samples as DIR/sample-NNN.json instead of printing one JSON line each.
    #[arg(long, value_name = "DIR", requires = "sample")]
    pub out: Option<PathBuf>,
}

pub fn exec(args: SpaceArgs) -> Result<i32, String> {
    let space = match &args.config {
        Some(path) => SearchSpace::load(path).map_err(|e| e.to_string())?,
        None => SearchSpace::default_space(),
    };
    match args.sample {
        Some(n) => sample(&space, n, args.seed, args.out.as_deref()),
        None => super::print(&describe(&space, args.json)),
    }
}

fn describe(space: &SearchSpace, json: bool) -> String {
    if json {
        let v = serde_json::json!({
            "name": space.name,
            "description": space.description,
            "source": space.source,
            "rows": space.rows(),
            "num_decisions": space.decisions.len(),
            "log10_size": space.log10_size(),
            "size": exact_size(space),
            "resolution": space.resolution,
            "decisions": space.decisions,
        });
        return serde_json::to_string_pretty(&v).expect("a space description serialises");
    }
    let size = match exact_size(space) {
        Some(n) => format!("{} architectures", super::inspect::thousands(n)),
        None => format!("10^{:.2} architectures", space.log10_size()),
    };
    let judged = space.resolution.map_or(String::new(), |r| format!(", judged at {r}x{r}"));
    let mut out = format!(
        "space {} ({}): {} rows, {} decisions, {size}{judged}\n",
        space.name,
        space.source,
        space.rows().len(),
        space.decisions.len(),
    );
    if let Some(line) = &space.description {
        out += &format!("{line}\n");
    }
    for (i, row) in space.rows().iter().enumerate() {
        out += &format!("row{}  {}->{} stride {}\n", i + 1, row.in_ch(), row.out(), row.stride());
        let prefix = format!("row{}.", i + 1);
        for d in space.decisions.iter().filter(|d| d.name.starts_with(&prefix)) {
            out += &format!("  {:<22} {}\n", d.name, d.options.join(" | "));
        }
    }
    out
}

/// The number of points when it is small enough to count exactly (below 10^15).
fn exact_size(space: &SearchSpace) -> Option<u64> {
    let log = space.log10_size();
    (log < 15.0).then(|| 10f64.powf(log).round() as u64)
}

fn sample(space: &SearchSpace, n: usize, seed: u64, out: Option<&Path>) -> Result<i32, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut text = String::new();
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    for i in 0..n {
        let arch = space.decode(&space.sample(&mut rng)).map_err(|e| e.to_string())?;
        match out {
            Some(dir) => {
                let path = dir.join(format!("sample-{i:03}.json"));
                search::results::write_atomic(&path, (arch.to_json() + "\n").as_bytes())?;
                text += &format!("{}\n", path.display());
            }
            None => text += &(serde_json::to_string(&arch).expect("an Arch serialises") + "\n"),
        }
    }
    super::print(text.trim_end())
}
