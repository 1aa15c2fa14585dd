//! What the strategy learned: for every decision of the space, how often each option was
//! proposed in the first third of the run and in the last third, as two stacked bars.
//! Decisions named `<row>.<field>` are laid out as a grid (rows down, fields across).

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::run::RunFolder;
use super::svg::{self, palette, render, Area, DrawResult, INK, MUTED};

/// One decision's option shares early and late in the run.
pub struct Shares {
    pub name: String,
    pub options: Vec<String>,
    pub early: Vec<f64>,
    pub late: Vec<f64>,
}

const COL_W: i32 = 172;
const ROW_H: i32 = 40;
const LEFT: i32 = 64;
const TOP: i32 = 78;
const BAR_W: i32 = 84;

/// Option shares per decision over the first and last third of the trials (by id).
pub fn shares(run: &RunFolder) -> Vec<Shares> {
    let decisions = decisions(run);
    let n = run.records.len();
    let third = (n / 3).max(1).min(n);
    let (early, late) = (&run.records[..third], &run.records[n - third..]);
    let share = |d: usize, k: usize, part: &[search::results::TrialRecord]| {
        let mut counts = vec![0.0; k];
        for c in part.iter().filter_map(|r| r.choices.get(d)).filter(|&&c| c < k) {
            counts[*c] += 1.0;
        }
        let total: f64 = counts.iter().sum::<f64>().max(1.0);
        counts.into_iter().map(|c| c / total).collect::<Vec<f64>>()
    };
    decisions
        .into_iter()
        .enumerate()
        .map(|(d, (name, options))| {
            let k = options.len();
            Shares { name, early: share(d, k, early), late: share(d, k, late), options }
        })
        .collect()
}

/// Decision names and option labels from the run's space; indices when the space file is gone.
fn decisions(run: &RunFolder) -> Vec<(String, Vec<String>)> {
    let space = match run.config.space.as_str() {
        "default" => Ok(space::SearchSpace::default_space()),
        path => space::SearchSpace::load(path),
    };
    match space {
        Ok(s) => s.decisions.into_iter().map(|d| (d.name, d.options)).collect(),
        Err(_) => {
            let width = run.records.iter().map(|r| r.choices.len()).max().unwrap_or(0);
            (0..width)
                .map(|d| {
                    let k = run.records.iter().filter_map(|r| r.choices.get(d)).max().map_or(1, |m| m + 1);
                    (format!("decision{d}"), (0..k).map(|i| i.to_string()).collect())
                })
                .collect()
        }
    }
}

/// `row4.kernels` -> ("row4", "kernels"); a name without a dot is its own row.
fn split_name(name: &str) -> (&str, &str) {
    name.split_once('.').unwrap_or((name, ""))
}

fn first_seen<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

pub fn choices_svg(run: &RunFolder) -> Result<String, String> {
    let shares = shares(run);
    let rows = first_seen(shares.iter().map(|s| split_name(&s.name).0));
    let cols = first_seen(shares.iter().map(|s| split_name(&s.name).1));
    let width = (LEFT + COL_W * cols.len() as i32 + 16).max(640) as u32;
    let height = (TOP + ROW_H * rows.len() as i32 + 56) as u32;
    let third = (run.records.len() / 3).max(1);
    render((width, height), |root| {
        if shares.is_empty() || run.records.is_empty() {
            return svg::empty(root, "no decisions to show");
        }
        root.draw_text("What the search learned: option shares per decision", &svg::text(20, INK), (16, 8))?;
        let note = format!(
            "upper bar: first {third} trials, lower bar: last {third}; colour = option index; text: most chosen late option and its share"
        );
        root.draw_text(&note, &svg::text(12, MUTED), (16, 34))?;
        for (c, col) in cols.iter().enumerate() {
            root.draw_text(col, &svg::text(13, INK), (LEFT + COL_W * c as i32, TOP - 20))?;
        }
        for (r, row) in rows.iter().enumerate() {
            root.draw_text(row, &svg::text(13, INK), (12, TOP + ROW_H * r as i32 + 12))?;
        }
        for s in &shares {
            let (row, col) = split_name(&s.name);
            let r = rows.iter().position(|x| *x == row).unwrap_or(0) as i32;
            let c = cols.iter().position(|x| *x == col).unwrap_or(0) as i32;
            cell(root, s, (LEFT + COL_W * c, TOP + ROW_H * r))?;
        }
        let k = shares.iter().map(|s| s.options.len()).max().unwrap_or(1);
        swatches(root, k, (16, height as i32 - 36))
    })
}

/// One decision: early bar on top, late bar below, the late favourite written beside them.
fn cell(root: &Area, s: &Shares, (x, y): (i32, i32)) -> DrawResult {
    bar(root, &s.early, (x, y + 4))?;
    bar(root, &s.late, (x, y + 18))?;
    let (best, share) = s.late.iter().enumerate().fold((0, 0.0), |m, (i, &v)| if v > m.1 { (i, v) } else { m });
    let label = format!("{} {:.0}%", s.options.get(best).map_or("?", |o| o.as_str()), share * 100.0);
    let style = svg::text(11, INK).pos(Pos::new(HPos::Left, VPos::Center));
    root.draw_text(&label, &style, (x + BAR_W + 6, y + 18))?;
    Ok(())
}

fn bar(root: &Area, shares: &[f64], (x, y): (i32, i32)) -> DrawResult {
    let mut left = x as f64;
    for (i, &v) in shares.iter().enumerate() {
        let right = left + v * BAR_W as f64;
        if right - left >= 0.5 {
            root.draw(&Rectangle::new(
                [(left.round() as i32, y), (right.round() as i32, y + 11)],
                palette(i).filled(),
            ))?;
        }
        left = right;
    }
    root.draw(&Rectangle::new([(x, y), (x + BAR_W, y + 11)], MUTED.mix(0.6)))?;
    Ok(())
}

fn swatches(root: &Area, k: usize, (x, y): (i32, i32)) -> DrawResult {
    root.draw_text("option index:", &svg::text(12, MUTED), (x, y + 1))?;
    for i in 0..k {
        let sx = x + 96 + 44 * i as i32;
        root.draw(&Rectangle::new([(sx, y), (sx + 14, y + 14)], palette(i).filled()))?;
        root.draw_text(&i.to_string(), &svg::text(12, INK), (sx + 18, y + 1))?;
    }
    Ok(())
}
