//! The report of a `nas fidelity` folder: each network's score against its truth (and against
//! its MACs, the counting baseline), and the rank statistics with their intervals.

use plotters::prelude::*;
use search::fidelity::run::FidelityResults;
use search::fidelity::{Estimate, RankReport};

use super::html::{figure, table, Page};
use super::svg::{self, padded, render, INK, POINT};
use super::Report;

/// Reads `results.json` of a fidelity folder.
pub fn load(dir: &std::path::Path) -> Result<FidelityResults, String> {
    let r: FidelityResults = search::results::read_json(&dir.join("results.json"))?;
    // The statistics are a function of the rows: recomputed, a file written before a statistic
    // existed shows it too.
    Ok(search::fidelity::run::summarise(r.config, r.rows))
}

fn scatter(points: &[(f64, f64)], caption: &str, x_desc: &str, y_desc: &str) -> Result<String, String> {
    render((760, 520), |root| {
        let (x0, x1) = padded(points.iter().map(|p| p.0), 0.05);
        let (y0, y1) = padded(points.iter().map(|p| p.1), 0.05);
        let mut chart = ChartBuilder::on(root)
            .caption(caption, svg::text(18, INK))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .light_line_style(svg::GRID_LIGHT)
            .bold_line_style(svg::GRID)
            .label_style(svg::text(13, INK))
            .draw()?;
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, POINT.mix(0.6).filled())))?;
        Ok(())
    })
}

fn cell(e: &Estimate) -> String {
    format!("{:.3} [{:.2}, {:.2}]", e.value, e.low, e.high)
}

fn row(name: &str, r: &RankReport) -> Vec<String> {
    let estimates = [&r.kendall_tau, &r.spearman, &r.top10_recall, &r.within_quartile_tau];
    std::iter::once(name.to_string()).chain(estimates.into_iter().map(cell)).collect()
}

pub fn page(dir: &std::path::Path, r: &FidelityResults) -> Result<Report, String> {
    let c = &r.config;
    let title = format!("Fidelity report: {}", dir.display());
    let mut page = Page::new(&title, &format!("{} networks of {} scored by {}", r.rows.len(), c.truth, c.evaluator));
    page.stats(&[
        ("networks", r.rows.len().to_string()),
        ("Kendall tau", format!("{:.3}", r.evaluator.kendall_tau.value)),
        ("MACs' tau", r.baselines.get("macs").map_or("-".into(), |b| format!("{:.3}", b.kendall_tau.value))),
        ("CPU s per candidate", format!("{:.1}", r.per_candidate.cpu_seconds)),
    ]);
    let truth = format!("truth: {} (%)", c.field);
    let by_score: Vec<(f64, f64)> = r.rows.iter().map(|x| (x.score, x.truth)).collect();
    let by_macs: Vec<(f64, f64)> = r.rows.iter().map(|x| (x.macs as f64 / 1e6, x.truth)).collect();
    let plots = vec![
        ("score-truth.svg".to_string(), scatter(&by_score, "Score vs truth", "evaluator score", &truth)?),
        ("macs-truth.svg".to_string(), scatter(&by_macs, "MACs vs truth (the baseline)", "MMACs", &truth)?),
    ];
    for (id, (_, svg)) in ["score", "macs"].iter().zip(&plots) {
        page.section(id, if *id == "score" { "Score vs truth" } else { "MACs vs truth" }, "", &figure(svg));
    }
    let mut rows = vec![row(c.evaluator.name(), &r.evaluator)];
    rows.extend(r.losses.iter().map(|(name, l)| row(name, l)));
    rows.extend(r.baselines.iter().map(|(name, b)| row(name, b)));
    let headers = ["score", "Kendall tau", "Spearman", "top-10% recall", "tau within MACs quartiles"];
    page.section("stats", "Rank agreement (95% bootstrap intervals)", "", &table(&headers, &rows));
    Ok(Report { html: page.finish(&title), plots })
}
