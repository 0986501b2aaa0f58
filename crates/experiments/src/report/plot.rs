//! `smartmixed plot`: SVG and PNG figures of a comparison, drawn with plotters and the DejaVu
//! Sans font shipped in `assets/` (no system font libraries needed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use mixed_act::Activation;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::input_error;
use crate::grid::store::ResultsStore;
use crate::report::compare::{
    compare_dirs, is_adaptive, report_dir, settings_label, ArchKey, Cell, Comparison, SettingValue,
    Shares, ANY,
};
use crate::report::figure::{activation_color, method_color, register_font, save, FONT};
use crate::run::net::NetName;

/// Methods whose mean is within `points` percentage points of the best method at every depth
/// (the zoomed figure leaves out collapsed baselines so that the close ones can be told apart).
fn close_to_best(cells: &[&Cell], points: f64) -> Vec<String> {
    let mut best: BTreeMap<(usize, String), f64> = BTreeMap::new();
    for cell in cells {
        let b = best.entry((cell.depth, cell.label())).or_insert(0.0);
        *b = b.max(cell.mean_test_acc);
    }
    let mut methods: Vec<String> = cells.iter().map(|x| x.method.clone()).collect();
    methods.sort();
    methods.dedup();
    methods.retain(|m| {
        cells
            .iter()
            .filter(|x| &x.method == m)
            .all(|x| 100.0 * (best[&(x.depth, x.label())] - x.mean_test_acc) <= points)
    });
    methods
}

/// Test accuracy against depth, one line per method, with the 95 % interval as a band;
/// `only` restricts the methods drawn.
fn accuracy_vs_depth<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    cells: &[&Cell],
    only: Option<&[String]>,
) -> Result<()> {
    let cells: Vec<&Cell> = cells
        .iter()
        .copied()
        .filter(|x| only.is_none_or(|o| o.contains(&x.method)))
        .collect();
    let caption = match only {
        None => "Test accuracy by depth (mean over seeds, 95 % bootstrap band)",
        Some(_) => "Test accuracy by depth: methods within 2 points of the best",
    };
    let panels = depth_panels(&cells);
    if panels.len() <= 1 {
        return depth_panel(area, &cells, caption, 22);
    }
    let titled = area
        .titled(caption, (FONT, 22))
        .map_err(|e| anyhow!("{e:?}"))?;
    for (panel, key) in titled.split_evenly((1, panels.len())).iter().zip(&panels) {
        let cells: Vec<&Cell> = cells
            .iter()
            .copied()
            .filter(|x| panel_settings(x) == *key)
            .collect();
        let caption = key
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join(" ");
        depth_panel(panel, &cells, &caption, 17)?;
    }
    Ok(())
}

/// The values of [`PANEL_SETTINGS`] in the cells, in their order: one depth panel each.
fn depth_panels(cells: &[&Cell]) -> Vec<Vec<(String, String)>> {
    first_appearances(cells.iter().map(|x| panel_settings(x)))
}

/// The distinct items, in the order they first appear (panels follow the cells' order).
fn first_appearances<T: PartialEq>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut distinct = Vec::new();
    for item in items {
        if !distinct.contains(&item) {
            distinct.push(item);
        }
    }
    distinct
}

fn panel_settings(cell: &Cell) -> Vec<(String, String)> {
    cell.settings
        .iter()
        .filter(|(name, _)| PANEL_SETTINGS.contains(&name.as_str()))
        .cloned()
        .collect()
}

/// The lines of a depth panel, (depth, mean, low, high) points by label: one line per method and
/// combination of the other varying settings, and per ladder where MLPs of several widths share
/// the panel (widths 25-25 beside a ladder of width 100).
fn depth_series(cells: &[&Cell]) -> BTreeMap<String, Vec<(f64, f64, f64, f64)>> {
    // Ladders only where two architectures share a depth: a single ladder (the reference
    // architectures 1, 3, 12, or widths 16 and 16-8) stays one line per method.
    let architectures = first_appearances(cells.iter().map(|x| (x.depth, &x.widths)));
    let depths = first_appearances(architectures.iter().map(|(depth, _)| *depth));
    let split = architectures.len() > depths.len();
    let mut by_method: BTreeMap<String, Vec<(f64, f64, f64, f64)>> = BTreeMap::new();
    let mut drawn: BTreeMap<String, Vec<(usize, &str)>> = BTreeMap::new();
    for cell in cells {
        let mut label = settings_label(&cell.method, &line_settings(cell, None));
        if split {
            label = format!("{label} ({})", depth_ladder(cell));
        }
        // A baseline that serves several cells of one architecture is one point.
        let seen = drawn.entry(label.clone()).or_default();
        if seen.contains(&(cell.depth, cell.widths.as_str())) {
            continue;
        }
        seen.push((cell.depth, cell.widths.as_str()));
        by_method.entry(label).or_default().push((
            cell.depth as f64,
            100.0 * cell.mean_test_acc,
            100.0 * cell.ci_low,
            100.0 * cell.ci_high,
        ));
    }
    by_method
}

