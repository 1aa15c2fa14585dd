//! What the trials scored: score (an accuracy where the run's metric says so) against latency
//! with the Pareto front and the target, and reward, score and latency in trial order with the
//! running best.

use plotters::prelude::*;

use super::run::RunFolder;
use super::svg::{self, padded, render, Area, DrawResult, BEST, FAIL, FRONT, INK, MUTED, POINT, TARGET};
use search::results::TrialRecord;
use search::setup::ValueKind;

/// The metric's name for a heading: `Accuracy`, `Score`, `Surrogate`.
pub fn title(metric: ValueKind) -> String {
    let name = metric.name();
    name[..1].to_uppercase() + &name[1..]
}

/// Score vs latency of every evaluated trial, the Pareto front as a step line, the best
/// trial and the latency target.
pub fn pareto_svg(run: &RunFolder) -> Result<String, String> {
    render((1240, 560), |root| {
        let points: Vec<(f64, f64)> = run.evaluated().iter().map(|r| (lat(r), score(r))).collect();
        if points.is_empty() {
            return svg::empty(root, "no evaluated trials yet");
        }
        let target = run.target_ms();
        let (x0, x1) = padded(points.iter().map(|p| p.0).chain(target), 0.05);
        let (y0, y1) = padded(points.iter().map(|p| p.1), 0.08);
        let mut chart = ChartBuilder::on(root)
            .caption(format!("{} vs latency of every trial", title(run.metric())), svg::text(20, INK))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y0.max(0.0)..y1.min(1.0))?;
        chart
            .configure_mesh()
            .x_desc("latency (ms)")
            .y_desc(run.metric().name())
            .light_line_style(svg::GRID_LIGHT)
            .bold_line_style(svg::GRID)
            .label_style(svg::text(13, INK))
            .draw()?;
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, POINT.mix(0.55).filled())))?
            .label(format!("trials ({})", points.len()))
            .legend(|(x, y)| Circle::new((x + 8, y), 4, POINT.filled()));
        let front: Vec<(f64, f64)> = run.pareto().iter().map(|r| (lat(r), score(r))).collect();
        chart
            .draw_series(LineSeries::new(staircase(&front), FRONT.stroke_width(2)))?
            .label(format!("Pareto front ({})", front.len()))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], FRONT.stroke_width(2)));
        chart.draw_series(front.iter().map(|&p| Circle::new(p, 5, FRONT.stroke_width(2))))?;
        if let Some(t) = target {
            let line = vec![(t, y0.max(0.0)), (t, y1.min(1.0))];
            chart
                .draw_series(DashedLineSeries::new(line, 6, 4, TARGET.stroke_width(2)))?
                .label(format!("target {t} ms"))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], TARGET.stroke_width(2)));
        }
        if let Some(b) = run.best() {
            chart
                .draw_series(std::iter::once(Cross::new((lat(b), score(b)), 7, BEST.stroke_width(3))))?
                .label(format!("best reward (trial {})", b.id))
                .legend(|(x, y)| Cross::new((x + 8, y), 5, BEST.stroke_width(3)));
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    })
}

/// Reward, score and latency per trial in id order, each with the incumbent (the
/// highest-reward trial so far) as a step line.
pub fn history_svg(run: &RunFolder) -> Result<String, String> {
    render((1240, 780), |root| {
        if run.records.is_empty() {
            return svg::empty(root, "no trials yet");
        }
        let body = svg::titled(root, &format!("Reward, {} and latency over trials", run.metric()))?;
        let panels = body.split_evenly((3, 1));
        let n = run.records.last().map_or(1, |r| r.id + 1) as f64;
        let incumbent = incumbents(&run.records);
        let reward = |r: &TrialRecord| Some(r.reward);
        let failed: Vec<(f64, f64)> =
            run.records.iter().filter(|r| r.evaluation.is_none()).map(|r| (r.id as f64, r.reward)).collect();
        panel(&panels[0], n, "reward", run, &incumbent, reward, &failed, None)?;
        panel(&panels[1], n, run.metric().name(), run, &incumbent, |r| r.score(), &[], None)?;
        panel(&panels[2], n, "latency (ms)", run, &incumbent, |r| r.latency_ms(), &[], run.target_ms())?;
        Ok(())
    })
}

