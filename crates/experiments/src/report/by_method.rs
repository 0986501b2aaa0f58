//! `accuracy_by_method`: every method's test accuracy with its 95 % interval, methods sorted by
//! mean, one panel per architecture (and value of each varying setting that every method
//! reads, such as the data set): the figure for comparing methods where depth is not an axis,
//! as between named conv nets.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::compare::{settings_label, Cell, Comparison, ANY};
use crate::report::figure::{method_color, save, FONT};
use crate::run::setting;

/// One method (with the values of the settings only it reads) in a panel, in %.
#[derive(Debug, PartialEq)]
struct Entry {
    label: String,
    method: String,
    mean: f64,
    low: f64,
    high: f64,
}

/// One architecture's methods.
#[derive(Debug, PartialEq)]
struct Panel {
    title: String,
    entries: Vec<Entry>,
}

/// (setting, value) pairs, as cells hold them.
type Settings = Vec<(String, String)>;

const PANELS_PER_ROW: usize = 2;
const ROW_HEIGHT: u32 = 24;
/// The scale reaches at most this many points below the best interval's top: a method that
/// failed in some seeds would otherwise squeeze every other interval into a few pixels. A mean
/// below it is named in its row instead of drawn; an interval reaching below it is cut there.
const SCALE_POINTS: f64 = 12.0;

/// The panels of a comparison: a baseline that serves several cells of one panel (a tau axis
/// it does not read) is one entry.
fn panels(c: &Comparison) -> Vec<Panel> {
    let mut panels: Vec<Panel> = Vec::new();
    for cell in &c.cells {
        let (own, shared): (Settings, Settings) = cell
            .settings
            .iter()
            .cloned()
            .partition(|(name, _)| setting::selection_only(name));
        let read = |(name, value): &(String, String)| {
            value != ANY && !cell.not_applicable.split_whitespace().any(|n| n == name)
        };
        let title = settings_label(&cell.arch, &shared);
        let own: Settings = own.into_iter().filter(read).collect();
        let entry = entry(cell, settings_label(&cell.method, &own));
        match panels.iter_mut().find(|p| p.title == title) {
            Some(p) if p.entries.iter().any(|e| e.label == entry.label) => {}
            Some(p) => p.entries.push(entry),
            None => panels.push(Panel {
                title,
                entries: vec![entry],
            }),
        }
    }
    for p in &mut panels {
        // Best first; a mean that is not a number (no seed finished) last.
        let key = |e: &Entry| {
            if e.mean.is_nan() {
                f64::NEG_INFINITY
            } else {
                e.mean
            }
        };
        p.entries.sort_by(|a, b| key(b).total_cmp(&key(a)));
    }
    panels
}

fn entry(cell: &Cell, label: String) -> Entry {
    Entry {
        label,
        method: cell.method.clone(),
        mean: 100.0 * cell.mean_test_acc,
        low: 100.0 * cell.ci_low,
        high: 100.0 * cell.ci_high,
    }
}

/// The top of a panel's scale: its highest interval end.
fn scale_top(panel: &Panel) -> f64 {
    panel
        .entries
        .iter()
        .map(|e| e.high)
        .fold(f64::MIN, f64::max)
}

/// A panel's row labels, top first: a mean below the scale is named in its row.
fn row_labels(panel: &Panel) -> Vec<String> {
    let floor = scale_top(panel) - SCALE_POINTS;
    panel
        .entries
        .iter()
        .map(|e| match (e.mean.is_nan(), e.mean < floor) {
            (true, _) => format!("{} (no finished seed)", e.label),
            (false, true) => format!("{} ({:.2}, off the scale)", e.label, e.mean),
            _ => e.label.clone(),
        })
        .collect()
}

/// Pixels for the row labels of every panel: 250, or more for labels longer than about 32
/// characters (a report over several sets names settings in them).
fn label_width(panels: &[Panel]) -> u32 {
    let longest = panels
        .iter()
        .flat_map(row_labels)
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0);
    (24 + 7 * longest as u32).max(250)
}