/// One panel of accuracy against depth: a line per method and combination of its other varying
/// settings.
fn depth_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    cells: &[&Cell],
    caption: &str,
    caption_size: u32,
) -> Result<()> {
    let by_method = depth_series(cells);
    let depths: Vec<f64> = cells.iter().map(|c| c.depth as f64).collect();
    let (x0, x1) = (
        depths.iter().cloned().fold(f64::MAX, f64::min),
        depths.iter().cloned().fold(f64::MIN, f64::max),
    );
    let lows = cells.iter().map(|c| 100.0 * c.ci_low);
    let highs = cells.iter().map(|c| 100.0 * c.ci_high);
    let (y0, y1) = (
        lows.fold(f64::MAX, f64::min),
        highs.fold(f64::MIN, f64::max),
    );
    let pad = ((y1 - y0) * 0.08).max(0.05);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, caption_size))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((x0 - 0.5)..(x1 + 0.5), (y0 - pad)..(y1 + pad))
        .map_err(|e| anyhow!("{e:?}"))?;
    chart
        .configure_mesh()
        .x_label_formatter(&|v| {
            if v.fract() == 0.0 {
                format!("{v:.0}")
            } else {
                String::new()
            }
        })
        .x_desc("hidden layers")
        .y_desc("test accuracy (%)")
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .draw()
        .map_err(|e| anyhow!("{e:?}"))?;
    for (series, mut points) in by_method {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let method = series.split(' ').next().unwrap_or_default();
        let color = method_color(method);
        let width = if is_adaptive(method) { 3 } else { 2 };
        band_line(&mut chart, &points, color, width, series.clone(), false)?;
    }
    legend(&mut chart, SeriesLabelPosition::LowerLeft, 15)
}

/// The cell's varying settings that its method reads (all but `skip`, by index): what tells
/// its line apart from the method's other lines.
fn read_settings(cell: &Cell, skip: Option<usize>) -> Vec<(String, String)> {
    cell.settings
        .iter()
        .enumerate()
        .filter(|(i, (name, value))| {
            Some(*i) != skip
                && value != ANY
                && !cell.not_applicable.split_whitespace().any(|n| n == name)
        })
        .map(|(_, s)| s.clone())
        .collect()
}

/// What names a line in a panel: the cell's read settings but those that make panels.
fn line_settings(cell: &Cell, skip: Option<usize>) -> Vec<(String, String)> {
    let mut settings = read_settings(cell, skip);
    settings.retain(|(name, _)| !PANEL_SETTINGS.contains(&name.as_str()));
    settings
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// One line with its 95 % band, from (x, mean, low, high) points: solid with a marker per point,
/// or dashed without markers (a value that holds across the axis).
fn band_line<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    points: &[(f64, f64, f64, f64)],
    color: RGBColor,
    width: u32,
    label: String,
    dashed: bool,
) -> Result<()> {
    let mut band: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.3)).collect();
    band.extend(points.iter().rev().map(|p| (p.0, p.2)));
    chart
        .draw_series(std::iter::once(Polygon::new(band, color.mix(0.12))))
        .map_err(|e| anyhow!("{e:?}"))?;
    let line = points.iter().map(|p| (p.0, p.1));
    let style = color.stroke_width(width);
    let drawn = if dashed {
        chart.draw_series(DashedLineSeries::new(line, 8, 5, style))
    } else {
        chart.draw_series(LineSeries::new(line, style))
    };
    drawn
        .map_err(|e| anyhow!("{e:?}"))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
    if !dashed {
        chart
            .draw_series(
                points
                    .iter()
                    .map(|p| Circle::new((p.0, p.1), 4, color.filled())),
            )
            .map_err(|e| anyhow!("{e:?}"))?;
    }
    Ok(())
}

fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    position: SeriesLabelPosition,
    font_size: u32,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, font_size))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("{e:?}"))?;
    Ok(())
}

/// A point of `accuracy_vs_<setting>`: x position (None for a run that serves every value),
/// mean, interval low and high, in %.
type SettingPoint = (Option<f64>, f64, f64, f64);

/// The k-th line of one method: its colour, then alternately darker and lighter shades of it
/// (k = 1 darker, 2 lighter, 3 darker still, ...), so that neighbours stay apart.
fn shade(RGBColor(r, g, b): RGBColor, k: usize) -> RGBColor {
    let step = k.div_ceil(2) as i32;
    let f = |c: u8| -> u8 {
        let c = c as f64;
        let v = if k % 2 == 1 {
            c * 0.65f64.powi(step)
        } else {
            c + (255.0 - c) * (1.0 - 0.6f64.powi(step))
        };
        v.round().clamp(0.0, 255.0) as u8
    };
    RGBColor(f(r), f(g), f(b))
}

/// Panels of `accuracy_vs_<setting>` per row (more architectures wrap to further rows).
const PANELS_PER_ROW: usize = 4;

/// Where a setting's values go on the x axis: numbers on a linear axis (a log axis when they
/// are positive and span a factor of 10 or more), anything else as equally spaced categories.
struct XAxis {
    /// (value as written, position), in axis order.
    ticks: Vec<(String, f64)>,
    log: bool,
    numeric: bool,
}

impl XAxis {
    fn new(values: &[String]) -> XAxis {
        let numbers: Option<Vec<f64>> = values.iter().map(|v| v.parse().ok()).collect();
        match numbers {
            Some(numbers) => {
                let (lo, hi) = numbers
                    .iter()
                    .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
                let log = lo > 0.0 && hi / lo >= 10.0;
                let mut ticks: Vec<(String, f64)> = values
                    .iter()
                    .zip(&numbers)
                    .map(|(v, &n)| (v.clone(), if log { n.log10() } else { n }))
                    .collect();
                ticks.sort_by(|a, b| a.1.total_cmp(&b.1));
                XAxis {
                    ticks,
                    log,
                    numeric: true,
                }
            }
            None => XAxis {
                ticks: values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (v.clone(), i as f64))
                    .collect(),
                log: false,
                numeric: false,
            },
        }
    }

    fn position(&self, value: &str) -> Option<f64> {
        self.ticks.iter().find(|(v, _)| v == value).map(|t| t.1)
    }

    fn range(&self) -> (f64, f64) {
        let first = self.ticks.first().map_or(0.0, |t| t.1);
        let last = self.ticks.last().map_or(1.0, |t| t.1);
        let pad = ((last - first) * 0.06).max(if self.numeric { 1e-9 } else { 0.4 });
        let pad = if last > first { pad } else { 0.5 };
        (first - pad, last + pad)
    }

    /// The label at a tick position: the number there (3 significant digits) on a numeric
    /// axis, the category's value on a categorical one.
    fn label_at(&self, x: f64) -> String {
        if self.numeric {
            let value = if self.log { 10f64.powf(x) } else { x };
            return significant(value, 3);
        }
        self.ticks
            .iter()
            .find(|(_, p)| (p - x).abs() < 1e-9)
            .map_or(String::new(), |(v, _)| v.clone())
    }
}

