//! `nas inspect`: per-block structure and exact costs of one architecture, as a table or JSON.

use std::path::Path;

use clap::Args;
use serde::Serialize;
use space::{cost, load_arch, Arch, Cost};

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// An architecture file, a preset name (mixnet-s, mixnet-m, mixnet-l, mobilenetv2, mnasnet-a1) or a run folder.
    pub arch: String,
    /// Input resolution (square) at which costs are counted.
    #[arg(long, default_value_t = 224, value_name = "PX")]
    pub resolution: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn exec(args: InspectArgs) -> Result<i32, String> {
    if Path::new(&args.arch).is_dir() {
        return inspect_run(Path::new(&args.arch), &args);
    }
    let arch = load_arch(&args.arch).map_err(|e| e.to_string())?;
    let text = match args.json {
        true => serde_json::to_string_pretty(&report(&arch, args.resolution)).expect("a report serialises"),
        false => table(&arch, args.resolution),
    };
    super::print(&text)
}

/// Summary of a search run folder: the results module fills this in once runs are written.
fn inspect_run(dir: &Path, _args: &InspectArgs) -> Result<i32, String> {
    Err(format!("{}: is a directory; summarising a search run is not supported yet", dir.display()))
}

#[derive(Serialize)]
struct Report {
    name: Option<String>,
    resolution: usize,
    classes: usize,
    blocks: Vec<BlockRow>,
    stem: Cost,
    head: Cost,
    classifier: Cost,
    params: u64,
    macs: u64,
    activations: u64,
}

#[derive(Serialize)]
struct BlockRow {
    index: usize,
    stride: usize,
    resolution_in: usize,
    resolution_out: usize,
    #[serde(rename = "in")]
    in_ch: usize,
    out: usize,
    kernels: Vec<usize>,
    expand: usize,
    expand_groups: usize,
    project_groups: usize,
    se: Option<f64>,
    act: space::Activation,
    /// Whether the residual add is actually applied.
    skip: bool,
    #[serde(flatten)]
    cost: Cost,
}

fn report(arch: &Arch, resolution: usize) -> Report {
    let c = cost(arch, resolution);
    let blocks = arch
        .blocks
        .iter()
        .zip(&c.blocks)
        .enumerate()
        .map(|(index, (b, bc))| BlockRow {
            index,
            stride: b.stride,
            resolution_in: bc.resolution_in,
            resolution_out: bc.resolution_out,
            in_ch: b.in_ch,
            out: b.out,
            kernels: b.kernels.clone(),
            expand: b.expand,
            expand_groups: b.expand_groups,
            project_groups: b.project_groups,
            se: b.se,
            act: b.act,
            skip: b.has_residual(),
            cost: bc.cost,
        })
        .collect();
    Report {
        name: arch.name.clone(),
        resolution,
        classes: arch.classes,
        blocks,
        stem: c.stem,
        head: c.head,
        classifier: c.classifier,
        params: c.total.params,
        macs: c.total.macs,
        activations: c.total.activations,
    }
}

/// 1234567 -> "1,234,567".
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn table(arch: &Arch, resolution: usize) -> String {
    let r = report(arch, resolution);
    let line = |cols: [&str; 10], c: &Cost| {
        let [a, b, res, ch, k, e, g, se, act, skip] = cols;
        format!(
            "{a:<6}{b:>2}  {res:<9} {ch:<10} {k:<11} {e:>3}  {g:<5} {se:<5} {act:<6}{skip:<5}{:>11} {:>13}\n",
            thousands(c.params),
            thousands(c.macs)
        )
    };
    let name = arch.name.as_deref().unwrap_or("(unnamed)");
    let mut out = format!("{name} at {resolution}x{resolution}, {} classes\n", arch.classes);
    out += &format!(
        "{:<6}{:>2}  {:<9} {:<10} {:<11} {:>3}  {:<5} {:<5} {:<6}{:<5}{:>11} {:>13}\n",
        "#", "s", "res", "channels", "kernels", "e", "ga/gp", "se", "act", "skip", "params", "MACs"
    );
    let s = &arch.stem;
    let after_stem = r.blocks.first().map_or(resolution / s.stride, |b| b.resolution_in);
    let (st, res, ch) = (s.stride.to_string(), format!("{resolution}>{after_stem}"), format!("{}>{}", s.in_ch, s.out));
    out += &line(["stem", &st, &res, &ch, &s.kernel.to_string(), "-", "-", "-", "relu", "-"], &r.stem);
    for b in &r.blocks {
        let kernels = b.kernels.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(".");
        let owned = [
            b.index.to_string(),
            b.stride.to_string(),
            format!("{}>{}", b.resolution_in, b.resolution_out),
            format!("{}>{}", b.in_ch, b.out),
            kernels,
            b.expand.to_string(),
            format!("{}/{}", b.expand_groups, b.project_groups),
            b.se.map_or("-".to_string(), |x| x.to_string()),
            if b.act == space::Activation::Relu { "relu" } else { "swish" }.to_string(),
            if b.skip { "yes" } else { "-" }.to_string(),
        ];
        out += &line(std::array::from_fn(|i| owned[i].as_str()), &b.cost);
    }
    let last = r.blocks.last().map_or(after_stem, |b| b.resolution_out);
    let (res, ch) = (format!("{last}>{last}"), format!("{}>{}", arch.last_channels(), arch.head.width));
    out += &line(["head", "1", &res, &ch, "1", "-", "-", "-", "relu", "-"], &r.head);
    let ch = format!("{}>{}", arch.head.width, arch.classes);
    out += &line(["fc", "-", "1>1", &ch, "-", "-", "-", "-", "-", "-"], &r.classifier);
    out += &format!(
        "total: {} params, {} MACs, {} activations\n",
        thousands(r.params),
        thousands(r.macs),
        thousands(r.activations)
    );
    out
}
