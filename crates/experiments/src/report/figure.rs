//! What every figure shares: the bundled font, a colour per method and per function, and
//! writing a figure as SVG and PNG.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use mixed_act::Activation;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::run::method::Method;

pub const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

pub fn register_font() -> Result<()> {
    plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES)
        .map_err(|_| anyhow!("the bundled font is invalid"))
}

/// A colour per method, the baselines in pool order and SmartMixed last.
pub fn method_color(method: &str) -> RGBColor {
    /// By activation id (the paper's six first, as before the later candidates existed).
    const COLORS: [RGBColor; Activation::COUNT] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
        RGBColor(127, 127, 127),
        RGBColor(255, 187, 120),
        RGBColor(0, 0, 0),
    ];
    /// By position in `Method::ADAPTIVE`: SmartMixed red, the others dark or saturated tones
    /// apart from the fixed functions'.
    const ADAPTIVE: [RGBColor; Method::ADAPTIVE.len()] = [
        RGBColor(214, 39, 40),
        RGBColor(0, 90, 50),
        RGBColor(120, 0, 160),
        RGBColor(0, 60, 140),
        RGBColor(200, 120, 0),
        RGBColor(100, 50, 0),
        RGBColor(230, 0, 120),
    ];
    match Method::from_name(method) {
        Some(Method::Baseline(a)) => COLORS[a.id()],
        Some(m) => ADAPTIVE[Method::ADAPTIVE.iter().position(|a| *a == m).unwrap_or(0)],
        None => ADAPTIVE[0],
    }
}

pub fn activation_color(a: Activation) -> RGBColor {
    method_color(a.name())
}

pub type Draw<'a> = dyn Fn(&DrawingArea<SVGBackend, Shift>) -> Result<()> + 'a;
pub type DrawPng<'a> = dyn Fn(&DrawingArea<BitMapBackend, Shift>) -> Result<()> + 'a;
/// One panel `P` of a grid, drawn into its area (for either backend, and each of them).
pub type DrawPanel<'a, DB, P> = dyn Fn(&DrawingArea<DB, Shift>, &P) -> Result<()> + 'a;
pub type DrawSvgPanel<'a, P> = dyn Fn(&DrawingArea<SVGBackend, Shift>, &P) -> Result<()> + 'a;
pub type DrawPngPanel<'a, P> = dyn Fn(&DrawingArea<BitMapBackend, Shift>, &P) -> Result<()> + 'a;

/// Writes one figure as `name.svg` and `name.png`.
pub fn save(
    dir: &Path,
    name: &str,
    size: (u32, u32),
    svg: &Draw,
    png: &DrawPng,
) -> Result<Vec<PathBuf>> {
    let svg_path = dir.join(format!("{name}.svg"));
    let png_path = dir.join(format!("{name}.png"));
    {
        let root = SVGBackend::new(&svg_path, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
        svg(&root)?;
        root.present()
            .map_err(|e| anyhow!("writing {}: {e:?}", svg_path.display()))?;
    }
    {
        let root = BitMapBackend::new(&png_path, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
        png(&root)?;
        root.present()
            .map_err(|e| anyhow!("writing {}: {e:?}", png_path.display()))?;
    }
    Ok(vec![svg_path, png_path])
}

/// Panels per row in the figures of one panel per architecture.
pub const PANELS_PER_ROW: usize = 2;

/// The size of a figure of `n` panels (at least one) in rows of [`PANELS_PER_ROW`], each
/// `panel_width` pixels wide and holding at most `most_rows` rows of `row_height`; at least
/// `min_width` wide.
pub fn panel_grid_size(
    n: usize,
    panel_width: u32,
    most_rows: usize,
    row_height: u32,
    min_width: u32,
) -> (u32, u32) {
    let cols = n.min(PANELS_PER_ROW) as u32;
    let rows = n.div_ceil(PANELS_PER_ROW) as u32;
    (
        (60 + panel_width * cols).max(min_width),
        60 + rows * (110 + row_height * most_rows as u32),
    )
}

/// Draws `panels` (at least one) in rows of [`PANELS_PER_ROW`] under `title`.
fn draw_panel_grid<DB: DrawingBackend, P>(
    area: &DrawingArea<DB, Shift>,
    (title, title_size): (&str, u32),
    panels: &[P],
    draw_panel: &DrawPanel<DB, P>,
) -> Result<()> {
    let titled = area
        .titled(title, (FONT, title_size))
        .map_err(|e| anyhow!("{e:?}"))?;
    let cols = panels.len().min(PANELS_PER_ROW);
    let rows = panels.len().div_ceil(cols);
    for (cell, panel) in titled.split_evenly((rows, cols)).iter().zip(panels) {
        draw_panel(cell, panel)?;
    }
    Ok(())
}

/// Writes `name.svg` and `name.png`: `panels` (at least one) in rows of [`PANELS_PER_ROW`]
/// under `title` (text and font size), each drawn by `svg_panel` and `png_panel` (the same
/// drawing, once per backend).
#[allow(clippy::too_many_arguments)]
pub fn save_panel_grid<P>(
    dir: &Path,
    name: &str,
    size: (u32, u32),
    title: (&str, u32),
    panels: &[P],
    svg_panel: &DrawSvgPanel<P>,
    png_panel: &DrawPngPanel<P>,
) -> Result<Vec<PathBuf>> {
    save(
        dir,
        name,
        size,
        &|a| draw_panel_grid(a, title, panels, svg_panel),
        &|a| draw_panel_grid(a, title, panels, png_panel),
    )
}

/// Pixels for a panel's row labels: about 7 per character of the longest, at least `min`.
pub fn label_width(labels: impl IntoIterator<Item = String>, min: u32) -> u32 {
    let longest = labels
        .into_iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0);
    (24 + 7 * longest as u32).max(min)
}

/// A panel of one row per label (top first) over `x`, under `caption` (text and font size),
/// its axes and mesh drawn: the chart of the figures with a row per method.
pub fn rows_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    caption: (&str, u32),
    x: std::ops::Range<f64>,
    labels: &[String],
    label_px: u32,
    x_desc: &str,
) -> Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>> {
    let n = labels.len();
    let mut chart = ChartBuilder::on(area)
        .caption(caption.0, (FONT, caption.1))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(label_px)
        .build_cartesian_2d(x, -0.5..(n as f64 - 0.5))
        .map_err(|e| anyhow!("{e:?}"))?;
    chart
        .configure_mesh()
        .y_labels(n)
        .y_label_formatter(&|y| row_label(labels, *y))
        .disable_y_mesh()
        .x_desc(x_desc)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(|e| anyhow!("{e:?}"))?;
    Ok(chart)
}

/// The y-axis label at `y` of a panel whose rows are `labels`, drawn top first (row i from the
/// top sits at y = n - 1 - i); nothing between rows.
fn row_label(labels: &[String], y: f64) -> String {
    let n = labels.len();
    let i = (n as f64 - 1.0 - y).round();
    match (i >= 0.0 && (y - y.round()).abs() < 1e-6).then_some(i as usize) {
        Some(i) if i < n => labels[i].clone(),
        _ => String::new(),
    }
}
