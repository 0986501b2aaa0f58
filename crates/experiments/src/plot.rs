//! `smartmixed plot`: SVG and PNG figures of a comparison, drawn with plotters and the DejaVu
//! Sans font shipped in `assets/` (no system font libraries needed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use mixed_act::Activation;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::compare::{arch_label, compare_dirs, ArchKey, Comparison, Shares};
use crate::store::ResultsStore;

const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

fn register_font() -> Result<()> {
    plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES)
        .map_err(|_| anyhow!("the bundled font is invalid"))
}

/// A colour per method, the baselines in pool order and SmartMixed last.
fn method_color(method: &str) -> RGBColor {
    const COLORS: [RGBColor; 7] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(214, 39, 40),
    ];
    let index = method.parse::<Activation>().map(|a| a.id()).unwrap_or(6);
    COLORS[index]
}

fn activation_color(a: Activation) -> RGBColor {
    method_color(a.name())
}

type Draw<'a> = dyn Fn(&DrawingArea<SVGBackend, Shift>) -> Result<()> + 'a;
type DrawPng<'a> = dyn Fn(&DrawingArea<BitMapBackend, Shift>) -> Result<()> + 'a;

/// Writes one figure as `name.svg` and `name.png`.
fn save(
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

/// Methods whose mean is within `points` percentage points of the best method at every depth
/// (the zoomed figure leaves out collapsed baselines so that the close ones can be told apart).
fn close_to_best(c: &Comparison, points: f64) -> Vec<String> {
    let mut best: BTreeMap<(usize, &str), f64> = BTreeMap::new();
    for cell in &c.cells {
        let b = best.entry((cell.depth, &cell.arch)).or_insert(0.0);
        *b = b.max(cell.mean_test_acc);
    }
    let mut methods: Vec<String> = c.cells.iter().map(|x| x.method.clone()).collect();
    methods.sort();
    methods.dedup();
    methods.retain(|m| {
        c.cells
            .iter()
            .filter(|x| &x.method == m)
            .all(|x| 100.0 * (best[&(x.depth, x.arch.as_str())] - x.mean_test_acc) <= points)
    });
    methods
}

/// Test accuracy against depth, one line per method, with the 95 % interval as a band;
/// `only` restricts the methods drawn.
fn accuracy_vs_depth<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    c: &Comparison,
    only: Option<&[String]>,
) -> Result<()> {
    let cells: Vec<&crate::compare::Cell> = c
        .cells
        .iter()
        .filter(|x| only.is_none_or(|o| o.contains(&x.method)))
        .collect();
    let caption = match only {
        None => "Test accuracy by depth (mean over seeds, 95 % bootstrap band)",
        Some(_) => "Test accuracy by depth: methods within 2 points of the best",
    };
    let mut by_method: BTreeMap<&str, Vec<(f64, f64, f64, f64)>> = BTreeMap::new();
    for cell in &cells {
        by_method.entry(&cell.method).or_default().push((
            cell.depth as f64,
            100.0 * cell.mean_test_acc,
            100.0 * cell.ci_low,
            100.0 * cell.ci_high,
        ));
    }
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
        .caption(caption, (FONT, 22))
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
    for (method, mut points) in by_method {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let color = method_color(method);
        let mut band: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.3)).collect();
        band.extend(points.iter().rev().map(|p| (p.0, p.2)));
        chart
            .draw_series(std::iter::once(Polygon::new(band, color.mix(0.12))))
            .map_err(|e| anyhow!("{e:?}"))?;
        let width = if method == "smartmixed" { 3 } else { 2 };
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.0, p.1)),
                color.stroke_width(width),
            ))
            .map_err(|e| anyhow!("{e:?}"))?
            .label(method.to_string())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        chart
            .draw_series(
                points
                    .iter()
                    .map(|p| Circle::new((p.0, p.1), 4, color.filled())),
            )
            .map_err(|e| anyhow!("{e:?}"))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("{e:?}"))?;
    Ok(())
}

