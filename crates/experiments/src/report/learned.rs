//! Figures of what the adaptive methods learned, one per method and architecture cell: PAU's
//! curves over [-5, 5] against leaky ReLU (the function they start as a fit of), histograms
//! of PReLU slopes and Swish betas per layer, and each layer's mean soft-mixture weight per
//! function. Read from the runs' checkpoints and summaries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use candle_core::{DType, Device, Tensor};
use mixed_act::{learnable, Learnable, LEAKY_RELU_SLOPE};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::grid::store::ResultsStore;
use crate::report::compare::arch_label;
use crate::report::figure::{save, FONT};
use crate::report::stats::median;
use crate::run::method::Method;

/// One line of a figure.
struct Line {
    label: String,
    color: RGBColor,
    points: Vec<(f64, f64)>,
    dashed: bool,
}

/// What one figure shows.
struct Figure {
    title: String,
    x_label: &'static str,
    y_label: &'static str,
    lines: Vec<Line>,
}

/// Layer `l`'s colour.
fn layer_color(l: usize) -> RGBColor {
    let c = Palette99::pick(l).to_rgba();
    RGBColor(c.0, c.1, c.2)
}

/// Draws the figures of every adaptive method with parameters of its own into `out`, one per
/// method, data set and architecture (runs that differ in other settings are drawn together).
pub fn figures(out: &Path, dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut runs: BTreeMap<(String, &str), Vec<PathBuf>> = BTreeMap::new();
    // A run held in two of the directories counts once (its key names its settings).
    let mut seen = std::collections::BTreeSet::new();
    for dir in dirs {
        for row in ResultsStore::open(dir)?.results()? {
            let Some(method) = Method::from_name(&row.method) else {
                continue;
            };
            if row.status == "ok" && draws(method) && seen.insert(row.key.clone()) {
                let cell = format!("{} {}", row.dataset, arch_label(&row));
                let run = dir.join("runs").join(&row.key);
                runs.entry((cell, method.name())).or_default().push(run);
            }
        }
    }
    let (mut written, mut quartiles) = (Vec::new(), Vec::new());
    for ((cell, name), mut dirs) in runs {
        let method = Method::from_name(name).expect("a name from Method::name");
        if let Some(parameter) = per_neuron_parameter(method) {
            quartiles.extend(summary_quartiles(&cell, method, parameter, &dirs)?);
        }
        // The parameters themselves come from the checkpoints, which results/ does not commit:
        // draw the runs that have one, and say so when none has.
        if method != Method::Softmix {
            dirs.retain(|d| d.join("model.safetensors").is_file());
            if dirs.is_empty() {
                eprintln!(
                    "plot: no figure of what {} learned on {cell}: none of its runs has its \
                     model.safetensors (checkpoints are not committed; rerun the sweep to get them)",
                    method.display_name()
                );
                continue;
            }
        }
        let figure = match method {
            Method::Pau | Method::PauNeuron => pau_curves(&dirs)?,
            Method::Prelu => histograms(&dirs, "slopes", "PReLU slope a")?,
            Method::SwishBeta => histograms(&dirs, "betas", "Swish beta")?,
            _ => mixture_weights(&dirs)?,
        };
        let figure = Figure {
            title: format!(
                "{}, {cell} ({} runs): {}",
                method.display_name(),
                dirs.len(),
                figure.title
            ),
            ..figure
        };
        let name = format!(
            "learned_{}_{}",
            method.name(),
            cell.replace([' ', ','], "_")
        );
        let draw_svg = |area: &DrawingArea<SVGBackend, Shift>| draw(area, &figure);
        let draw_png = |area: &DrawingArea<BitMapBackend, Shift>| draw(area, &figure);
        written.extend(save(out, &name, (900, 600), &draw_svg, &draw_png)?);
        written.push(write_lines(out, &name, &figure)?);
    }
    let path = out.join("learned_parameters.csv");
    if quartiles.is_empty() && path.exists() {
        // Not this plot's: one from earlier results would contradict these.
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    if !quartiles.is_empty() {
        let mut w =
            csv::Writer::from_path(&path).with_context(|| format!("writing {}", path.display()))?;
        for q in &quartiles {
            w.serialize(q)?;
        }
        w.flush()
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// One layer's parameter for a method, data set and architecture (`learned_parameters.csv`):
/// the median over the runs of each run's quartiles over the layer's neurons (from the
/// summaries, which results/ commits).
#[derive(serde::Serialize)]
struct LayerQuartiles {
    cell: String,
    method: &'static str,
    layer: usize,
    parameter: &'static str,
    runs: usize,
    q1: f64,
    median: f64,
    q3: f64,
}

/// The per-neuron parameter whose quartiles a run's summary keeps per layer.
fn per_neuron_parameter(method: Method) -> Option<&'static str> {
    match method {
        Method::Prelu => Some("slopes"),
        Method::SwishBeta => Some("betas"),
        _ => None,
    }
}

fn summary_quartiles(
    cell: &str,
    method: Method,
    parameter: &'static str,
    runs: &[PathBuf],
) -> Result<Vec<LayerQuartiles>> {
    // [layer][statistic] -> one value per run.
    let mut by_layer: Vec<[Vec<f64>; 3]> = Vec::new();
    for run in runs {
        let (path, layers) = learned_layers(run)?;
        for (l, layer) in layers.iter().enumerate() {
            by_layer.resize(by_layer.len().max(l + 1), Default::default());
            for (k, statistic) in ["q1", "median", "q3"].into_iter().enumerate() {
                let value = layer[parameter][statistic].as_f64().ok_or_else(|| {
                    anyhow!(
                        "{}: layer {} has no {parameter}.{statistic}",
                        path.display(),
                        l + 1
                    )
                })?;
                by_layer[l][k].push(value);
            }
        }
    }
    Ok(by_layer
        .into_iter()
        .enumerate()
        .map(|(l, [q1, median, q3])| LayerQuartiles {
            cell: cell.to_string(),
            method: method.name(),
            layer: l + 1,
            parameter,
            runs: median.len(),
            q1: median_of(q1),
            median: median_of(median),
            q3: median_of(q3),
        })
        .collect())
}

/// The median of unsorted values (NaN for none).
fn median_of(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    median(&values).unwrap_or(f64::NAN)
}

/// The figure's lines as `name.csv` (line, x, y): the numbers behind the picture.
fn write_lines(out: &Path, name: &str, figure: &Figure) -> Result<PathBuf> {
    let path = out.join(format!("{name}.csv"));
    let mut w =
        csv::Writer::from_path(&path).with_context(|| format!("writing {}", path.display()))?;
    w.write_record(["line", "x", "y"])?;
    for line in &figure.lines {
        for (x, y) in &line.points {
            w.write_record([line.label.clone(), x.to_string(), y.to_string()])?;
        }
    }
    w.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn draws(method: Method) -> bool {
    matches!(
        method,
        Method::Pau | Method::PauNeuron | Method::Prelu | Method::SwishBeta | Method::Softmix
    )
}

/// The checkpoint's tensors named `hidden.{i}.{name}`, by layer, as f64 rows.
fn hidden_tensors(run: &Path, name: &str) -> Result<Vec<Vec<Vec<f64>>>> {
    let path = run.join("model.safetensors");
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu)
        .with_context(|| format!("reading {}", path.display()))?;
    let mut layers = Vec::new();
    while let Some(t) = tensors.get(&format!("hidden.{}.{name}", layers.len())) {
        layers.push(t.to_dtype(DType::F64)?.to_vec2::<f64>()?);
    }
    Ok(layers)
}

/// A PAU unit's curve at `xs`, through mixed-act's op (the one place its formula lives).
fn pau_curve(xs: &[f64], coefficients: &[f64]) -> Result<Vec<f64>> {
    let x = Tensor::from_vec(xs.to_vec(), (xs.len(), 1), &Device::Cpu)?;
    let c = Tensor::from_vec(coefficients.to_vec(), (1, coefficients.len()), &Device::Cpu)?;
    Ok(learnable(Learnable::Pau, &x, &c)?
        .flatten_all()?
        .to_vec1()?)
}

/// Each layer's learned curve (per run; a unit per neuron drawn as the mean over its units)
/// and leaky ReLU.
fn pau_curves(runs: &[PathBuf]) -> Result<Figure> {
    let xs: Vec<f64> = (0..=200).map(|i| -5.0 + 0.05 * i as f64).collect();
    let mut lines = Vec::new();
    for run in runs {
        for (l, units) in hidden_tensors(run, "coefficients")?.iter().enumerate() {
            let curves = units
                .iter()
                .map(|c| pau_curve(&xs, c))
                .collect::<Result<Vec<_>>>()?;
            let mean = |i: usize| curves.iter().map(|c| c[i]).sum::<f64>() / curves.len() as f64;
            lines.push(Line {
                label: format!("layer {}", l + 1),
                color: layer_color(l),
                points: xs.iter().enumerate().map(|(i, &x)| (x, mean(i))).collect(),
                dashed: false,
            });
        }
    }
    lines.push(Line {
        label: "leaky ReLU (the initial fit)".into(),
        color: BLACK,
        points: xs
            .iter()
            .map(|&x| (x, x.max(0.0) + LEAKY_RELU_SLOPE * x.min(0.0)))
            .collect(),
        dashed: true,
    });
    Ok(Figure {
        title: "learned curves (per neuron: mean over neurons)".into(),
        x_label: "x",
        y_label: "F(x)",
        lines,
    })
}

/// Per layer, the histogram of one parameter per neuron over all runs.
fn histograms(runs: &[PathBuf], name: &str, what: &'static str) -> Result<Figure> {
    let mut by_layer: Vec<Vec<f64>> = Vec::new();
    for run in runs {
        for (l, rows) in hidden_tensors(run, name)?.into_iter().enumerate() {
            by_layer.resize(by_layer.len().max(l + 1), Vec::new());
            by_layer[l].extend(rows.into_iter().map(|r| r[0]));
        }
    }
    let all = by_layer.iter().flatten();
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
        (a.min(v), b.max(v))
    });
    let bins = 30;
    let width = ((hi - lo) / bins as f64).max(1e-9);
    let lines = by_layer
        .iter()
        .enumerate()
        .map(|(l, values)| {
            let mut counts = vec![0f64; bins];
            for v in values {
                counts[(((v - lo) / width) as usize).min(bins - 1)] += 1.0;
            }
            let share = |c: f64| c / values.len().max(1) as f64;
            Line {
                label: format!("layer {}", l + 1),
                color: layer_color(l),
                points: (0..bins)
                    .map(|b| (lo + (b as f64 + 0.5) * width, share(counts[b])))
                    .collect(),
                dashed: false,
            }
        })
        .collect();
    Ok(Figure {
        title: format!("{what} per neuron, share of each layer's neurons per bin"),
        x_label: what,
        y_label: "share of neurons",
        lines,
    })
}