/// `v` with `digits` significant digits and no trailing zeros (0.316, 3.16, 0.001).
fn significant(v: f64, digits: i32) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let decimals = (digits - 1 - v.abs().log10().floor() as i32).max(0) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// Test accuracy against one varying setting, one panel per architecture, one line per method
/// (and combination of the other varying settings), with the 95 % band. A baseline that does
/// not read the setting is a flat dashed line: one run serves every value.
fn accuracy_vs_setting<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    c: &Comparison,
    setting: &str,
) -> Result<()> {
    let index = c
        .varying
        .iter()
        .position(|v| *v == setting)
        .ok_or_else(|| anyhow!("{setting} does not vary"))?;
    let axis = XAxis::new(&setting_values(c, index));
    let panels_of = setting_panels(c, setting);
    let titled = area
        .titled(
            &format!("Test accuracy against {setting} (mean over seeds, 95 % bootstrap band)"),
            (FONT, 22),
        )
        .map_err(|e| anyhow!("{e:?}"))?;
    let cols = panels_of.len().clamp(1, PANELS_PER_ROW);
    let panels = titled.split_evenly((panels_of.len().div_ceil(cols).max(1), cols));
    for (panel, key) in panels.iter().zip(&panels_of) {
        let cells: Vec<&Cell> = c
            .cells
            .iter()
            .filter(|x| panel_key(x, setting) == *key)
            .collect();
        let (_, widths, arch, shared) = key;
        let caption = settings_label(&format!("arch {arch} ({widths})"), shared);
        let mut chart = setting_panel(panel, caption, &cells, &axis, setting)?;
        let series = setting_series(&cells, &axis, setting, index);
        draw_setting_lines(&mut chart, series, axis.range(), setting)?;
        legend(&mut chart, SeriesLabelPosition::LowerRight, 13)?;
    }
    Ok(())
}

/// A panel of `accuracy_vs_<setting>`: an architecture (depth, widths, label) and the data set,
/// when it varies. Accuracies on two data sets do not share an axis (MNIST's 98 % and
/// Fashion-MNIST's 88 %); every other setting stays within a panel, as lines.
type PanelKey = (usize, String, String, Vec<(String, String)>);

/// The settings that make panels rather than lines.
const PANEL_SETTINGS: [&str; 1] = ["dataset"];

fn panel_key(cell: &Cell, setting: &str) -> PanelKey {
    let shared = cell
        .settings
        .iter()
        .filter(|(name, _)| name != setting && PANEL_SETTINGS.contains(&name.as_str()))
        .cloned()
        .collect();
    (cell.depth, cell.widths.clone(), cell.arch.clone(), shared)
}

/// The panels of `accuracy_vs_<setting>`, in the cells' order.
fn setting_panels(c: &Comparison, setting: &str) -> Vec<PanelKey> {
    first_appearances(c.cells.iter().map(|x| panel_key(x, setting)))
}

/// The values a setting takes in the cells, in [`SettingValue`] order (`any` left out).
fn setting_values(c: &Comparison, index: usize) -> Vec<String> {
    let mut values: Vec<String> = c
        .cells
        .iter()
        .map(|x| x.settings[index].1.clone())
        .filter(|v| v != ANY)
        .collect();
    values.sort_by_key(|v| SettingValue(v.clone()));
    values.dedup();
    values
}

/// One architecture's panel of `accuracy_vs_<setting>`: its axes, spanning the cells' intervals.
fn setting_panel<'a, DB: DrawingBackend>(
    panel: &'a DrawingArea<DB, Shift>,
    caption: String,
    cells: &[&Cell],
    axis: &XAxis,
    setting: &str,
) -> Result<Chart<'a, DB>> {
    let (x0, x1) = axis.range();
    let (y0, y1) = cells.iter().fold((f64::MAX, f64::MIN), |(a, b), x| {
        (a.min(100.0 * x.ci_low), b.max(100.0 * x.ci_high))
    });
    let pad = ((y1 - y0) * 0.08).max(0.05);
    let mut chart = ChartBuilder::on(panel)
        .caption(caption, (FONT, 17))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
        .map_err(|e| anyhow!("{e:?}"))?;
    let x_desc = match (axis.numeric, axis.log) {
        (true, true) => format!("{setting} (log scale)"),
        _ => setting.to_string(),
    };
    let label_at = |v: &f64| axis.label_at(*v);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(if axis.numeric { 6 } else { axis.ticks.len() })
        .x_label_formatter(&label_at)
        .x_desc(x_desc)
        .y_desc("test accuracy (%)")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()
        .map_err(|e| anyhow!("{e:?}"))?;
    Ok(chart)
}

