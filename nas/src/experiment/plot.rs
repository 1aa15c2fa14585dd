//! One SVG figure per experiment in the style of the paper's Fig. 1/4/7: accuracy (mean with a
//! one-standard-deviation error bar over seeds) against kernel size, groups or layer, one line
//! per series, and each series' parameter count as a dashed line on the right axis.

use plotters::prelude::*;

use super::journal::{Results, VariantResult};
use crate::report::svg::{padded, palette, render, text, Area, INK, MUTED};

type DrawResult = crate::report::svg::DrawResult;

/// The figure for `results`; variants without a finished run are left out.
pub fn svg(results: &Results, x_label: &str) -> Result<String, String> {
    render((860, 540), |root| draw(root, results, x_label))
}

/// Series names in order of first appearance.
fn series_names(results: &Results) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for s in results.variants.iter().flat_map(|v| &v.series) {
        if !names.contains(s) {
            names.push(s.clone());
        }
    }
    names
}

fn points<'a>(results: &'a Results, series: &str) -> Vec<&'a VariantResult> {
    let mut pts: Vec<&VariantResult> =
        results.variants.iter().filter(|v| v.series.iter().any(|s| s == series)).collect();
    pts.sort_by_key(|v| v.x);
    pts
}

fn title(r: &Results) -> String {
    let seeds = r.variants.iter().map(|v| v.accuracies.len()).max().unwrap_or(0);
    let subset = r.subset.map_or(String::new(), |n| format!(", {n}/class"));
    let res = r.resolution.map_or(String::new(), |px| format!(", {px}px"));
    format!("{}: {} on {}{subset}{res}, {} epochs, {seeds} seeds", r.experiment.name(), r.base, r.data, r.epochs)
}

fn draw(root: &Area, r: &Results, x_label: &str) -> DrawResult {
    let trained: Vec<&VariantResult> = r.variants.iter().filter(|v| v.accuracy_mean.is_some()).collect();
    let band = |v: &VariantResult| {
        let (m, s) = (v.accuracy_mean.unwrap_or(0.0), v.accuracy_std.unwrap_or(0.0));
        (100.0 * (m - s), 100.0 * m, 100.0 * (m + s))
    };
    let (y0, y1) = padded(trained.iter().flat_map(|v| [band(v).0, band(v).2]), 0.1);
    let (p0, p1) = padded(r.variants.iter().map(|v| v.params as f64 / 1e6), 0.1);
    let (xmin, xmax) = r.variants.iter().fold((usize::MAX, 0), |(lo, hi), v| (lo.min(v.x), hi.max(v.x)));
    let (x0, x1) = (xmin as f64 - 0.5, xmax as f64 + 0.5);

    let mut chart = ChartBuilder::on(root)
        .caption(title(r), text(16, INK))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .right_y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)?
        .set_secondary_coord(x0..x1, p0..p1);
    chart
        .configure_mesh()
        .x_labels(xmax - xmin + 2)
        .x_label_formatter(&|x| if (x - x.round()).abs() < 1e-6 { format!("{x:.0}") } else { String::new() })
        .x_desc(x_label)
        .y_desc(format!("{} accuracy (%), mean ± std", r.accuracy_on))
        .label_style(text(12, INK))
        .axis_desc_style(text(13, INK))
        .light_line_style(WHITE)
        .draw()?;
    chart
        .configure_secondary_axes()
        .y_desc(format!("params (M) at {} classes, dashed", r.classes))
        .label_style(text(12, MUTED))
        .axis_desc_style(text(13, MUTED))
        .draw()?;

    for (i, name) in series_names(r).iter().enumerate() {
        let color = palette(i);
        let pts = points(r, name);
        let acc: Vec<(f64, f64, f64, f64)> = pts
            .iter()
            .filter(|v| v.accuracy_mean.is_some())
            .map(|v| {
                let (lo, m, hi) = band(v);
                (v.x as f64, lo, m, hi)
            })
            .collect();
        chart
            .draw_series(LineSeries::new(acc.iter().map(|p| (p.0, p.2)), color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        chart.draw_series(acc.iter().map(|&(x, lo, m, hi)| ErrorBar::new_vertical(x, lo, m, hi, color.filled(), 8)))?;
        chart.draw_series(acc.iter().map(|&(x, _, m, _)| Circle::new((x, m), 3, color.filled())))?;
        let params = pts.iter().map(|v| (v.x as f64, v.params as f64 / 1e6));
        chart.draw_secondary_series(DashedLineSeries::new(params, 6, 4, color.mix(0.6).stroke_width(1)))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(MUTED)
        .label_font(text(12, INK))
        .draw()?;
    Ok(())
}
