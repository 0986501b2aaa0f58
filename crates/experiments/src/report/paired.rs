//! `accuracy_smartmixed_paired`: SmartMixed minus each other method of its cell, paired by seed,
//! with the 95 % interval of the mean difference, one panel per architecture (and value of each
//! varying setting that every method reads) and one colour per SmartMixed setting (tau, say):
//! the figure that says where SmartMixed wins, loses or is level, an interval off zero or not.
//! The numbers are comparison.csv's `paired_*` columns; a filled dot holds after Holm.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::compare::{settings_label, Cell, Comparison, ANY};
use crate::report::figure::{self, panel_grid_size, rows_chart, save_panel_grid, FONT};
use crate::report::stats::holds_after_holm;
use crate::run::method::Method;
use crate::run::setting;

/// SmartMixed minus one method, in points, and whether it holds after Holm's adjustment over
/// the cell's comparisons (drawn as a filled dot; a hollow one where it does not).
#[derive(Debug, PartialEq)]
struct Diff {
    mean: f64,
    low: f64,
    high: f64,
    holds: bool,
}

/// One method of a panel: its difference per series (`None` where that series' cell lacks it).
#[derive(Debug, PartialEq)]
struct Row {
    method: String,
    diffs: Vec<Option<Diff>>,
}

/// One architecture: its series (SmartMixed's own settings, e.g. `tau=0.3`) and rows.
#[derive(Debug, PartialEq)]
struct Panel {
    title: String,
    series: Vec<String>,
    rows: Vec<Row>,
}

const ROW_HEIGHT: u32 = 30;
/// The scale reaches at most this many points either side of zero: a difference against a
/// method that failed (sigmoid in a deep net: 30 points and more) would otherwise squeeze
/// every other interval into a few pixels. A mean beyond it is named in its row instead.
const SCALE_POINTS: f64 = 12.0;
/// A colour per series, SmartMixed's red first, with the name the panel's caption gives it (a
/// legend inside the panel would cover some row's interval).
/// More series than colours (a grid of tau and pool, say) repeat them, and the caption says so.
const SERIES_COLORS: [(RGBColor, &str); 6] = [
    (RGBColor(214, 39, 40), "red"),
    (RGBColor(31, 119, 180), "blue"),
    (RGBColor(44, 160, 44), "green"),
    (RGBColor(148, 103, 189), "purple"),
    (RGBColor(255, 127, 14), "orange"),
    (RGBColor(0, 0, 0), "black"),
];

/// Which colour is which series, for the line under a panel's title (empty for one series).
fn caption(panel: &Panel) -> String {
    if panel.series.len() < 2 {
        return String::new();
    }
    let key: Vec<String> = panel
        .series
        .iter()
        .enumerate()
        .map(|(s, name)| format!("{} {name}", SERIES_COLORS[s % SERIES_COLORS.len()].1))
        .collect();
    key.join(", ")
}

/// The settings a cell's method reads, split into those every method reads (the panel's) and
/// the selection-only ones (SmartMixed's series).
fn split_settings(cell: &Cell) -> (String, String) {
    let read = |(name, value): &&(String, String)| {
        value != ANY && !cell.not_applicable.split_whitespace().any(|n| n == name)
    };
    let (own, shared): (Vec<_>, Vec<_>) = cell
        .settings
        .iter()
        .filter(|s| !setting::selection_only(&s.0) || read(s))
        .cloned()
        .partition(|(name, _)| setting::selection_only(name));
    let own = settings_label("", &own);
    (settings_label(&cell.arch, &shared), own.trim().to_string())
}