/// A panel's lines, by method and the other settings the method reads: one point per position
/// on the axis (a baseline run may serve several cells), no position for a run that does not
/// read the setting.
fn setting_series(
    cells: &[&Cell],
    axis: &XAxis,
    setting: &str,
    index: usize,
) -> BTreeMap<String, Vec<SettingPoint>> {
    let mut series: BTreeMap<String, Vec<SettingPoint>> = BTreeMap::new();
    for x in cells {
        let own = line_settings(x, Some(index));
        let points = series.entry(settings_label(&x.method, &own)).or_default();
        let position = if x.not_applicable.split_whitespace().any(|n| n == setting) {
            None
        } else {
            axis.position(&x.settings[index].1)
        };
        if !points.iter().any(|p| p.0 == position) {
            points.push((
                position,
                100.0 * x.mean_test_acc,
                100.0 * x.ci_low,
                100.0 * x.ci_high,
            ));
        }
    }
    series
}

/// Draws a panel's lines, each method's in shades of its colour; a run that serves every value
/// is a dashed line across the axis (`x0` to `x1`).
fn draw_setting_lines<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    series: BTreeMap<String, Vec<SettingPoint>>,
    (x0, x1): (f64, f64),
    setting: &str,
) -> Result<()> {
    let mut seen_of_method: BTreeMap<String, usize> = BTreeMap::new();
    for (name, points) in series {
        let method = name.split(' ').next().unwrap_or_default();
        let variant = seen_of_method.entry(method.to_string()).or_insert(0);
        let color = shade(method_color(method), *variant);
        *variant += 1;
        let mut points: Vec<(f64, f64, f64, f64)> = match points.first() {
            // A run that serves every value spans the axis.
            Some(&(None, m, lo, hi)) => vec![(x0, m, lo, hi), (x1, m, lo, hi)],
            _ => points
                .into_iter()
                .filter_map(|(x, m, lo, hi)| Some((x?, m, lo, hi)))
                .collect(),
        };
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let width = if is_adaptive(method) { 3 } else { 2 };
        let flat = points.len() == 2 && points[0].0 == x0 && points[1].0 == x1;
        let label = if flat {
            format!("{name} (any {setting})")
        } else {
            name.clone()
        };
        band_line(chart, &points, color, width, label, flat)?;
    }
    Ok(())
}

/// Stacked bars: SmartMixed's share of each function per layer, for one architecture.
fn shares_by_layer<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    arch: &str,
    layers: &[Shares],
    functions: &[Activation],
) -> Result<()> {
    let n = layers.len() as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("SmartMixed functions per layer, arch {arch}"),
            (FONT, 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(0.4..(n + 0.6 + 1.6), 0.0..1.0)
        .map_err(|e| anyhow!("{e:?}"))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(layers.len() + 2)
        .x_label_formatter(&|v| {
            if v.fract() == 0.0 && *v >= 1.0 && *v <= n {
                format!("{v:.0}")
            } else {
                String::new()
            }
        })
        .x_desc("hidden layer")
        .y_desc("share of neurons")
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .draw()
        .map_err(|e| anyhow!("{e:?}"))?;
    for (i, &a) in functions.iter().enumerate() {
        let color = activation_color(a);
        let bars = layers.iter().enumerate().map(move |(l, s)| {
            let below: f64 = functions[..i].iter().map(|f| s[f.id()]).sum();
            let x = (l + 1) as f64;
            Rectangle::new(
                [(x - 0.35, below), (x + 0.35, below + s[a.id()])],
                color.filled(),
            )
        });
        chart
            .draw_series(bars)
            .map_err(|e| anyhow!("{e:?}"))?
            .label(a.name())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 15))
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("{e:?}"))?;
    Ok(())
}

/// Phase-1 share of each function per epoch, one panel per layer, mean over seeds.
fn share_trajectories<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    arch: &str,
    layers: &[Vec<Shares>],
    functions: &[Activation],
) -> Result<()> {
    let titled = area
        .titled(
            &format!("Phase-1 choices per epoch, arch {arch} (mean over seeds)"),
            (FONT, 22),
        )
        .map_err(|e| anyhow!("{e:?}"))?;
    let cols = layers.len().min(4);
    let rows = layers.len().div_ceil(cols);
    let panels = titled.split_evenly((rows, cols));
    for (l, (panel, epochs)) in panels.iter().zip(layers).enumerate() {
        let last = epochs.len().max(2) as f64;
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("layer {}", l + 1), (FONT, 16))
            .margin(8)
            .x_label_area_size(38)
            .y_label_area_size(40)
            .build_cartesian_2d(1.0..last, 0.0..1.0)
            .map_err(|e| anyhow!("{e:?}"))?;
        chart
            .configure_mesh()
            .x_labels(epochs.len().clamp(2, 6))
            .x_label_formatter(&|v| format!("{v:.0}"))
            .x_desc("epoch")
            .y_labels(5)
            .label_style((FONT, 12))
            .draw()
            .map_err(|e| anyhow!("{e:?}"))?;
        for &a in functions {
            let color = activation_color(a);
            let points: Vec<(f64, f64)> = epochs
                .iter()
                .enumerate()
                .map(|(e, s)| ((e + 1) as f64, s[a.id()]))
                .collect();
            let series = chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(|e| anyhow!("{e:?}"))?;
            if l == 0 {
                series.label(a.name()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(3))
                });
            }
            chart
                .draw_series(points.iter().map(|p| Circle::new(*p, 3, color.filled())))
                .map_err(|e| anyhow!("{e:?}"))?;
        }
        if l == 0 {
            legend(&mut chart, SeriesLabelPosition::UpperRight, 11)?;
        }
    }
    Ok(())
}

