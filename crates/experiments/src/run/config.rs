//! Settings of one training run: presets, TOML config files, command-line overrides, and the
//! validation that turns them into a [`TrainConfig`] (every error before any work starts).
//!
//! Precedence, lowest first: the `default` preset, the config file (which may name a preset of
//! its own), the `--preset` flag, then individual flags.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Result;
use mixed_act::Pool;
use serde::{Deserialize, Serialize};

use crate::bail_input;
use crate::error::input_error;
use crate::run::arch::architecture;
pub use crate::run::method::{Method, Phase2Init};
use crate::run::mnist1d::{Mnist1dArgs, SETTABLE};
pub use crate::run::net::NetName;
use crate::run::net::{self, LayerSpec, Planned, Shape};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    Mnist,
    FashionMnist,
    /// Generated in-process (`run::mnist1d`), the package's published arguments.
    #[serde(rename = "mnist1d")]
    #[value(name = "mnist1d")]
    Mnist1d,
    /// 32x32 colour images (`run::cifar`): the binary batches from `--data-dir`, else the hub.
    #[serde(rename = "cifar10")]
    #[value(name = "cifar10")]
    Cifar10,
}

impl DatasetName {
    pub fn name(self) -> &'static str {
        match self {
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Mnist1d => "mnist1d",
            DatasetName::Cifar10 => "cifar10",
        }
    }

    /// One example's shape: 28x28 pixels of one channel, 32x32 of three, or MNIST-1D's signal
    /// as `mnist1d` makes it.
    pub fn input_shape(self, mnist1d: &Mnist1dArgs) -> Shape {
        let (spatial, channels) = match self {
            DatasetName::Mnist | DatasetName::FashionMnist => (vec![28, 28], 1),
            DatasetName::Mnist1d => (vec![mnist1d.final_seq_length], 1),
            DatasetName::Cifar10 => (vec![32, 32], 3),
        };
        Shape { spatial, channels }
    }

    /// Whether the data set is read from files (IDX or the hub) rather than generated.
    pub fn is_read(self) -> bool {
        self != DatasetName::Mnist1d
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Corrected semantics and a budget that fits a CPU.
    Default,
    /// The reference code, exactly.
    Reference,
    /// MNIST-1D with the package's published training setup where it fits ours: Adam at lr
    /// 1e-2, batch 100, 200 epochs (its notebooks' 8,000 steps over 4,000 signals); selection
    /// methods select for 80 of them.
    Mnist1d,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// Cross-entropy on the logits.
    Logits,
    /// Softmax, then cross-entropy on the probabilities (the reference's double softmax).
    Probs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum EvalSelection {
    /// Argmax of the logits (deterministic).
    Argmax,
    /// A Gumbel sample, as the reference does.
    Sample,
}

/// A clamp bound or `none`; written `--clamp 10`, `--clamp none`, `clamp = 10.0` or `clamp = "none"`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClampSetting(pub Option<f64>);

impl FromStr for ClampSetting {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        if s.trim().eq_ignore_ascii_case("none") {
            return Ok(ClampSetting(None));
        }
        let v: f64 = s.trim().parse().map_err(|_| {
            input_error(format!(
                "--clamp must be a positive number or 'none', got '{s}'"
            ))
        })?;
        Ok(ClampSetting(Some(v)))
    }
}

impl Serialize for ClampSetting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(v) => s.serialize_f64(v),
            None => s.serialize_str("none"),
        }
    }
}

impl<'de> Deserialize<'de> for ClampSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(v) => Ok(ClampSetting(Some(v))),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// SmartMixed's candidate pool: `--pool relu,tanh,gelu`, `pool = "relu,tanh,gelu"` or
/// `pool = ["relu", "tanh", "gelu"]`; `paper` stands for the paper's six (also inside a list:
/// `paper,gelu`), `all` for every candidate (inside a list, everything else repeats it).
/// Written as the comma-separated member list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PoolSetting(pub Pool);

impl PoolSetting {
    pub fn is_paper(&self) -> bool {
        self.0.is_paper()
    }
}

impl FromStr for PoolSetting {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        // `paper` inside a list expands to the six, so `paper,gelu` is the paper's pool + GELU.
        let expanded: Vec<String> = s
            .split(',')
            .map(|name| match name.trim().to_lowercase().as_str() {
                "paper" if s.contains(',') => Pool::paper().to_string(),
                "all" if s.contains(',') => Pool::all().to_string(),
                _ => name.to_string(),
            })
            .collect();
        expanded
            .join(",")
            .parse()
            .map(PoolSetting)
            .map_err(|e| input_error(format!("--pool '{s}': {e}")))
    }
}