/// The panels of a comparison: for every SmartMixed cell, the paired difference against each
/// other method of the same cell.
fn panels(c: &Comparison) -> Vec<Panel> {
    let smartmixed = Method::SmartMixed.name();
    let mut panels: Vec<Panel> = Vec::new();
    for cell in c.cells.iter().filter(|x| x.method == smartmixed) {
        let (title, series) = split_settings(cell);
        let panel = match panels.iter().position(|p| p.title == title) {
            Some(i) => &mut panels[i],
            None => {
                panels.push(Panel {
                    title,
                    series: Vec::new(),
                    rows: Vec::new(),
                });
                panels.last_mut().unwrap()
            }
        };
        let s = panel.series.len();
        panel.series.push(series);
        for row in &mut panel.rows {
            row.diffs.push(None);
        }
        let partners = c.cells.iter().filter(|x| {
            x.method != smartmixed
                && (&x.arch, &x.widths, x.depth) == (&cell.arch, &cell.widths, cell.depth)
                && x.settings == cell.settings
        });
        for other in partners {
            let (Some(mean), Some(low), Some(high)) =
                (other.paired_diff, other.paired_low, other.paired_high)
            else {
                continue;
            };
            if !mean.is_finite() {
                continue;
            }
            let diff = Diff {
                mean: 100.0 * mean,
                low: 100.0 * low,
                high: 100.0 * high,
                holds: holds_after_holm(other.paired_holm_p),
            };
            match panel.rows.iter_mut().find(|r| r.method == other.method) {
                Some(row) => row.diffs[s] = Some(diff),
                None => {
                    let mut diffs: Vec<Option<Diff>> = (0..s).map(|_| None).collect();
                    diffs.push(Some(diff));
                    panel.rows.push(Row {
                        method: other.method.clone(),
                        diffs,
                    });
                }
            }
        }
    }
    for p in &mut panels {
        // The methods SmartMixed trails most on top, by the first series that has the method.
        let key = |r: &Row| {
            r.diffs
                .iter()
                .flatten()
                .map(|d| d.mean)
                .next()
                .unwrap_or(f64::INFINITY)
        };
        p.rows.sort_by(|a, b| key(a).total_cmp(&key(b)));
    }
    panels.retain(|p| !p.rows.is_empty());
    panels
}

/// A panel's scale: zero and the intervals of the means within [`SCALE_POINTS`] of it, cut
/// there (a mean further out is named in its row, and its interval does not stretch the scale).
fn scale(panel: &Panel) -> (f64, f64) {
    let diffs = || {
        panel
            .rows
            .iter()
            .flat_map(|r| r.diffs.iter().flatten())
            .filter(|d| d.mean.abs() <= SCALE_POINTS)
    };
    let low = diffs().map(|d| d.low).fold(0.0, f64::min);
    let high = diffs().map(|d| d.high).fold(0.0, f64::max);
    (low.max(-SCALE_POINTS), high.min(SCALE_POINTS))
}

/// A panel's row labels, top first: means off the scale are named in their row.
fn row_labels(panel: &Panel) -> Vec<String> {
    let (low, high) = scale(panel);
    panel
        .rows
        .iter()
        .map(|r| {
            // Named by series where there are several.
            let off: Vec<String> = r
                .diffs
                .iter()
                .zip(&panel.series)
                .filter_map(|(d, series)| Some((d.as_ref()?, series)))
                .filter(|(d, _)| d.mean < low || d.mean > high)
                .map(|(d, series)| match panel.series.len() {
                    1 => format!("{:+.2}", d.mean),
                    _ => format!("{series} {:+.2}", d.mean),
                })
                .collect();
            if off.is_empty() {
                r.method.clone()
            } else {
                format!("{} ({} off the scale)", r.method, off.join(", "))
            }
        })
        .collect()
}

/// Pixels for the row labels: 170, or more for longer labels.
fn label_width(panels: &[Panel]) -> u32 {
    figure::label_width(panels.iter().flat_map(row_labels), 170)
}

/// One panel: a row per method, per series its interval as a bar and its mean as a dot, and a
/// line at zero (level).
fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    label_px: u32,
) -> Result<()> {
    let n = panel.rows.len();
    let (low, high) = scale(panel);
    let pad = ((high - low) * 0.05).max(0.05);
    let labels = row_labels(panel);
    let area = area
        .titled(&panel.title, (FONT, 16))
        .map_err(|e| anyhow!("{e:?}"))?;
    let mut chart = rows_chart(
        &area,
        (&caption(panel), 14),
        (low - pad)..(high + pad),
        &labels,
        label_px,
        "SmartMixed minus the method (points), paired by seed, 95 % interval",
    )?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(0.0, -0.5), (0.0, n as f64 - 0.5)],
            BLACK.stroke_width(1),
        )))
        .map_err(|e| anyhow!("{e:?}"))?;
    let k = panel.series.len();
    for s in 0..k {
        let color = SERIES_COLORS[s % SERIES_COLORS.len()].0;
        // Series side by side within a row, the first on top.
        let offset = if k > 1 {
            0.3 * (0.5 - s as f64 / (k - 1) as f64)
        } else {
            0.0
        };
        let drawn: Vec<(f64, &Diff)> = panel
            .rows
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some(((n - 1 - i) as f64 + offset, r.diffs[s].as_ref()?)))
            .filter(|(_, d)| d.mean >= low && d.mean <= high)
            .collect();
        chart
            .draw_series(drawn.iter().map(|(y, d)| {
                PathElement::new(
                    vec![(d.low.max(low - pad), *y), (d.high.min(high + pad), *y)],
                    color.stroke_width(3),
                )
            }))
            .map_err(|e| anyhow!("{e:?}"))?;
        chart
            .draw_series(drawn.iter().map(|(y, d)| match d.holds {
                true => Circle::new((d.mean, *y), 5, color.filled()),
                false => Circle::new((d.mean, *y), 5, WHITE.filled()),
            }))
            .map_err(|e| anyhow!("{e:?}"))?;
        // A hollow dot's ring.
        chart
            .draw_series(
                drawn
                    .iter()
                    .filter(|(_, d)| !d.holds)
                    .map(|(y, d)| Circle::new((d.mean, *y), 5, color.stroke_width(2))),
            )
            .map_err(|e| anyhow!("{e:?}"))?;
    }
    Ok(())
}