/// Phase-1 share rows of each SmartMixed run's epochs.csv, averaged over seeds per architecture.
fn phase1_trajectories(
    dirs: &[PathBuf],
    c: &Comparison,
) -> Result<BTreeMap<ArchKey, Vec<Vec<Shares>>>> {
    let mut runs: BTreeMap<ArchKey, Vec<Vec<Vec<Shares>>>> = BTreeMap::new();
    for dir in dirs {
        for row in ResultsStore::open(dir)?
            .results()?
            .iter()
            .filter(|r| is_adaptive(&r.method) && r.status == "ok")
        {
            let path = dir.join("runs").join(&row.key).join("epochs.csv");
            let Ok(mut reader) = csv::Reader::from_path(&path) else {
                continue;
            };
            // Share columns are `share_l{layer}_{function}`, for the functions of the run's pool.
            let header = reader
                .headers()
                .with_context(|| format!("reading {}", path.display()))?
                .clone();
            let columns: Vec<(usize, usize, usize)> = header
                .iter()
                .enumerate()
                .filter_map(|(i, name)| {
                    let (layer, function) = name.strip_prefix("share_l")?.split_once('_')?;
                    let layer: usize = layer.parse().ok()?;
                    let a: Activation = function.parse().ok()?;
                    Some((i, layer.checked_sub(1)?, a.id()))
                })
                .collect();
            let layers = columns.iter().map(|c| c.1 + 1).max().unwrap_or(0);
            let mut per_epoch: Vec<Vec<Shares>> = Vec::new(); // [epoch][layer]
            for record in reader.records() {
                let record = record.with_context(|| format!("reading {}", path.display()))?;
                if &record[1] != "1" {
                    continue;
                }
                let mut epoch = vec![[0.0; Activation::COUNT]; layers];
                for &(i, layer, id) in &columns {
                    epoch[layer][id] = record.get(i).and_then(|v| v.parse().ok()).unwrap_or(0.0);
                }
                per_epoch.push(epoch);
            }
            if let Some(cell) = c.smartmixed_cells.get(&row.key) {
                runs.entry(cell.clone()).or_default().push(per_epoch);
            }
        }
    }
    // Mean over seeds, per layer and epoch (over the epochs every seed has).
    Ok(runs
        .into_iter()
        .filter_map(|(arch, seeds)| {
            let epochs = seeds.iter().map(Vec::len).min()?;
            let layers = seeds.first()?.first()?.len();
            let mean = (0..layers)
                .map(|l| {
                    (0..epochs)
                        .map(|e| {
                            std::array::from_fn(|k| {
                                seeds.iter().map(|s| s[e][l][k]).sum::<f64>() / seeds.len() as f64
                            })
                        })
                        .collect()
                })
                .collect();
            (epochs > 0).then_some((arch, mean))
        })
        .collect())
}

/// A cell label as a file name: spaces and `=` become `_`, the commas of a pool `+`.
fn file_label(arch: &str) -> String {
    arch.replace([' ', '='], "_").replace(',', "+")
}

/// Draws the figures into `figures/` of `out` (else the first directory); returns the files
/// written.
/// By default every [`FigureKind`]: test accuracy by method per architecture, SmartMixed minus
/// each method paired by seed, against depth
/// (when the results' MLPs have more than one depth), against each setting that varies within
/// an architecture, SmartMixed's shares, the selection phase's share trajectories and what the
/// adaptive methods learned; `kinds` picks some. With `x`, only test accuracy against that
/// setting (which must vary in the results).
pub fn run(
    dirs: &[PathBuf],
    out: Option<&Path>,
    bootstrap_seed: u64,
    x: Option<&str>,
    kinds: &[FigureKind],
) -> Result<Vec<PathBuf>> {
    register_font()?;
    let c = compare_dirs(dirs, bootstrap_seed)?;
    if let Some(setting) = x {
        check_varies(dirs, &c, setting)?;
    }
    let out = report_dir(dirs, out)?.join("figures");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    if let Some(setting) = x {
        return setting_figures(&out, &c, &[setting]);
    }
    let wanted = |kind| kinds.is_empty() || kinds.contains(&kind);
    let mut written = Vec::new();
    if wanted(FigureKind::Settings) {
        // A setting that takes one value per architecture (the preset of one set, the
        // epochs of another, in a report over both) would give each line a single point.
        let settings: Vec<&str> = c
            .varying
            .iter()
            .copied()
            .filter(|s| varies_within_a_panel(&c, s))
            .collect();
        written.extend(setting_figures(&out, &c, &settings)?);
    }
    if wanted(FigureKind::ByMethod) {
        written.extend(crate::report::by_method::figures(&out, &c)?);
    }
    if wanted(FigureKind::Paired) {
        written.extend(crate::report::paired::figures(&out, &c)?);
    }
    if wanted(FigureKind::Depth) {
        written.extend(depth_figures(&out, &c)?);
    }
    if wanted(FigureKind::Shares) {
        written.extend(share_figures(&out, &c)?);
    }
    if wanted(FigureKind::Trajectories) {
        written.extend(trajectory_figures(&out, dirs, &c)?);
    }
    if wanted(FigureKind::Learned) {
        written.extend(crate::report::learned::figures(&out, dirs)?);
    }
    if kinds.is_empty() {
        remove_stale_figures(&out, &written)?;
    }
    Ok(written)
}

/// The names plot gives the figures it draws from the committed files alone. Not `learned_`:
/// most of those need the runs' checkpoints, which a clone of results/ lacks, and a figure left
/// undrawn for that is not stale.
const FIGURE_PREFIXES: [&str; 3] = ["accuracy_", "shares_", "phase1_shares_"];