/// Stacked bars: SmartMixed's share of each function per layer, for one architecture.
fn shares_by_layer<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    arch: &str,
    layers: &[[f64; 6]],
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
    for a in Activation::ALL {
        let color = activation_color(a);
        let bars = layers.iter().enumerate().map(|(l, s)| {
            let below: f64 = s[..a.id()].iter().sum();
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
    layers: &[Vec<[f64; 6]>],
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
        for a in Activation::ALL {
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
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font((FONT, 11))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(|e| anyhow!("{e:?}"))?;
        }
    }
    Ok(())
}

/// Phase-1 share rows of each SmartMixed run's epochs.csv, averaged over seeds per architecture.
fn phase1_trajectories(dirs: &[PathBuf]) -> Result<BTreeMap<ArchKey, Vec<Vec<Shares>>>> {
    let mut runs: BTreeMap<ArchKey, Vec<Vec<Vec<Shares>>>> = BTreeMap::new();
    for dir in dirs {
        for row in ResultsStore::open(dir)?
            .results()?
            .iter()
            .filter(|r| r.method == "smartmixed" && r.status == "ok")
        {
            let path = dir.join("runs").join(&row.key).join("epochs.csv");
            let Ok(mut reader) = csv::Reader::from_path(&path) else {
                continue;
            };
            let mut per_epoch: Vec<Vec<[f64; 6]>> = Vec::new(); // [epoch][layer]
            for record in reader.records() {
                let record = record.with_context(|| format!("reading {}", path.display()))?;
                if &record[1] != "1" {
                    continue;
                }
                let values: Vec<f64> = record
                    .iter()
                    .skip(6)
                    .filter_map(|v| v.parse().ok())
                    .collect();
                per_epoch.push(
                    values
                        .chunks_exact(6)
                        .map(|c| std::array::from_fn(|k| c[k]))
                        .collect(),
                );
            }
            let label = arch_label(row.arch, &row.widths);
            runs.entry((row.depth, label)).or_default().push(per_epoch);
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

fn file_label(arch: &str) -> String {
    arch.replace(' ', "_")
}

/// Draws every figure into `DIR/figures` for the first directory; returns the files written.
pub fn run(dirs: &[PathBuf], bootstrap_seed: u64) -> Result<Vec<PathBuf>> {
    register_font()?;
    let c = compare_dirs(dirs, bootstrap_seed)?;
    let out = dirs[0].join("figures");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut written = save(
        &out,
        "accuracy_vs_depth",
        (1000, 650),
        &|a| accuracy_vs_depth(a, &c, None),
        &|a| accuracy_vs_depth(a, &c, None),
    )?;
    let close = close_to_best(&c, 2.0);
    if !close.is_empty() && close.len() < c.ranks.len() {
        let only = Some(close.as_slice());
        written.extend(save(
            &out,
            "accuracy_vs_depth_zoom",
            (1000, 650),
            &|a| accuracy_vs_depth(a, &c, only),
            &|a| accuracy_vs_depth(a, &c, only),
        )?);
    }
    for ((_, arch), layers) in &c.shares {
        let name = format!("shares_arch_{}", file_label(arch));
        written.extend(save(
            &out,
            &name,
            (900, 600),
            &|a| shares_by_layer(a, arch, layers),
            &|a| shares_by_layer(a, arch, layers),
        )?);
    }
    for ((_, arch), layers) in &phase1_trajectories(dirs)? {
        let name = format!("phase1_shares_arch_{}", file_label(arch));
        let rows_of_panels = layers.len().div_ceil(layers.len().min(4)) as u32;
        let size = (1200, 120 + 300 * rows_of_panels);
        written.extend(save(
            &out,
            &name,
            size,
            &|a| share_trajectories(a, arch, layers),
            &|a| share_trajectories(a, arch, layers),
        )?);
    }
    Ok(written)
}