impl fmt::Display for PoolSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for PoolSetting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for PoolSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            List(Vec<String>),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Text(t) => t,
            Raw::List(names) => names.join(","),
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// MNIST-1D's generator arguments that differ from the published ones, by the package's names:
/// `--mnist1d num_samples=10000,shuffle_seq=true`, `mnist1d = "num_samples=10000"` or a table
/// (`[mnist1d]` in a config file, `{ num_samples = 10000 }` on a grid axis; `padding = [36, 60]`
/// there, `padding=36-60` in the text form); `published` stands for none. Each value is checked
/// for its type as it is read, the ranges when the run resolves. Written as its text form.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Mnist1dSetting(Vec<(&'static str, String)>);

impl Mnist1dSetting {
    /// Sets `key` (replacing an earlier value), checking the key and the value's type.
    fn insert(&mut self, key: &str, value: &str) -> Result<()> {
        let Some(&key) = SETTABLE.iter().find(|&&k| k == key.trim()) else {
            bail_input!(
                "mnist1d: unknown argument '{}' (the arguments: {})",
                key.trim(),
                SETTABLE.join(", ")
            );
        };
        Mnist1dArgs::default()
            .set(key, value)
            .map_err(|e| input_error(format!("mnist1d: {key} = {}: {e}", value.trim())))?;
        self.0.retain(|(k, _)| *k != key);
        self.0.push((key, value.trim().to_string()));
        self.0
            .sort_by_key(|(k, _)| SETTABLE.iter().position(|s| s == k));
        Ok(())
    }

    /// `self` with every argument `top` sets replaced by `top`'s.
    pub fn then(mut self, top: &Mnist1dSetting) -> Mnist1dSetting {
        for (key, value) in &top.0 {
            self.insert(key, value).expect("checked when it was read");
        }
        self
    }

    /// The published arguments with these applied (ranges unchecked: see
    /// [`Mnist1dArgs::check`]).
    pub fn args(&self) -> Mnist1dArgs {
        let mut args = Mnist1dArgs::default();
        for (key, value) in &self.0 {
            args.set(key, value).expect("checked when it was read");
        }
        args
    }
}

impl FromStr for Mnist1dSetting {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let mut setting = Mnist1dSetting::default();
        if matches!(s.trim(), "" | "published") {
            return Ok(setting);
        }
        for item in s.split(',') {
            let Some((key, value)) = item.split_once('=') else {
                bail_input!(
                    "mnist1d: '{}' is not key=value (for example num_samples=10000)",
                    item.trim()
                );
            };
            setting.insert(key, value)?;
        }
        Ok(setting)
    }
}

impl fmt::Display for Mnist1dSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("published");
        }
        let items: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        f.write_str(&items.join(","))
    }
}

impl Serialize for Mnist1dSetting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Mnist1dSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let text = |v: &toml::Value| -> Option<String> {
            Some(match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(x) => x.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                // `padding = [36, 60]`.
                toml::Value::Array(items) => match items.as_slice() {
                    [toml::Value::Integer(lo), toml::Value::Integer(hi)] => format!("{lo}-{hi}"),
                    _ => return None,
                },
                _ => return None,
            })
        };
        match toml::Value::deserialize(d)? {
            toml::Value::String(s) => s.parse().map_err(D::Error::custom),
            toml::Value::Table(table) => {
                let mut setting = Mnist1dSetting::default();
                for (key, value) in &table {
                    let value = text(value).ok_or_else(|| {
                        D::Error::custom(format!(
                            "mnist1d: {key} = {value}: not a number, true/false or [low, high]"
                        ))
                    })?;
                    setting.insert(key, &value).map_err(D::Error::custom)?;
                }
                Ok(setting)
            }
            other => Err(D::Error::custom(format!(
                "mnist1d must be a table of the generator's arguments or text like \
                 \"num_samples=10000,shuffle_seq=true\", got {other}"
            ))),
        }
    }
}

/// Where to run: `auto`, `cpu`, `cuda`, `cuda:N` or `metal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda(usize),
    Metal,
}

impl FromStr for DeviceChoice {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_lowercase();
        Ok(match s.as_str() {
            "auto" => DeviceChoice::Auto,
            "cpu" => DeviceChoice::Cpu,
            "cuda" => DeviceChoice::Cuda(0),
            "metal" => DeviceChoice::Metal,
            _ => match s.strip_prefix("cuda:").map(str::parse) {
                Some(Ok(n)) => DeviceChoice::Cuda(n),
                _ => bail_input!("--device must be auto, cpu, cuda, cuda:N or metal, got '{s}'"),
            },
        })
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceChoice::Metal => f.write_str("metal"),
        }
    }
}