#[allow(clippy::too_many_arguments)]
fn panel(
    area: &Area,
    n: f64,
    name: &str,
    run: &RunFolder,
    incumbent: &[Option<&TrialRecord>],
    value: impl Fn(&TrialRecord) -> Option<f64>,
    failed: &[(f64, f64)],
    target: Option<f64>,
) -> DrawResult {
    let points: Vec<(f64, f64)> =
        run.records.iter().filter(|r| r.evaluation.is_some()).filter_map(|r| Some((r.id as f64, value(r)?))).collect();
    let best: Vec<(f64, f64)> =
        run.records.iter().zip(incumbent).filter_map(|(r, b)| Some((r.id as f64, value(b.as_ref()?)?))).collect();
    let (y0, y1) = padded(points.iter().chain(failed).map(|p| p.1).chain(target), 0.08);
    let mut chart = ChartBuilder::on(area)
        .margin_left(16)
        .margin_right(16)
        .margin_top(6)
        .x_label_area_size(30)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5..n - 0.5, y0..y1)?;
    chart
        .configure_mesh()
        .y_desc(name)
        .x_desc("trial")
        .light_line_style(svg::GRID_LIGHT)
        .bold_line_style(svg::GRID)
        .x_labels((n as usize).clamp(2, 12))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style(svg::text(12, INK))
        .draw()?;
    chart
        .draw_series(points.iter().map(|&p| Circle::new(p, 3, POINT.mix(0.5).filled())))?
        .label("trial")
        .legend(|(x, y)| Circle::new((x + 8, y), 3, POINT.filled()));
    if !failed.is_empty() {
        chart
            .draw_series(failed.iter().map(|&p| Cross::new(p, 4, FAIL.stroke_width(2))))?
            .label("failed / invalid")
            .legend(|(x, y)| Cross::new((x + 8, y), 4, FAIL.stroke_width(2)));
    }
    chart
        .draw_series(LineSeries::new(staircase(&best), BEST.stroke_width(2)))?
        .label("best so far (by reward)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BEST.stroke_width(2)));
    if let Some(t) = target {
        chart
            .draw_series(DashedLineSeries::new(vec![(-0.5, t), (n - 0.5, t)], 6, 4, TARGET.stroke_width(2)))?
            .label("target")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], TARGET.stroke_width(2)));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<
        'a,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    position: SeriesLabelPosition,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(MUTED)
        .label_font(svg::text(13, INK))
        .draw()
        .map_err(|e| e.to_string().into())
}

/// For each record (by id), the highest-reward evaluated record up to and including it.
fn incumbents(records: &[TrialRecord]) -> Vec<Option<&TrialRecord>> {
    let mut best: Option<&TrialRecord> = None;
    records
        .iter()
        .map(|r| {
            let better = match best {
                Some(b) => r.reward > b.reward,
                None => true,
            };
            if r.evaluation.is_some() && better {
                best = Some(r);
            }
            best
        })
        .collect()
}

/// A staircase through points sorted by x: each y holds until the next point (a Pareto front
/// by latency, a running best by trial).
fn staircase(front: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(front.len() * 2);
    for (i, &p) in front.iter().enumerate() {
        if i > 0 {
            out.push((p.0, front[i - 1].1));
        }
        out.push(p);
    }
    out
}

fn lat(r: &TrialRecord) -> f64 {
    r.latency_ms().unwrap_or(f64::NAN)
}

fn score(r: &TrialRecord) -> f64 {
    r.score().unwrap_or(f64::NAN)
}
