//! The drawing surface every report plot shares: a plotters SVG canvas rendered into a string,
//! one palette, and small helpers for axis ranges and text.

use plotters::coord::Shift;
use plotters::prelude::*;

pub type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
pub type DrawResult = Result<(), Box<dyn std::error::Error>>;

pub const FONT: &str = "sans-serif";
pub const INK: RGBColor = RGBColor(0x33, 0x33, 0x33);
pub const MUTED: RGBColor = RGBColor(0x88, 0x88, 0x88);
pub const POINT: RGBColor = RGBColor(0x4c, 0x78, 0xa8);
pub const FRONT: RGBColor = RGBColor(0xf5, 0x85, 0x18);
pub const BEST: RGBColor = RGBColor(0xe4, 0x57, 0x56);
pub const FAIL: RGBColor = RGBColor(0xb0, 0x3a, 0x2e);
pub const GRID: RGBColor = RGBColor(0xe2, 0xe2, 0xe2);
/// Minor grid lines: white, so only the labelled lines show.
pub const GRID_LIGHT: RGBColor = RGBColor(0xff, 0xff, 0xff);
pub const TARGET: RGBColor = RGBColor(0x54, 0xa2, 0x4b);

/// Categorical colours (Tableau 10) for options, kernels and series.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0xba, 0xb0, 0xac),
];

pub fn palette(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Renders one SVG document of `size` pixels with `draw`; plotting errors become one line.
pub fn render(size: (u32, u32), draw: impl FnOnce(&Area) -> DrawResult) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| format!("plot: {e}"))?;
        draw(&root).map_err(|e| format!("plot: {e}"))?;
        root.present().map_err(|e| format!("plot: {e}"))?;
    }
    Ok(out)
}

/// A text style of `size` px in `color`.
pub fn text(size: u32, color: RGBColor) -> TextStyle<'static> {
    (FONT, size).into_font().color(&color)
}

/// `[min, max]` of `values` widened by `pad` of the span (or of the value when all are equal).
pub fn padded(values: impl IntoIterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) = values.into_iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let span = if hi > lo { hi - lo } else { lo.abs().max(1e-3) };
    (lo - pad * span, hi + pad * span)
}

/// Draws `title` across the top of `area` and returns the area below it.
pub fn titled<'a>(area: &Area<'a>, title: &str) -> Result<Area<'a>, Box<dyn std::error::Error>> {
    let (top, body) = area.split_vertically(34);
    top.draw_text(title, &text(20, INK), (16, 8))?;
    Ok(body)
}

/// Writes `message` in the middle of an area that has nothing to plot.
pub fn empty(area: &Area, message: &str) -> DrawResult {
    let (w, h) = area.dim_in_pixel();
    let style = text(16, MUTED).pos(plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Center,
        plotters::style::text_anchor::VPos::Center,
    ));
    area.draw_text(message, &style, (w as i32 / 2, h as i32 / 2))?;
    Ok(())
}