impl Serialize for DeviceChoice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for DeviceChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Every setting of a run, each optional: one layer of the precedence chain (a preset, a config
/// file or the flags). The one declaration of each setting's name, its parsing and its help: as
/// a TOML key (unknown keys in a file are rejected) and as a `train` flag.
#[derive(Clone, Debug, Default, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `default` (corrected semantics, CPU budget) or `reference` (the reference code exactly).
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetName>,
    /// MNIST-1D's generator arguments that differ from the published ones, comma-separated
    /// key=value: num_samples, train_split, padding (low-high), scale_coeff, max_translation,
    /// corr_noise_scale, iid_noise_scale, shear_scale, shuffle_seq, final_seq_length, seed; e.g.
    /// num_samples=10000,shuffle_seq=true [default: published].
    #[arg(long)]
    // Unset, left out of a manifest's overrides (which listed every other setting before it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mnist1d: Option<Mnist1dSetting>,
    /// Directory with the four IDX files, raw or .gz [default: $SMARTMIXED_DATA_DIR, else the hub].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Architecture id of the reference, 1..=18 [default: 3].
    #[arg(long, conflicts_with = "widths")]
    pub arch: Option<u32>,
    /// Explicit hidden widths, e.g. 512,256,128,64.
    #[arg(long, value_delimiter = ',', conflicts_with = "net")]
    pub widths: Option<Vec<usize>>,
    /// A named network with convolutions: mnist1d-cnn, mnist1d-cnn5 (1-D, for MNIST-1D),
    /// lenet5, conv4 (2-D, for images); its activations act per channel.
    #[arg(long, value_enum, conflicts_with = "arch")]
    // Unset, left out of a manifest's overrides (which listed every other setting before it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net: Option<NetName>,
    /// smartmixed; an adaptive method to compare it with: softmix, softmix_freeze, prelu,
    /// swish_beta, pau, pau_neuron; or a fixed function: relu, sigmoid, tanh, leaky_relu, elu,
    /// selu, gelu, silu, mish, softplus or identity [default: smartmixed].
    #[arg(long)]
    pub method: Option<Method>,
    /// Total epochs (SmartMixed: phase 1 + phase 2).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Selection-phase epochs (smartmixed, softmix_freeze).
    #[arg(long)]
    pub phase1_epochs: Option<usize>,
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Seed of initialisation, batch order and Gumbel noise.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Seed of the train/validation split (kept apart so every model of a sweep sees one split).
    #[arg(long)]
    pub split_seed: Option<u64>,
    /// Softmax temperature of SmartMixed's Gumbel sample and of the soft mixtures.
    #[arg(long)]
    pub tau: Option<f64>,
    /// Phase-1 clamp bound, or `none`.
    #[arg(long)]
    pub clamp: Option<ClampSetting>,
    /// Gradient-norm clipping bound, or `none`.
    #[arg(long)]
    pub grad_clip: Option<ClampSetting>,
    #[arg(long, value_enum)]
    pub phase2_init: Option<Phase2Init>,
    #[arg(long, value_enum)]
    pub loss: Option<LossKind>,
    #[arg(long, value_enum)]
    pub eval_selection: Option<EvalSelection>,
    /// The candidates of SmartMixed and the soft mixtures, comma-separated, e.g. relu,tanh,gelu; `paper` = the paper's six
    /// (also within a list: paper,gelu), `all` = every candidate [default: paper].
    #[arg(long)]
    pub pool: Option<PoolSetting>,
    /// auto, cpu, cuda, cuda:N or metal.
    #[arg(long)]
    pub device: Option<DeviceChoice>,
}

impl Settings {
    /// `self` with every value that `top` sets replaced by `top`'s.
    pub fn overlay(self, top: &Settings) -> Settings {
        // Field by field through the settings' own serialisation (TOML keeps NaN and leaves
        // unset settings out), so that no list of the fields is kept here.
        let table = |s: &Settings| match toml::Value::try_from(s) {
            Ok(toml::Value::Table(t)) => t,
            _ => unreachable!("settings serialise as a TOML table"),
        };
        let (mut merged, top) = (table(&self), table(top));
        // An architecture id, explicit widths and a named net are three ways of saying one
        // thing: the upper layer's choice replaces the lower layer's, whichever form either used.
        let network = ["arch", "widths", "net"];
        if network.iter().any(|k| top.contains_key(*k)) {
            network.iter().for_each(|k| {
                merged.remove(*k);
            });
        }
        merged.extend(top);
        let mut settings: Settings = toml::Value::Table(merged)
            .try_into()
            .expect("merged settings read back");
        // The generator's arguments merge one by one: a flag setting one keeps a file's others;
        // `published` (no arguments) resets them all.
        if let (Some(lower), Some(upper)) = (self.mnist1d, &settings.mnist1d) {
            if *upper != Mnist1dSetting::default() {
                settings.mnist1d = Some(lower.then(upper));
            }
        }
        settings
    }