/// One panel: a row per entry, its interval as a bar and its mean as a dot, the best on top.
fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    label_px: u32,
) -> Result<()> {
    let n = panel.entries.len();
    let high = scale_top(panel);
    let floor = high - SCALE_POINTS;
    let low = panel
        .entries
        .iter()
        .map(|e| e.low)
        .fold(f64::MAX, f64::min)
        .max(floor);
    let pad = ((high - low) * 0.05).max(0.05);
    let labels = row_labels(panel);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, (FONT, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(label_px)
        .build_cartesian_2d((low - pad)..(high + pad), -0.5..(n as f64 - 0.5))
        .map_err(|e| anyhow!("{e:?}"))?;
    chart
        .configure_mesh()
        .y_labels(n)
        .y_label_formatter(&|y| {
            // Row i from the top holds entry i.
            let i = (n as f64 - 1.0 - y).round();
            match (i >= 0.0 && (y - y.round()).abs() < 1e-6).then_some(i as usize) {
                Some(i) if i < n => labels[i].clone(),
                _ => String::new(),
            }
        })
        .disable_y_mesh()
        .x_desc("test accuracy (%), mean and 95 % interval over seeds")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(|e| anyhow!("{e:?}"))?;
    for (i, e) in panel
        .entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.mean >= floor)
    {
        let y = (n - 1 - i) as f64;
        let color = method_color(&e.method);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(e.low.max(low - pad), y), (e.high, y)],
                color.stroke_width(3),
            )))
            .map_err(|err| anyhow!("{err:?}"))?;
        chart
            .draw_series(std::iter::once(Circle::new((e.mean, y), 5, color.filled())))
            .map_err(|err| anyhow!("{err:?}"))?;
    }
    Ok(())
}

fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, panels: &[Panel]) -> Result<()> {
    let titled = area
        .titled(
            "Test accuracy by method (mean over seeds, 95 % bootstrap interval)",
            (FONT, 22),
        )
        .map_err(|e| anyhow!("{e:?}"))?;
    let cols = panels.len().min(PANELS_PER_ROW);
    let rows = panels.len().div_ceil(cols);
    let label_px = label_width(panels);
    for (cell, panel) in titled.split_evenly((rows, cols)).iter().zip(panels) {
        draw_panel(cell, panel, label_px)?;
    }
    Ok(())
}

/// `accuracy_by_method.{svg,png}` in `out`.
pub fn figures(out: &Path, c: &Comparison) -> Result<Vec<PathBuf>> {
    let panels = panels(c);
    if panels.is_empty() {
        return Ok(Vec::new());
    }
    let cols = panels.len().min(PANELS_PER_ROW) as u32;
    let rows = panels.len().div_ceil(PANELS_PER_ROW) as u32;
    let most = panels.iter().map(|p| p.entries.len()).max().unwrap_or(1) as u32;
    // A panel is 700 pixels wide with the usual 250 for its labels; longer labels widen it.
    let panel_width = 450 + label_width(&panels);
    let size = (
        60 + panel_width * cols,
        60 + rows * (110 + ROW_HEIGHT * most),
    );
    save(
        out,
        "accuracy_by_method",
        size,
        &|a| draw(a, &panels),
        &|a| draw(a, &panels),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::compare::compare;

    /// A baseline that serves both tau cells is one entry; SmartMixed's two tau values are two;
    /// entries are sorted by mean and panels follow the architectures.
    #[test]
    fn panels_hold_each_method_once_per_value_it_reads() {
        let dir = crate::crate_dir().join("../../results/mnist1d-cnn");
        let rows = crate::grid::store::ResultsStore::open(&dir)
            .unwrap()
            .results()
            .unwrap();
        let c = compare(&rows, &[], 0);
        let panels = panels(&c);
        let titles: Vec<&str> = panels.iter().map(|p| p.title.as_str()).collect();
        assert_eq!(titles, ["mnist1d-cnn", "mnist1d-cnn5"]);
        for p in &panels {
            let labels: Vec<&str> = p.entries.iter().map(|e| e.label.as_str()).collect();
            assert_eq!(labels.len(), 18, "{labels:?}");
            assert_eq!(labels.iter().filter(|l| **l == "relu").count(), 1);
            assert!(labels.contains(&"smartmixed tau=1") && labels.contains(&"smartmixed tau=0.3"));
            assert!(p.entries.windows(2).all(|w| w[0].mean >= w[1].mean));
        }
        assert_eq!(panels[0].entries[0].label, "pau_neuron");
    }
}