/// `accuracy_smartmixed_paired.{svg,png}` in `out`; nothing when the results hold no
/// SmartMixed cell with another method to pair with.
pub fn figures(out: &Path, c: &Comparison) -> Result<Vec<PathBuf>> {
    let panels = panels(c);
    if panels.is_empty() {
        return Ok(Vec::new());
    }
    let most = panels.iter().map(|p| p.rows.len()).max().unwrap_or(1);
    let label_px = label_width(&panels);
    let panel_width = 480 + label_px;
    let size = panel_grid_size(panels.len(), panel_width, most, ROW_HEIGHT, 1100);
    save_panel_grid(
        out,
        "accuracy_smartmixed_paired",
        size,
        ("SmartMixed minus each method of its cell, paired by seed (right of the line: SmartMixed \
             better; a filled dot: Holm p < 0.05 over the cell's comparisons)", 20),
        &panels,
        &|a, p| draw_panel(a, p, label_px),
        &|a, p| draw_panel(a, p, label_px),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::compare::{committed_rows, compare};

    /// Per architecture one panel with a series per tau; each row is the cell's paired
    /// difference (comparison.csv's numbers, in points); rows sorted by the first series.
    #[test]
    fn panels_hold_the_paired_differences_of_each_smartmixed_cell() {
        let c = compare(&committed_rows("mnist1d-cnn"), &[], 0);
        let panels = panels(&c);
        let titles: Vec<&str> = panels.iter().map(|p| p.title.as_str()).collect();
        assert_eq!(titles, ["mnist1d-cnn", "mnist1d-cnn5"]);
        assert_eq!(caption(&panels[0]), "red tau=0.3, blue tau=1");
        for p in &panels {
            assert_eq!(p.series, ["tau=0.3", "tau=1"]);
            // The 14 other methods (SmartMixed's other tau is not in its cell).
            assert_eq!(p.rows.len(), 14, "{:?}", p.rows);
            assert!(p.rows.iter().all(|r| r.diffs.iter().all(Option::is_some)));
            let first: Vec<f64> = p
                .rows
                .iter()
                .map(|r| r.diffs[0].as_ref().unwrap().mean)
                .collect();
            assert!(first.windows(2).all(|w| w[0] <= w[1]), "{first:?}");
            for r in &p.rows {
                for (s, tau) in ["0.3", "1"].iter().enumerate() {
                    let cell = c
                        .cells
                        .iter()
                        .find(|x| {
                            x.arch == p.title
                                && x.method == r.method
                                && x.settings.iter().any(|(n, v)| n == "tau" && v == tau)
                        })
                        .unwrap();
                    let d = r.diffs[s].as_ref().unwrap();
                    assert_eq!(d.mean, 100.0 * cell.paired_diff.unwrap());
                    assert_eq!(d.holds, holds_after_holm(cell.paired_holm_p));
                    assert!(d.low <= d.mean && d.mean <= d.high, "{d:?}");
                }
            }
        }
        // Sigmoid fails in the 5-layer net: its difference is named, not drawn.
        let deep = &panels[1];
        let labels = row_labels(deep);
        let sigmoid = deep
            .rows
            .iter()
            .position(|r| r.method == "sigmoid")
            .unwrap();
        let mean = deep.rows[sigmoid].diffs[0].as_ref().unwrap().mean;
        assert_eq!(
            mean > SCALE_POINTS,
            labels[sigmoid].contains("off the scale")
        );
    }

    /// A comparison without SmartMixed draws nothing.
    #[test]
    fn no_smartmixed_no_figure() {
        let rows: Vec<_> = committed_rows("mnist1d-cnn")
            .into_iter()
            .filter(|r| r.method != "smartmixed")
            .collect();
        assert!(panels(&compare(&rows, &[], 0)).is_empty());
    }
}