    /// The settings a preset stands for.
    pub fn preset(preset: Preset) -> Settings {
        let common = Settings {
            preset: Some(preset),
            tau: Some(0.3),
            clamp: Some(ClampSetting(Some(10.0))),
            grad_clip: Some(ClampSetting(Some(1.0))),
            ..Settings::default()
        };
        match preset {
            Preset::Mnist1d => Settings {
                dataset: Some(DatasetName::Mnist1d),
                lr: Some(1e-2),
                batch_size: Some(100),
                epochs: Some(200),
                phase1_epochs: Some(80),
                loss: Some(LossKind::Logits),
                phase2_init: Some(Phase2Init::Warm),
                eval_selection: Some(EvalSelection::Argmax),
                ..common
            },
            Preset::Reference => Settings {
                lr: Some(1e-4),
                batch_size: Some(128),
                epochs: Some(400),
                phase1_epochs: Some(50),
                loss: Some(LossKind::Probs),
                phase2_init: Some(Phase2Init::Fresh),
                eval_selection: Some(EvalSelection::Sample),
                ..common
            },
            // Chosen by measurement on two CPU cores: see docs/how-the-defaults-were-chosen.md.
            Preset::Default => Settings {
                lr: Some(DEFAULT_LR),
                batch_size: Some(DEFAULT_BATCH_SIZE),
                epochs: Some(DEFAULT_EPOCHS),
                phase1_epochs: Some(DEFAULT_PHASE1_EPOCHS),
                loss: Some(LossKind::Logits),
                phase2_init: Some(Phase2Init::Warm),
                eval_selection: Some(EvalSelection::Argmax),
                ..common
            },
        }
    }

    /// The first selection setting set here that `method` does not read (a flag that would
    /// silently change nothing).
    pub fn unread_by(&self, method: Method) -> Option<&'static str> {
        // The settings' serialisation leaves unset ones out (as `overlay` relies on).
        let set = match toml::Value::try_from(self) {
            Ok(toml::Value::Table(t)) => t,
            _ => unreachable!("settings serialise as a TOML table"),
        };
        crate::run::setting::selection_settings()
            .find(|&name| set.contains_key(name) && !method.reads(name))
    }

    /// Reads a TOML config file; unknown keys and bad values name the file and key.
    pub fn from_toml_file(path: &Path) -> Result<Settings> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| input_error(format!("cannot read config file {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| {
            input_error(format!(
                "invalid config file {}: {}",
                path.display(),
                e.to_string().trim()
            ))
        })
    }
}

/// The architecture id (if any) and the hidden units of the network the settings name.
fn network(s: &Settings) -> Result<(Option<u32>, Vec<usize>)> {
    let (arch, widths) = match (s.arch, s.widths.clone(), s.net) {
        (Some(_), Some(_), _) => bail_input!("give either --arch or --widths, not both"),
        (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
            bail_input!("give one of --arch, --widths and --net")
        }
        (Some(id), None, None) => match architecture(id) {
            Some((_, widths)) => (Some(id), widths.to_vec()),
            None => bail_input!("--arch {id} is not an architecture id (valid: 1..=18)"),
        },
        (None, Some(widths), None) => (None, widths),
        (None, None, Some(net)) => (None, net::hidden_units_of(&net.layers())),
        (None, None, None) => unreachable!("resolve() defaults the architecture"),
    };
    if widths.is_empty() {
        bail_input!("--widths must list at least one hidden width");
    }
    if let Some(i) = widths.iter().position(|&w| w == 0) {
        bail_input!("--widths: hidden layer {} has width 0", i + 1);
    }
    Ok((arch, widths))
}

/// MNIST-1D's generator arguments, checked; the published ones for other data sets, which
/// must not set any.
fn generator_arguments(
    dataset: DatasetName,
    setting: Option<Mnist1dSetting>,
) -> Result<Mnist1dArgs> {
    Ok(match (dataset, setting) {
        (DatasetName::Mnist1d, setting) => {
            let args = setting.unwrap_or_default().args();
            args.check()
                .map_err(|e| input_error(format!("mnist1d: {e}")))?;
            args
        }
        (_, Some(setting)) if setting != Mnist1dSetting::default() => bail_input!(
            "mnist1d = \"{setting}\" sets MNIST-1D's generator, but the data set is {}",
            dataset.name()
        ),
        (_, _) => Mnist1dArgs::default(),
    })
}