/// After a plot of every kind: removes the figures (and their `.csv` numbers) that an earlier
/// plot drew and this one does not, as `compare` does with its tables, so that no figure is
/// left to contradict the report (a depth figure of nets that are no ladder, say).
fn remove_stale_figures(dir: &Path, written: &[PathBuf]) -> Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let ours = FIGURE_PREFIXES.iter().any(|p| name.starts_with(p))
            && [".svg", ".png", ".csv"].iter().any(|e| name.ends_with(e));
        if ours && path.is_file() && !written.contains(&path) {
            std::fs::remove_file(&path)
                .with_context(|| format!("removing the stale {}", path.display()))?;
            eprintln!(
                "plot: removed {} (this plot does not draw it)",
                path.display()
            );
        }
    }
    Ok(())
}

/// The kinds of figure `smartmixed plot` draws (`--figures`; all by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FigureKind {
    /// `accuracy_by_method`: each method's mean and interval per architecture.
    ByMethod,
    /// `accuracy_smartmixed_paired`: SmartMixed minus each method of its cell, paired by seed.
    Paired,
    /// `accuracy_vs_depth` (and its zoom), over the MLPs.
    Depth,
    /// `accuracy_vs_<setting>` for each setting that varies within an architecture.
    Settings,
    /// `shares_*`: the functions per layer of SmartMixed's runs.
    Shares,
    /// `phase1_shares_*`: the shares per epoch of the selection phase.
    Trajectories,
    /// `learned_*`: what PReLU, Swish-beta, PAU and the soft mixture learned (needs checkpoints).
    Learned,
}

/// Whether `setting` takes two or more values among the cells of one `accuracy_vs_<setting>`
/// panel (an architecture and data set).
fn varies_within_a_panel(c: &Comparison, setting: &str) -> bool {
    let Some(index) = c.varying.iter().position(|v| *v == setting) else {
        return false;
    };
    setting_panels(c, setting).iter().any(|panel| {
        let values: Vec<&String> = c
            .cells
            .iter()
            .filter(|x| panel_key(x, setting) == *panel)
            .map(|x| &x.settings[index].1)
            .filter(|v| *v != ANY)
            .collect();
        first_appearances(values.into_iter()).len() > 1
    })
}

/// An input error unless `setting` varies within an architecture of the results (`--x` draws
/// only such a setting: one that takes one value per architecture would give each line a point).
fn check_varies(dirs: &[PathBuf], c: &Comparison, setting: &str) -> Result<()> {
    if varies_within_a_panel(c, setting) {
        return Ok(());
    }
    if c.varying.contains(&setting) {
        let within: Vec<&str> = c
            .varying
            .iter()
            .copied()
            .filter(|s| varies_within_a_panel(c, s))
            .collect();
        return Err(input_error(format!(
            "--x {setting}: takes one value per architecture in {}, so each line would be one \
             point (settings that vary within an architecture: {})",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            if within.is_empty() {
                "none".to_string()
            } else {
                within.join(", ")
            }
        )));
    }
    Err(input_error(format!(
        "--x {setting}: not a setting that varies in {} (varying: {}; settings: {})",
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        if c.varying.is_empty() {
            "none".to_string()
        } else {
            c.varying.join(", ")
        },
        crate::run::setting::names().collect::<Vec<_>>().join(", ")
    )))
}

/// `accuracy_vs_<setting>` for each of `settings`, sized for one panel per architecture.
fn setting_figures(out: &Path, c: &Comparison, settings: &[&str]) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for &setting in settings {
        let panels = (setting_panels(c, setting).len() as u32).max(1);
        let cols = panels.min(PANELS_PER_ROW as u32);
        let size = ((80 + 560 * cols).max(900), 60 + 560 * panels.div_ceil(cols));
        written.extend(save(
            out,
            &format!("accuracy_vs_{setting}"),
            size,
            &|a| accuracy_vs_setting(a, c, setting),
            &|a| accuracy_vs_setting(a, c, setting),
        )?);
    }
    Ok(written)
}

/// The ladder of MLPs a cell's architecture belongs to, where ladders share a panel: its first
/// hidden layer's width (the MNIST-1D ladder of width 100 against widths 25-25; the reference
/// architectures of 512 against those of 768). Two architectures of one ladder and depth (the
/// reference 3 and 5) stay two points at that depth, not one.
fn depth_ladder(cell: &Cell) -> String {
    let first = cell.widths.split('-').next().unwrap_or_default();
    format!("first layer {first}")
}

/// The cells that lie on a depth axis: the MLPs (architecture ids and explicit widths). Named
/// conv nets are different families, not depths of one, so no line joins them (their figure is
/// `accuracy_by_method`).
fn depth_axis_cells(c: &Comparison) -> Vec<&Cell> {
    c.cells
        .iter()
        .filter(|x| NetName::from_name(&x.arch).is_none())
        .collect()
}

