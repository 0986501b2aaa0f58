//! `accuracy_by_method`: every method's test accuracy with its 95 % interval, methods sorted by
//! mean, one panel per architecture (and value of each varying setting that every method
//! reads, such as the data set): the figure for comparing methods where depth is not an axis,
//! as between named conv nets.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::compare::{settings_label, Cell, Comparison, ANY};
use crate::report::figure::{self, method_color, panel_grid_size, rows_chart, save_panel_grid};
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
    figure::label_width(panels.iter().flat_map(row_labels), 250)
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
    let mut chart = rows_chart(
        area,
        (&panel.title, 18),
        (low - pad)..(high + pad),
        &labels,
        label_px,
        "test accuracy (%), mean and 95 % interval over seeds",
    )?;
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

/// `accuracy_by_method.{svg,png}` in `out`.
pub fn figures(out: &Path, c: &Comparison) -> Result<Vec<PathBuf>> {
    let panels = panels(c);
    if panels.is_empty() {
        return Ok(Vec::new());
    }
    let most = panels.iter().map(|p| p.entries.len()).max().unwrap_or(1);
    // A panel is 700 pixels wide with the usual 250 for its labels; longer labels widen it.
    let label_px = label_width(&panels);
    let panel_width = 450 + label_px;
    let size = panel_grid_size(panels.len(), panel_width, most, ROW_HEIGHT, 0);
    save_panel_grid(
        out,
        "accuracy_by_method",
        size,
        (
            "Test accuracy by method (mean over seeds, 95 % bootstrap interval)",
            22,
        ),
        &panels,
        &|a, p| draw_panel(a, p, label_px),
        &|a, p| draw_panel(a, p, label_px),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::compare::{committed_rows, compare};

    /// A baseline that serves both tau cells is one entry; SmartMixed's two tau values are two;
    /// entries are sorted by mean and panels follow the architectures.
    #[test]
    fn panels_hold_each_method_once_per_value_it_reads() {
        let c = compare(&committed_rows("mnist1d-cnn"), &[], 0);
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