/// Whether the named net fits the data set's inputs: its dimensions, and every layer's.
fn check_fit(net: NetName, dataset: DatasetName, mnist1d: &Mnist1dArgs) -> Result<()> {
    let input = dataset.input_shape(mnist1d);
    if input.spatial.len() != net.dims() {
        bail_input!(
            "--net {net} is a {}-D net, but {}'s inputs are {}-D ({input})",
            net.dims(),
            dataset.name(),
            input.spatial.len()
        );
    }
    net::plan(&net.layers(), &input).map_err(|e| {
        input_error(format!(
            "--net {net} does not fit {}'s input ({}): {e}",
            dataset.name(),
            dataset.input_shape(mnist1d)
        ))
    })?;
    Ok(())
}

pub const DEFAULT_LR: f64 = 1e-3;
pub const DEFAULT_BATCH_SIZE: usize = 64;
pub const DEFAULT_EPOCHS: usize = 35;
pub const DEFAULT_PHASE1_EPOCHS: usize = 15;

/// A settings enum as the kebab-case name it has in files.
pub fn kebab<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Everything a run needs, resolved and checked. Saved as the run's `config.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainConfig {
    pub preset: Preset,
    pub dataset: DatasetName,
    /// MNIST-1D's generator arguments; left out of config.json (and so of the run key) when
    /// they are the published ones, and always for the other data sets.
    #[serde(default, skip_serializing_if = "Mnist1dArgs::is_published")]
    pub mnist1d: Mnist1dArgs,
    pub data_dir: Option<PathBuf>,
    /// Architecture id when the widths came from one.
    pub arch: Option<u32>,
    /// The named net with convolutions (absent for MLPs, so that their config.json and run
    /// keys are as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<NetName>,
    /// Hidden units per hidden layer: an MLP's widths, a net's channels and neurons.
    pub widths: Vec<usize>,
    pub method: Method,
    pub epochs: usize,
    /// Phase-1 epochs (SmartMixed only; 0 for baselines).
    pub phase1_epochs: usize,
    pub lr: f64,
    pub batch_size: usize,
    pub seed: u64,
    pub split_seed: u64,
    pub tau: f64,
    pub clamp: Option<f64>,
    pub grad_clip: Option<f64>,
    pub phase2_init: Phase2Init,
    pub loss: LossKind,
    pub eval_selection: EvalSelection,
    /// SmartMixed's candidates (baselines: the paper's, unread). Left out of config.json (and
    /// so of the run key) when it is the paper's, so that runs from before pools keep their
    /// keys and files.
    #[serde(default, skip_serializing_if = "PoolSetting::is_paper")]
    pub pool: PoolSetting,
    pub device: DeviceChoice,
}

impl TrainConfig {
    /// Resolves the precedence chain and validates every value.
    pub fn resolve(
        file: Option<&Path>,
        preset_flag: Option<Preset>,
        flags: &Settings,
    ) -> Result<TrainConfig> {
        let mut settings = Settings::preset(Preset::Default);
        if let Some(path) = file {
            let from_file = Settings::from_toml_file(path)?;
            if let Some(p) = from_file.preset {
                settings = settings.overlay(&Settings::preset(p));
            }
            settings = settings.overlay(&from_file);
        }
        if let Some(p) = preset_flag {
            settings = settings.overlay(&Settings::preset(p));
        }
        settings = settings.overlay(flags);
        if settings.arch.is_none() && settings.widths.is_none() && settings.net.is_none() {
            settings.arch = Some(3);
        }
        TrainConfig::validate(settings)
    }