/// Test accuracy against depth, when the MLPs of the results have more than one depth, and
/// zoomed in on the methods close to the best when some are not.
fn depth_figures(out: &Path, c: &Comparison) -> Result<Vec<PathBuf>> {
    let cells = depth_axis_cells(c);
    let mut depths: Vec<usize> = cells.iter().map(|x| x.depth).collect();
    depths.sort_unstable();
    depths.dedup();
    if depths.len() <= 1 {
        return Ok(Vec::new());
    }
    let panels = depth_panels(&cells).len() as u32;
    let size = ((80 + 560 * panels).max(1000), 650);
    let mut written = save(
        out,
        "accuracy_vs_depth",
        size,
        &|a| accuracy_vs_depth(a, &cells, None),
        &|a| accuracy_vs_depth(a, &cells, None),
    )?;
    let close = close_to_best(&cells, 2.0);
    let methods = first_appearances(cells.iter().map(|x| &x.method)).len();
    if !close.is_empty() && close.len() < methods {
        let only = Some(close.as_slice());
        written.extend(save(
            out,
            "accuracy_vs_depth_zoom",
            size,
            &|a| accuracy_vs_depth(a, &cells, only),
            &|a| accuracy_vs_depth(a, &cells, only),
        )?);
    }
    Ok(written)
}

/// The functions a SmartMixed cell's runs' pool holds: the ones its figures draw.
fn held_functions(c: &Comparison, key: &ArchKey) -> Vec<Activation> {
    let held = c.held.get(key);
    c.functions
        .iter()
        .copied()
        .filter(|a| held.is_some_and(|h| h[a.id()]))
        .collect()
}

/// SmartMixed's shares per layer, one figure per cell.
fn share_figures(out: &Path, c: &Comparison) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (key, layers) in &c.shares {
        let (arch, functions) = (&key.1, held_functions(c, key));
        written.extend(save(
            out,
            &format!("shares_arch_{}", file_label(arch)),
            (900, 600),
            &|a| shares_by_layer(a, arch, layers, &functions),
            &|a| shares_by_layer(a, arch, layers, &functions),
        )?);
    }
    Ok(written)
}

