//! What every figure shares: the bundled font, a colour per method and per function, and
//! writing a figure as SVG and PNG.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use mixed_act::Activation;
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