    fn validate(s: Settings) -> Result<TrainConfig> {
        let (arch, widths) = network(&s)?;
        let method = s.method.unwrap_or(Method::SmartMixed);
        let epochs = s.epochs.unwrap_or(DEFAULT_EPOCHS);
        if epochs == 0 {
            bail_input!("--epochs must be at least 1");
        }
        let phase1_epochs = match method.reads("phase1_epochs") {
            true => {
                let p = s.phase1_epochs.unwrap_or(DEFAULT_PHASE1_EPOCHS);
                if p == 0 || p >= epochs {
                    bail_input!(
                        "--phase1-epochs must be at least 1 and below --epochs ({epochs}), got {p}"
                    );
                }
                p
            }
            false => 0,
        };
        let lr = s.lr.unwrap_or(DEFAULT_LR);
        if !(lr.is_finite() && lr > 0.0) {
            bail_input!("--lr must be a positive finite number, got {lr}");
        }
        let batch_size = s.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
        if batch_size == 0 {
            bail_input!("--batch-size must be at least 1");
        }
        let tau = s.tau.unwrap_or(0.3);
        if !(tau.is_finite() && tau > 0.0) {
            bail_input!("--tau must be a positive finite number, got {tau}");
        }
        let clamp = s.clamp.unwrap_or(ClampSetting(Some(10.0))).0;
        if let Some(c) = clamp {
            if !(c.is_finite() && c > 0.0) {
                bail_input!("--clamp must be a positive finite number or 'none', got {c}");
            }
        }
        let grad_clip = s.grad_clip.unwrap_or(ClampSetting(Some(1.0))).0;
        if let Some(c) = grad_clip {
            if !(c.is_finite() && c > 0.0) {
                bail_input!("grad_clip must be a positive finite number or 'none', got {c}");
            }
        }
        let dataset = s.dataset.unwrap_or(DatasetName::Mnist);
        let mnist1d = generator_arguments(dataset, s.mnist1d.clone())?;
        if let Some(net) = s.net {
            check_fit(net, dataset, &mnist1d)?;
        }
        Ok(TrainConfig {
            preset: s.preset.unwrap_or(Preset::Default),
            dataset,
            mnist1d,
            data_dir: s.data_dir,
            arch,
            net: s.net,
            widths,
            method,
            epochs,
            phase1_epochs,
            lr,
            batch_size,
            seed: s.seed.unwrap_or(42),
            split_seed: s.split_seed.unwrap_or(42),
            tau,
            clamp,
            grad_clip,
            phase2_init: s.phase2_init.unwrap_or(Phase2Init::Warm),
            loss: s.loss.unwrap_or(LossKind::Logits),
            eval_selection: s.eval_selection.unwrap_or(EvalSelection::Argmax),
            // A baseline reads no pool: it keeps the default, so its key does not depend on one.
            pool: match method.reads("pool") {
                true => s.pool.unwrap_or_default(),
                false => PoolSetting::default(),
            },
            device: s.device.unwrap_or(DeviceChoice::Auto),
        })
    }

    /// The network's layers: the named net's, or an MLP of the widths.
    pub fn layers(&self) -> Vec<LayerSpec> {
        match self.net {
            Some(net) => net.layers(),
            None => net::mlp(&self.widths),
        }
    }

    /// The layers with their shapes on this run's data (checked when the config resolved).
    pub fn plan(&self) -> Result<Vec<Planned>> {
        net::plan(&self.layers(), &self.dataset.input_shape(&self.mnist1d))
            .map_err(|e| input_error(format!("the network on {}: {e}", self.dataset.name())))
    }

