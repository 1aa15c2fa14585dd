//! A `nas train` folder read back for reporting, and its curves: loss and accuracy per epoch,
//! and the learning rate.

use std::path::{Path, PathBuf};

use evaluator::train::run_dir::{CheckpointRecord, Metrics};
use evaluator::train::trainer::{EpochMetrics, TrainConfig};
use plotters::prelude::*;
use search::results::read_json;

use super::svg::{self, padded, render, Area, DrawResult, INK, MUTED};

pub struct TrainFolder {
    pub dir: PathBuf,
    pub record: CheckpointRecord,
    pub metrics: Metrics,
}

impl TrainFolder {
    pub fn load(dir: &Path) -> Result<Self, String> {
        let record: CheckpointRecord = read_json(&dir.join("checkpoint.json"))?;
        let metrics: Metrics = read_json(&dir.join("metrics.json"))?;
        Ok(TrainFolder { dir: dir.to_path_buf(), record, metrics })
    }
}

type Series = (&'static str, RGBColor, fn(&EpochMetrics) -> Option<f64>);

/// Training loss, and training and validation accuracy, per epoch (two panels).
pub fn curves_svg(m: &Metrics) -> Result<String, String> {
    render((1240, 620), |root| {
        if m.epochs.is_empty() {
            return svg::empty(root, "no finished epoch yet");
        }
        let body = svg::titled(root, "Loss and accuracy per epoch")?;
        let panels = body.split_evenly((2, 1));
        let loss: [Series; 1] = [("training loss", svg::palette(2), |e| Some(e.train_loss))];
        panel(&panels[0], m, "loss", &loss)?;
        let acc: [Series; 2] = [
            ("training accuracy", svg::palette(0), |e| Some(e.train_accuracy)),
            ("validation accuracy", svg::palette(1), |e| e.val_accuracy),
        ];
        panel(&panels[1], m, "accuracy", &acc)
    })
}

/// The learning rate: the schedule as configured (a fine curve) and the rate each epoch ended at.
pub fn lr_svg(m: &Metrics, config: Option<&TrainConfig>) -> Result<String, String> {
    render((1240, 320), |root| {
        if m.epochs.is_empty() {
            return svg::empty(root, "no finished epoch yet");
        }
        let body = svg::titled(root, "Learning rate")?;
        let lr: [Series; 1] = [("at the end of each epoch", svg::palette(4), |e| Some(e.lr))];
        let curve = config.map(schedule_curve).unwrap_or_default();
        panel_with(&body, m, "learning rate", &lr, &curve)
    })
}

/// The configured schedule sampled 50 times per epoch, x in epochs elapsed.
fn schedule_curve(c: &TrainConfig) -> Vec<(f64, f64)> {
    const STEPS: u64 = 50;
    (0..=c.epochs as u64 * STEPS).map(|s| (s as f64 / STEPS as f64, c.schedule.lr_at(s, STEPS))).collect()
}

fn panel(area: &Area, m: &Metrics, name: &str, series: &[Series]) -> DrawResult {
    panel_with(area, m, name, series, &[])
}

fn panel_with(area: &Area, m: &Metrics, name: &str, series: &[Series], curve: &[(f64, f64)]) -> DrawResult {
    let values = |f: fn(&EpochMetrics) -> Option<f64>| -> Vec<(f64, f64)> {
        m.epochs.iter().filter_map(|e| Some((e.epoch as f64, f(e)?))).collect()
    };
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| values(s.2)).chain(curve.iter().copied()).collect();
    let (x0, x1) = padded(all.iter().map(|p| p.0), 0.04);
    let (y0, y1) = padded(all.iter().map(|p| p.1), 0.1);
    let mut chart = ChartBuilder::on(area)
        .margin_left(16)
        .margin_right(24)
        .margin_top(6)
        .x_label_area_size(34)
        .y_label_area_size(72)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(name)
        .light_line_style(svg::GRID_LIGHT)
        .bold_line_style(svg::GRID)
        .label_style(svg::text(12, INK))
        .draw()?;
    if !curve.is_empty() {
        chart
            .draw_series(LineSeries::new(curve.to_vec(), MUTED.stroke_width(2)))?
            .label("schedule")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], MUTED.stroke_width(2)));
    }
    for &(label, colour, f) in series {
        let points = values(f);
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, colour.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(MUTED)
        .label_font(svg::text(13, INK))
        .draw()?;
    Ok(())
}
