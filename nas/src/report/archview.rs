//! An architecture drawn block by block, left to right: a bar per layer whose height grows
//! with its output width and whose colour is its expansion ratio; under it one square per
//! MixConv kernel group (side grows with the kernel), then stride, SE, groups and activation.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use space::{Activation, Arch};

use super::svg::{self, palette, render, Area, DrawResult, INK, MUTED};

const TOP: i32 = 64;
const BAR_MAX: i32 = 150;
const LINE: i32 = 15;

struct Column {
    label: String,
    out: usize,
    expand: Option<usize>,
    kernels: Vec<usize>,
    lines: Vec<String>,
}

fn columns(arch: &Arch) -> Vec<Column> {
    let stem = Column {
        label: "stem".into(),
        out: arch.stem.out,
        expand: None,
        kernels: vec![arch.stem.kernel],
        lines: vec![format!("s{}", arch.stem.stride), "conv".into()],
    };
    let blocks = arch.blocks.iter().enumerate().map(|(i, b)| Column {
        label: i.to_string(),
        out: b.out,
        expand: Some(b.expand),
        kernels: b.kernels.clone(),
        lines: vec![
            format!("s{}", b.stride),
            format!("e{}", b.expand),
            b.se.map_or("no se".into(), |r| format!("se {r}")),
            format!("g{}/{}", b.expand_groups, b.project_groups),
            if b.act == Activation::Swish { "swish" } else { "relu" }.into(),
            if b.has_residual() { "skip" } else { "" }.into(),
        ],
    });
    let head = Column {
        label: "head".into(),
        out: arch.head.width,
        expand: None,
        kernels: vec![1],
        lines: vec![format!("fc {}", arch.classes)],
    };
    std::iter::once(stem).chain(blocks).chain(std::iter::once(head)).collect()
}

/// Colour of an expansion ratio: grey for the stem and head, then by ratio.
fn expand_colour(e: Option<usize>) -> RGBColor {
    match e {
        None => palette(9),
        Some(1) => palette(5),
        Some(2 | 3) => palette(3),
        Some(4) => palette(1),
        Some(_) => palette(0),
    }
}

/// Kernels in a grey ramp, darker as they grow, so they never read as an expansion colour.
fn kernel_colour(k: usize) -> RGBColor {
    let shade = 0xc8u8.saturating_sub((k as u8).saturating_sub(1) * 0x12);
    RGBColor(shade, shade, shade)
}

fn kernel_side(k: usize) -> i32 {
    6 + 2 * k as i32
}

pub fn arch_svg(arch: &Arch, title: &str) -> Result<String, String> {
    let cols = columns(arch);
    let col_w = (1180 / cols.len() as i32).clamp(46, 72);
    let width = (32 + col_w * cols.len() as i32).max(760);
    let kernel_h = cols.iter().map(|c| c.kernels.iter().map(|&k| kernel_side(k) + 3).sum::<i32>()).max().unwrap_or(0);
    let lines = cols.iter().map(|c| c.lines.len()).max().unwrap_or(0) as i32;
    let height = TOP + BAR_MAX + 30 + kernel_h + LINE * lines + 50;
    // Scaled to the widest block, so a wide head does not flatten the rest (its bar is capped).
    let max_out = cols.iter().filter(|c| c.expand.is_some()).map(|c| c.out).max().unwrap_or(1).max(1) as f64;
    render((width as u32, height as u32), |root| {
        root.draw_text(title, &svg::text(20, INK), (16, 8))?;
        let note = "bar height: output channels; bar colour: expansion; squares: MixConv kernel groups";
        root.draw_text(note, &svg::text(12, MUTED), (16, 34))?;
        for (i, c) in cols.iter().enumerate() {
            let x = 16 + col_w * i as i32;
            column(root, c, x, col_w, max_out, kernel_h)?;
        }
        legend(root, (16, height - 28))
    })
}

fn column(root: &Area, c: &Column, x: i32, w: i32, max_out: f64, kernel_h: i32) -> DrawResult {
    let centre = Pos::new(HPos::Center, VPos::Top);
    let mid = x + w / 2;
    let base = TOP + BAR_MAX;
    let h = 10 + ((BAR_MAX - 10) as f64 * (c.out as f64 / max_out).sqrt().min(1.0)) as i32;
    root.draw(&Rectangle::new([(x + 4, base - h), (x + w - 4, base)], expand_colour(c.expand).filled()))?;
    root.draw_text(
        &c.out.to_string(),
        &svg::text(11, INK).pos(Pos::new(HPos::Center, VPos::Bottom)),
        (mid, base - h - 2),
    )?;
    root.draw_text(&c.label, &svg::text(13, INK).pos(centre), (mid, base + 6))?;
    let mut y = base + 26;
    for &k in &c.kernels {
        let s = kernel_side(k);
        root.draw(&Rectangle::new([(mid - s / 2, y), (mid + s / 2, y + s)], kernel_colour(k).filled()))?;
        let label = svg::text(10, WHITE).pos(Pos::new(HPos::Center, VPos::Center));
        root.draw_text(&k.to_string(), &label, (mid, y + s / 2))?;
        y += s + 3;
    }
    let mut y = base + 26 + kernel_h + 4;
    for line in &c.lines {
        root.draw_text(line, &svg::text(11, INK).pos(centre), (mid, y))?;
        y += LINE;
    }
    Ok(())
}

fn legend(root: &Area, (x, y): (i32, i32)) -> DrawResult {
    let items = [
        ("e1", expand_colour(Some(1))),
        ("e2-3", expand_colour(Some(3))),
        ("e4", expand_colour(Some(4))),
        ("e6+", expand_colour(Some(6))),
        ("k3", kernel_colour(3)),
        ("k5", kernel_colour(5)),
        ("k7", kernel_colour(7)),
        ("k9", kernel_colour(9)),
        ("k11+", kernel_colour(11)),
    ];
    for (i, (name, colour)) in items.iter().enumerate() {
        let sx = x + 70 * i as i32;
        root.draw(&Rectangle::new([(sx, y), (sx + 14, y + 14)], colour.filled()))?;
        root.draw_text(name, &svg::text(12, INK), (sx + 18, y + 1))?;
    }
    Ok(())
}