/// A run's summary.json path and its `learned` entries, one per hidden layer (none for a run
/// without them).
fn learned_layers(run: &Path) -> Result<(PathBuf, Vec<serde_json::Value>)> {
    let path = run.join("summary.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let summary: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let layers = summary["learned"].as_array().cloned().unwrap_or_default();
    Ok((path, layers))
}

/// Per function, its mean weight in each layer, averaged over runs.
fn mixture_weights(runs: &[PathBuf]) -> Result<Figure> {
    let mut sums: BTreeMap<String, BTreeMap<usize, Vec<f64>>> = BTreeMap::new();
    for run in runs {
        let (path, layers) = learned_layers(run)?;
        for (l, layer) in layers.iter().enumerate() {
            for (function, w) in layer["mean_weights"].as_object().into_iter().flatten() {
                let w = w
                    .as_f64()
                    .ok_or_else(|| anyhow!("{}: a weight that is not a number", path.display()))?;
                sums.entry(function.clone())
                    .or_default()
                    .entry(l + 1)
                    .or_default()
                    .push(w);
            }
        }
    }
    let lines = sums
        .into_iter()
        .map(|(function, layers)| Line {
            color: crate::report::figure::method_color(&function),
            label: function,
            points: layers
                .into_iter()
                .map(|(l, w)| (l as f64, w.iter().sum::<f64>() / w.len() as f64))
                .collect(),
            dashed: false,
        })
        .collect();
    Ok(Figure {
        title: "mean weight of each function per layer".into(),
        x_label: "hidden layer",
        y_label: "mean softmax weight",
        lines,
    })
}

fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, figure: &Figure) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing: {e:?}");
    let points = figure.lines.iter().flat_map(|l| &l.points);
    let (x0, x1, y0, y1) = points.fold(
        (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ),
        |(a, b, c, d), &(x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)),
    );
    if !(x0.is_finite() && y0.is_finite()) {
        return Ok(());
    }
    let pad = ((y1 - y0) * 0.05).max(1e-6);
    let mut chart = ChartBuilder::on(area)
        .caption(&figure.title, (FONT, 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1.max(x0 + 1e-9), (y0 - pad)..(y1 + pad))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(figure.x_label)
        .y_desc(figure.y_label)
        .label_style((FONT, 13))
        .draw()
        .map_err(err)?;
    let mut labelled = std::collections::HashSet::new();
    for line in &figure.lines {
        let style = ShapeStyle::from(line.color).stroke_width(2);
        let series = if line.dashed {
            chart.draw_series(DashedLineSeries::new(line.points.clone(), 8, 5, style))
        } else {
            chart.draw_series(LineSeries::new(line.points.clone(), style))
        }
        .map_err(err)?;
        if labelled.insert(line.label.clone()) {
            let color = line.color;
            series.label(line.label.clone()).legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
            });
        }
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    Ok(())
}