/// SmartMixed's phase-1 shares per epoch, one figure per cell.
fn trajectory_figures(out: &Path, dirs: &[PathBuf], c: &Comparison) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (key, layers) in &phase1_trajectories(dirs, c)? {
        let (arch, functions) = (&key.1, held_functions(c, key));
        let rows_of_panels = layers.len().div_ceil(layers.len().min(4)) as u32;
        written.extend(save(
            out,
            &format!("phase1_shares_arch_{}", file_label(arch)),
            (1200, 120 + 300 * rows_of_panels),
            &|a| share_trajectories(a, arch, layers, &functions),
            &|a| share_trajectories(a, arch, layers, &functions),
        )?);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::store::ResultRow;
    use crate::report::compare::compare;

    fn row(method: &str, dataset: &str, tau: f64, acc: f64) -> ResultRow {
        let baseline = method == "relu";
        serde_json::from_value(serde_json::json!({
            "key": format!("{method}-{dataset}-{tau}"), "dataset": dataset, "arch": 3,
            "widths": "8", "depth": 1, "method": method, "seed": 1, "preset": "default",
            "epochs": 2, "phase1_epochs": if baseline { 0 } else { 1 }, "lr": 0.001,
            "batch_size": 64, "tau": tau, "clamp": "10", "grad_clip": "1",
            "phase2_init": "warm", "loss": "logits", "eval_selection": "argmax",
            "split_seed": 42, "not_applicable": if baseline {
                crate::run::setting::selection_settings().collect::<Vec<_>>().join(" ")
            } else {
                String::new()
            },
            "n_params": 10, "best_epoch": 1, "val_loss": 0.1, "val_acc": acc,
            "test_acc": acc, "phase1_test_acc": null, "epoch_seconds": 1.0,
            "phase1_epoch_seconds": null, "phase2_epoch_seconds": null, "train_seconds": 2.0,
            "status": "ok", "device": "cpu", "threads": 1, "git_commit": "", "timestamp": ""
        }))
        .unwrap()
    }

    /// Accuracy against depth joins MLPs of one ladder only: named conv nets of different
    /// depths are different families, drawn by `accuracy_by_method`, and never a line; MLPs of
    /// two widths make a line each.
    #[test]
    fn depth_lines_join_one_ladder_of_mlps() {
        let at = |r: ResultRow, arch: Option<u32>, net: &str, depth: usize| ResultRow {
            key: format!("{}-{net}-{depth}", r.key),
            arch,
            net: net.to_string(),
            depth,
            ..r
        };
        let conv_nets: Vec<ResultRow> = ["relu", "smartmixed"]
            .into_iter()
            .flat_map(|m| {
                [
                    at(row(m, "mnist1d", 0.3, 0.9), None, "mnist1d-cnn", 3),
                    at(row(m, "mnist1d", 0.3, 0.95), None, "mnist1d-cnn5", 5),
                ]
            })
            .collect();
        register_font().unwrap();
        let out = std::env::temp_dir().join(format!("smartmixed-depth-{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        let c = compare(&conv_nets, &[], 0);
        assert_eq!(c.cells.len(), 4);
        assert!(depth_axis_cells(&c).is_empty());
        assert!(depth_figures(&out, &c).unwrap().is_empty());

        let mut with_mlps = conv_nets.clone();
        for m in ["relu", "smartmixed"] {
            with_mlps.push(at(row(m, "mnist1d", 0.3, 0.8), Some(1), "", 1));
            with_mlps.push(at(row(m, "mnist1d", 0.3, 0.85), Some(3), "", 2));
        }
        let c = compare(&with_mlps, &[], 0);
        let depths: Vec<usize> = depth_axis_cells(&c).iter().map(|x| x.depth).collect();
        assert_eq!(depths.len(), 4);
        assert!(depths.iter().all(|&d| d == 1 || d == 2), "{depths:?}");
        let written = depth_figures(&out, &c).unwrap();
        assert!(written.iter().any(|f| f.ends_with("accuracy_vs_depth.png")));
        // One ladder (every MLP here has width 8): a line per method, no ladder in its name.
        let series = depth_series(&depth_axis_cells(&c));
        assert_eq!(series.keys().collect::<Vec<_>>(), ["relu", "smartmixed"]);
        assert_eq!(series["relu"].len(), 2);

        // MLPs of width 25 beside a ladder of width 100 share depth 2: lines per ladder, and
        // the narrow net's point is not merged into the wide ladder's.
        let ladder = |widths: &str, depth: usize, acc: f64| {
            ["relu", "smartmixed"].map(|m| ResultRow {
                widths: widths.to_string(),
                ..at(row(m, "mnist1d", 0.3, acc), None, "", depth)
            })
        };
        let series_of = |architectures: &[(&str, usize, f64)]| {
            let rows: Vec<ResultRow> = architectures
                .iter()
                .flat_map(|&(widths, depth, acc)| ladder(widths, depth, acc))
                .map(|r| ResultRow {
                    key: format!("{}-{}", r.key, r.widths),
                    ..r
                })
                .collect();
            depth_series(&depth_axis_cells(&compare(&rows, &[], 0)))
        };
        let series = series_of(&[("100", 1, 0.57), ("100-100", 2, 0.6), ("25-25", 2, 0.5)]);
        assert_eq!(
            series.keys().collect::<Vec<_>>(),
            [
                "relu (first layer 100)",
                "relu (first layer 25)",
                "smartmixed (first layer 100)",
                "smartmixed (first layer 25)"
            ]
        );
        assert_eq!(series["relu (first layer 100)"].len(), 2);
        assert_eq!(series["relu (first layer 25)"], [(2.0, 50.0, 50.0, 50.0)]);

        // The reference architectures 1 (512) and 3 (512-256-128-64) are one ladder: no split.
        let series = series_of(&[("512", 1, 0.97), ("512-256-128-64", 4, 0.98)]);
        assert_eq!(series.keys().collect::<Vec<_>>(), ["relu", "smartmixed"]);
        assert_eq!(series["relu"].len(), 2);
        std::fs::remove_dir_all(&out).unwrap();
    }

    /// A setting that takes one value per architecture (here the epochs, as in a report over
    /// two sets) gets no `accuracy_vs_` figure; one that varies within an architecture does.
    #[test]
    fn only_settings_that_vary_within_an_architecture_get_a_figure() {
        let mut rows = Vec::new();
        for (widths, epochs) in [("8", 2), ("16-8", 3)] {
            for (method, tau) in [("relu", 0.3), ("smartmixed", 0.3), ("smartmixed", 1.0)] {
                let mut r = row(method, "mnist", tau, 0.9);
                r.key = format!("{}-{widths}", r.key);
                r.widths = widths.to_string();
                r.depth = widths.split('-').count();
                r.epochs = epochs;
                rows.push(r);
            }
        }
        let c = compare(&rows, &[], 0);
        assert_eq!(c.varying, vec!["epochs", "tau"]);
        assert!(!varies_within_a_panel(&c, "epochs"));
        assert!(varies_within_a_panel(&c, "tau"));
        assert!(!varies_within_a_panel(&c, "lr"));
        // Asked for by name, such a setting is refused with the ones that would draw.
        let dirs = [PathBuf::from("a"), PathBuf::from("b")];
        let err = check_varies(&dirs, &c, "epochs").unwrap_err().to_string();
        assert!(
            err.contains("--x epochs: takes one value per architecture"),
            "{err}"
        );
        assert!(err.contains("vary within an architecture: tau)"), "{err}");
        assert!(check_varies(&dirs, &c, "tau").is_ok());
        let err = check_varies(&dirs, &c, "lr").unwrap_err().to_string();
        assert!(err.contains("--x lr: not a setting that varies"), "{err}");
    }

    /// The data set splits accuracy_vs_tau into panels; within a panel the lines are the
    /// methods (and their other settings), not the data sets.
    #[test]
    fn data_sets_make_panels_not_lines() {
        let mut rows = Vec::new();
        for (dataset, base) in [("mnist", 0.97), ("fashion-mnist", 0.88)] {
            rows.push(row("relu", dataset, 0.3, base));
            rows.push(row("smartmixed", dataset, 0.3, base + 0.001));
            rows.push(row("smartmixed", dataset, 1.0, base + 0.002));
        }
        let c = compare(&rows, &[], 0);
        assert_eq!(c.varying, vec!["dataset", "tau"]);
        let panels = setting_panels(&c, "tau");
        let shared: Vec<&[(String, String)]> = panels.iter().map(|p| p.3.as_slice()).collect();
        let dataset = |d: &str| vec![("dataset".to_string(), d.to_string())];
        assert_eq!(shared, [dataset("fashion-mnist"), dataset("mnist")]);
        let all: Vec<&Cell> = c.cells.iter().collect();
        assert_eq!(
            depth_panels(&all),
            [dataset("fashion-mnist"), dataset("mnist")]
        );
        let index = c.varying.iter().position(|v| *v == "tau").unwrap();
        let axis = XAxis::new(&setting_values(&c, index));
        let cells: Vec<&Cell> = c
            .cells
            .iter()
            .filter(|x| panel_key(x, "tau") == panels[1])
            .collect();
        let series = setting_series(&cells, &axis, "tau", index);
        assert_eq!(series.keys().collect::<Vec<_>>(), ["relu", "smartmixed"]);
        // SmartMixed has a point per tau, the baseline one that serves both.
        assert_eq!(series["smartmixed"].len(), 2);
        assert_eq!(series["relu"].len(), 1);
        assert!((series["smartmixed"][1].1 - 97.2).abs() < 1e-9);
    }
}
