//! `nas report`: renders a search run or a `nas train` folder as one self-contained HTML page,
//! and optionally each plot as an SVG file.

use std::path::PathBuf;

use clap::Args;

use crate::report;
use search::results::write_atomic;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A `nas search` run folder, a `nas train` output folder or a `nas fidelity` folder.
    pub dir: PathBuf,
    /// Where to write the HTML page [default: DIR/report.html].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also write each plot as a standalone SVG file into this folder (created if needed).
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
}

pub fn exec(args: ReportArgs) -> Result<i32, String> {
    // Everything is rendered before anything is written, so a failure leaves no partial output.
    let report = report::build(&args.dir)?;
    if let Some(dir) = &args.plots {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for (name, svg) in &report.plots {
            write_atomic(&dir.join(name), svg.as_bytes())?;
        }
    }
    let out = args.out.unwrap_or_else(|| args.dir.join("report.html"));
    write_atomic(&out, report.html.as_bytes())?;
    super::print(&format!("report: {}", out.display()))?;
    if let Some(dir) = &args.plots {
        super::print(&format!("plots: {} SVG files in {}", report.plots.len(), dir.display()))?;
    }
    Ok(0)
}