    /// The data directory: the setting, else `SMARTMIXED_DATA_DIR`, else none (the hub).
    pub fn data_dir_or_env(&self) -> Option<PathBuf> {
        self.data_dir
            .clone()
            .or_else(|| std::env::var_os("SMARTMIXED_DATA_DIR").map(PathBuf::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mixed_act::Activation;

    /// Every declared setting (run/setting.rs) is a flag of `train`, and so a key of config and
    /// sweep files, which read the same struct.
    #[test]
    fn every_declared_setting_is_a_flag() {
        use clap::Args;
        let command = Settings::augment_args(clap::Command::new("train"));
        for name in crate::run::setting::names() {
            let flag = name.replace('_', "-");
            assert!(
                command
                    .get_arguments()
                    .any(|a| a.get_long() == Some(flag.as_str())),
                "no --{flag} for the setting {name}"
            );
        }
    }

    fn flags(f: impl FnOnce(&mut Settings)) -> Settings {
        let mut s = Settings::default();
        f(&mut s);
        s
    }

    #[test]
    fn presets_and_flags_resolve_in_order() {
        let reference =
            TrainConfig::resolve(None, Some(Preset::Reference), &Settings::default()).unwrap();
        assert_eq!(
            (reference.lr, reference.epochs, reference.phase1_epochs),
            (1e-4, 400, 50)
        );
        assert_eq!(reference.loss, LossKind::Probs);
        assert_eq!(reference.phase2_init, Phase2Init::Fresh);
        assert_eq!(reference.eval_selection, EvalSelection::Sample);
        assert_eq!(
            (reference.clamp, reference.tau, reference.batch_size),
            (Some(10.0), 0.3, 128)
        );
        assert_eq!(reference.widths, vec![512, 256, 128, 64]);

        let cfg =
            TrainConfig::resolve(None, Some(Preset::Reference), &flags(|s| s.lr = Some(0.01)))
                .unwrap();
        assert_eq!(cfg.lr, 0.01);
        assert_eq!(cfg.loss, LossKind::Probs);

        let dir = std::env::temp_dir().join(format!("smartmixed-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("run.toml");
        std::fs::write(
            &file,
            "preset = \"reference\"\nlr = 0.5\nwidths = [32, 16]\nclamp = \"none\"\n",
        )
        .unwrap();
        let cfg = TrainConfig::resolve(Some(&file), None, &Settings::default()).unwrap();
        assert_eq!((cfg.lr, cfg.epochs, cfg.clamp), (0.5, 400, None));
        assert_eq!((cfg.arch, cfg.widths.clone()), (None, vec![32, 16]));
        // The --preset flag overrides the file; a flag overrides both, --arch replaces widths.
        let cfg = TrainConfig::resolve(
            Some(&file),
            Some(Preset::Default),
            &flags(|s| s.arch = Some(1)),
        )
        .unwrap();
        assert_eq!(
            (cfg.lr, cfg.arch, cfg.widths.clone()),
            (DEFAULT_LR, Some(1), vec![512])
        );

        std::fs::write(&file, "learning_rate = 0.5\n").unwrap();
        let err = TrainConfig::resolve(Some(&file), None, &Settings::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("run.toml") && err.contains("learning_rate"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_values_name_the_flag() {
        let cases: Vec<(Settings, &str)> = vec![
            (flags(|s| s.epochs = Some(0)), "--epochs"),
            (
                flags(|s| (s.epochs, s.phase1_epochs) = (Some(5), Some(5))),
                "--phase1-epochs",
            ),
            (flags(|s| s.lr = Some(f64::NAN)), "--lr"),
            (flags(|s| s.lr = Some(-1.0)), "--lr"),
            (flags(|s| s.batch_size = Some(0)), "--batch-size"),
            (flags(|s| s.tau = Some(0.0)), "--tau"),
            (flags(|s| s.widths = Some(vec![])), "--widths"),
            (flags(|s| s.widths = Some(vec![4, 0])), "width 0"),
            (flags(|s| s.arch = Some(19)), "--arch 19"),
            (
                flags(|s| s.clamp = Some(ClampSetting(Some(-2.0)))),
                "--clamp",
            ),
        ];
        for (settings, needle) in cases {
            let err = TrainConfig::resolve(None, None, &settings).unwrap_err();
            assert!(err.downcast_ref::<crate::error::InputError>().is_some());
            assert!(err.to_string().contains(needle), "{needle}: {err}");
        }
        assert_eq!(
            "gelu".parse::<Method>().unwrap(),
            Method::Baseline(Activation::Gelu)
        );
        let err = "swish".parse::<Method>().unwrap_err().to_string();
        assert!(err.contains("swish") && err.contains("smartmixed"), "{err}");
        assert_eq!(
            "LeakyReLU".parse::<Method>().unwrap(),
            Method::Baseline(Activation::LeakyRelu)
        );
        assert_eq!("smart-mixed".parse::<Method>().unwrap(), Method::SmartMixed);
        assert_eq!(
            "cuda:1".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(1)
        );
        assert!("tpu".parse::<DeviceChoice>().is_err());
    }

    #[test]
    fn pools_resolve_parse_and_stay_out_of_the_default_config() {
        let cfg = TrainConfig::resolve(
            None,
            None,
            &flags(|s| s.pool = Some("relu, ELU,gelu".parse().unwrap())),
        )
        .unwrap();
        assert_eq!(cfg.pool.to_string(), "relu,elu,gelu");
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(json.contains("\"pool\":\"relu,elu,gelu\""), "{json}");
        let back: TrainConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cfg);
        // The paper's pool is not written, and a config.json without the key reads as it.
        let default = TrainConfig::resolve(None, None, &Settings::default()).unwrap();
        let json = serde_json::to_string(&default).unwrap();
        assert!(!json.contains("pool"), "{json}");
        assert!(serde_json::from_str::<TrainConfig>(&json)
            .unwrap()
            .pool
            .is_paper());
        // A baseline reads no pool.
        let relu = TrainConfig::resolve(
            None,
            None,
            &flags(|s| {
                s.method = Some(Method::Baseline(Activation::Relu));
                s.pool = Some("relu,gelu".parse().unwrap());
            }),
        )
        .unwrap();
        assert!(relu.pool.is_paper());
        // `paper` inside a list, lists in TOML, and the errors.
        let wide: PoolSetting = "paper,gelu,silu".parse().unwrap();
        assert_eq!(wide.0.len(), 8);
        let s: Settings = toml::from_str("pool = [\"tanh\", \"mish\"]").unwrap();
        assert_eq!(s.pool.unwrap().to_string(), "tanh,mish");
        for (bad, needle) in [
            ("relu,swish", "unknown activation 'swish'"),
            ("relu,relu", "'relu' appears twice"),
            ("", "empty"),
        ] {
            let err = bad.parse::<PoolSetting>().unwrap_err();
            assert!(err.downcast_ref::<crate::error::InputError>().is_some());
            let msg = err.to_string();
            assert!(msg.contains("--pool") && msg.contains(needle), "{msg}");
        }
    }

    /// MNIST-1D's generator arguments: both written forms, merging through the precedence
    /// chain, the published ones kept out of config.json, and every bad value named.
    #[test]
    fn mnist1d_arguments_parse_merge_and_name_their_errors() {
        let text: Mnist1dSetting = "shuffle_seq=true, num_samples=10000,padding=30-50"
            .parse()
            .unwrap();
        // Listed in the package's order whatever the order written.
        assert_eq!(
            text.to_string(),
            "num_samples=10000,padding=30-50,shuffle_seq=true"
        );
        let table: Settings = toml::from_str(
            "[mnist1d]\nnum_samples = 10000\npadding = [30, 50]\nshuffle_seq = true\n",
        )
        .unwrap();
        assert_eq!(table.mnist1d.as_ref(), Some(&text));
        let args = text.args();
        assert_eq!(
            (args.num_samples, args.padding, args.shuffle_seq, args.seed),
            (10000, (30, 50), true, 42)
        );
        assert_eq!(
            "published".parse::<Mnist1dSetting>().unwrap(),
            Mnist1dSetting::default()
        );

        // A flag setting one argument keeps the file's others; the same key: the flag's.
        let dir = std::env::temp_dir().join(format!("smartmixed-mnist1d-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("run.toml");
        std::fs::write(
            &file,
            "dataset = \"mnist1d\"\n[mnist1d]\nnum_samples = 2000\nseed = 3\n",
        )
        .unwrap();
        let top = flags(|s| s.mnist1d = Some("seed=9,final_seq_length=60".parse().unwrap()));
        let cfg = TrainConfig::resolve(Some(&file), None, &top).unwrap();
        assert_eq!(
            (
                cfg.mnist1d.num_samples,
                cfg.mnist1d.seed,
                cfg.mnist1d.final_seq_length
            ),
            (2000, 9, 60)
        );
        assert_eq!(
            cfg.mnist1d.label(),
            "num_samples=2000,final_seq_length=60,seed=9"
        );
        // `published` over a file's arguments resets them.
        let reset = flags(|s| s.mnist1d = Some("published".parse().unwrap()));
        let published = TrainConfig::resolve(Some(&file), None, &reset).unwrap();
        assert!(published.mnist1d.is_published(), "{:?}", published.mnist1d);
        let json = serde_json::to_value(&cfg).unwrap();
        assert_eq!(json["mnist1d"]["num_samples"], 2000);
        let back: TrainConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, cfg);
        std::fs::remove_dir_all(&dir).unwrap();

        // The published arguments (set or not) stay out of config.json, so run keys from
        // before the setting hold.
        for setting in [None, Some("num_samples=5000")] {
            let cfg = TrainConfig::resolve(
                None,
                Some(Preset::Mnist1d),
                &flags(|s| s.mnist1d = setting.map(|t: &str| t.parse().unwrap())),
            )
            .unwrap();
            assert!(cfg.mnist1d.is_published());
            let json = serde_json::to_string(&cfg).unwrap();
            assert!(!json.contains("mnist1d\":{"), "{json}");
        }

        // Bad input names the setting and the argument.
        for (bad, needle) in [
            (
                "num_samples=many",
                "num_samples = many: 'many' is not a whole number",
            ),
            ("iid_noise_scale=-0.1", "iid_noise_scale = -0.1"),
            ("corr_noise_scale=-1", "corr_noise_scale = -1"),
            ("final_seq_length=1", "final_seq_length = 1: at least 2"),
            ("num_samples=5", "num_samples = 5: at least 10"),
            ("num_samples=12", "leaves 8 training signals"),
            ("train_split=1", "train_split = 1"),
            ("padding=60-36", "padding"),
            ("padding=36", "'36' is not two whole numbers"),
            ("noise=1", "unknown argument 'noise'"),
            ("shuffle_seq", "'shuffle_seq' is not key=value"),
        ] {
            let err = bad
                .parse::<Mnist1dSetting>()
                .and_then(|m| {
                    TrainConfig::resolve(
                        None,
                        None,
                        &flags(|s| {
                            s.dataset = Some(DatasetName::Mnist1d);
                            s.mnist1d = Some(m);
                        }),
                    )
                })
                .unwrap_err();
            assert!(err.downcast_ref::<crate::error::InputError>().is_some());
            let msg = err.to_string();
            assert!(
                msg.contains("mnist1d") && msg.contains(needle),
                "{bad}: {msg}"
            );
        }
        let err = toml::from_str::<Settings>("[mnist1d]\nshear_scale = \"steep\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("shear_scale = steep"), "{err}");
        // Arguments of a generator the run does not use.
        let err = TrainConfig::resolve(
            None,
            None,
            &flags(|s| s.mnist1d = Some("seed=1".parse().unwrap())),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("the data set is mnist"), "{err}");
    }
}
