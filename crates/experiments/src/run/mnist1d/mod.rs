//! MNIST-1D (Greydanus, "Scaling down deep learning", arXiv 2011.14439): 1-D signals of ten
//! digit templates, padded, stretched, scaled, translated, noised and sheared, generated here
//! from the package's own recipe (`mnist1d` 0.0.2.post1 on PyPI: `data.py`, `transform.py`) so
//! that no download is needed. With the published arguments ([`Mnist1dArgs::default`]) this is
//! `make_dataset(get_dataset_args())`: every value within 1e-6 of the package's and every label
//! equal (`tests/mnist1d.rs` holds it to a reference the package printed).
//!
//! The package draws from NumPy's legacy global `RandomState` ([`numpy`]) and filters and
//! resamples with SciPy ([`scipy`]); this module keeps its order of draws exactly.

pub mod numpy;
pub mod scipy;

use numpy::RandomState;
use scipy::{gaussian_filter, linspace, resample};
use serde::{Deserialize, Serialize};

/// The package version whose recipe this reproduces.
pub const PACKAGE_VERSION: &str = "0.0.2.post1";

/// The classes: digits 0-9.
pub const CLASSES: usize = 10;

/// The generator's arguments (`get_dataset_args()`), with the package's defaults. A run's
/// `config.json` holds them (under `mnist1d`) when they are not the published ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mnist1dArgs {
    pub num_samples: usize,
    pub train_split: f64,
    pub template_len: usize,
    /// Zeros appended to a template: between `padding.0` and `padding.1`, inclusive.
    pub padding: (usize, usize),
    pub scale_coeff: f64,
    pub max_translation: usize,
    pub corr_noise_scale: f64,
    pub iid_noise_scale: f64,
    pub shear_scale: f64,
    pub shuffle_seq: bool,
    pub final_seq_length: usize,
    pub seed: u32,
}

impl Default for Mnist1dArgs {
    fn default() -> Self {
        Self {
            num_samples: 5000,
            train_split: 0.8,
            template_len: 12,
            padding: (36, 60),
            scale_coeff: 0.4,
            max_translation: 48,
            corr_noise_scale: 0.25,
            iid_noise_scale: 2e-2,
            shear_scale: 0.75,
            shuffle_seq: false,
            final_seq_length: 40,
            seed: 42,
        }
    }
}

/// The arguments a run may set, by the package's names, in the order labels list them.
/// (`template_len` is the templates' own length, 12: not a setting.)
pub const SETTABLE: [&str; 11] = [
    "num_samples",
    "train_split",
    "padding",
    "scale_coeff",
    "max_translation",
    "corr_noise_scale",
    "iid_noise_scale",
    "shear_scale",
    "shuffle_seq",
    "final_seq_length",
    "seed",
];

/// The fewest training signals the harness accepts: its validation split (10 %) needs one
/// signal at least.
pub const MIN_TRAINING_SIGNALS: usize = 10;

impl Mnist1dArgs {
    /// Whether these are the package's published arguments.
    pub fn is_published(&self) -> bool {
        *self == Self::default()
    }

    /// One settable argument as text, as [`Mnist1dArgs::set`] reads it back (`padding`:
    /// `36-60`).
    pub fn get(&self, key: &str) -> Option<String> {
        Some(match key {
            "num_samples" => self.num_samples.to_string(),
            "train_split" => self.train_split.to_string(),
            "padding" => format!("{}-{}", self.padding.0, self.padding.1),
            "scale_coeff" => self.scale_coeff.to_string(),
            "max_translation" => self.max_translation.to_string(),
            "corr_noise_scale" => self.corr_noise_scale.to_string(),
            "iid_noise_scale" => self.iid_noise_scale.to_string(),
            "shear_scale" => self.shear_scale.to_string(),
            "shuffle_seq" => self.shuffle_seq.to_string(),
            "final_seq_length" => self.final_seq_length.to_string(),
            "seed" => self.seed.to_string(),
            _ => return None,
        })
    }

    /// Sets one argument from text; the error says what the key or value must be. Ranges are
    /// [`Mnist1dArgs::check`]'s.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        fn whole<T: std::str::FromStr>(v: &str) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("'{v}' is not a whole number (0 or more)"))
        }
        fn number(v: &str) -> Result<f64, String> {
            v.parse().map_err(|_| format!("'{v}' is not a number"))
        }
        let v = value.trim();
        match key {
            "num_samples" => self.num_samples = whole(v)?,
            "train_split" => self.train_split = number(v)?,
            "padding" => {
                let bounds = v
                    .split_once('-')
                    .and_then(|(lo, hi)| Some((lo.trim().parse().ok()?, hi.trim().parse().ok()?)));
                self.padding = bounds.ok_or_else(|| {
                    format!("'{v}' is not two whole numbers low-high, like 36-60")
                })?;
            }
            "scale_coeff" => self.scale_coeff = number(v)?,
            "max_translation" => self.max_translation = whole(v)?,
            "corr_noise_scale" => self.corr_noise_scale = number(v)?,
            "iid_noise_scale" => self.iid_noise_scale = number(v)?,
            "shear_scale" => self.shear_scale = number(v)?,
            "shuffle_seq" => {
                self.shuffle_seq = v
                    .parse()
                    .map_err(|_| format!("'{v}' is not true or false"))?
            }
            "final_seq_length" => self.final_seq_length = whole(v)?,
            "seed" => self.seed = whole(v)?,
            _ => {
                return Err(format!(
                    "unknown argument '{key}' (the arguments: {})",
                    SETTABLE.join(", ")
                ))
            }
        }
        Ok(())
    }

    /// `published`, or the arguments that differ from the published ones, `key=value` in
    /// [`SETTABLE`] order: `num_samples=10000,shuffle_seq=true`. [`Mnist1dArgs::from_label`]
    /// reads it back.
    pub fn label(&self) -> String {
        let published = Self::default();
        let changed: Vec<String> = SETTABLE
            .iter()
            .filter_map(|&k| {
                let v = self.get(k)?;
                (published.get(k)? != v).then(|| format!("{k}={v}"))
            })
            .collect();
        match changed.is_empty() {
            true => "published".to_string(),
            false => changed.join(","),
        }
    }

    /// The arguments a [`Mnist1dArgs::label`] stands for (empty: the published ones).
    pub fn from_label(label: &str) -> Result<Self, String> {
        let mut args = Self::default();
        let label = label.trim();
        if label.is_empty() || label == "published" {
            return Ok(args);
        }
        for item in label.split(',') {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("'{}' is not key=value", item.trim()))?;
            args.set(key.trim(), value)
                .map_err(|e| format!("{} = {}: {e}", key.trim(), value.trim()))?;
        }
        Ok(args)
    }

    /// Every argument that would make the generator fail or make an empty split, named.
    pub fn check(&self) -> Result<(), String> {
        // The package makes num_samples / 10 signals per class and splits them by truncation.
        let total = self.num_samples / CLASSES * CLASSES;
        let train = (total as f64 * self.train_split) as usize;
        if self.num_samples < CLASSES {
            return Err(format!(
                "num_samples = {}: at least {CLASSES}, one signal per class",
                self.num_samples
            ));
        }
        if !(self.train_split > 0.0 && self.train_split < 1.0) || train >= total {
            return Err(format!(
                "train_split = {}: must leave signals on both sides of the split",
                self.train_split
            ));
        }
        if train < MIN_TRAINING_SIGNALS {
            return Err(format!(
                "num_samples = {} with train_split = {} leaves {train} training signals: at \
                 least {MIN_TRAINING_SIGNALS}, so that the validation split holds one",
                self.num_samples, self.train_split
            ));
        }
        if self.final_seq_length < 2 {
            return Err(format!(
                "final_seq_length = {}: at least 2",
                self.final_seq_length
            ));
        }
        if self.template_len < 2 || self.padding.0 > self.padding.1 {
            return Err(format!(
                "template_len = {}, padding = {:?}: template_len at least 2, padding [low, high] \
                 with low <= high",
                self.template_len, self.padding
            ));
        }
        if self.max_translation == 0 || self.max_translation > self.template_len + self.padding.1 {
            return Err(format!(
                "max_translation = {}: between 1 and template_len + padding high ({})",
                self.max_translation,
                self.template_len + self.padding.1
            ));
        }
        for (name, value) in [
            ("scale_coeff", self.scale_coeff),
            ("corr_noise_scale", self.corr_noise_scale),
            ("iid_noise_scale", self.iid_noise_scale),
            ("shear_scale", self.shear_scale),
        ] {
            if !(value >= 0.0 && value.is_finite()) {
                return Err(format!("{name} = {value}: must be finite and not negative"));
            }
        }
        Ok(())
    }
}

/// The generated signals, normalised over the whole set (mean 0, standard deviation 1), split
/// as the package splits them: the first `train_split` of the shuffled signals for training.
#[derive(Clone, Debug)]
pub struct Mnist1d {
    /// `[n_train, length]` row by row.
    pub train_x: Vec<f64>,
    pub train_y: Vec<u8>,
    pub test_x: Vec<f64>,
    pub test_y: Vec<u8>,
    pub length: usize,
}

/// The ten digit templates (`get_templates()`): each whitened, shifted to start at 0, over 6.
pub fn templates() -> [[f64; 12]; CLASSES] {
    const RAW: [[f64; 12]; CLASSES] = [
        [5.0, 6.0, 6.5, 6.75, 7.0, 7.0, 7.0, 7.0, 6.75, 6.5, 6.0, 5.0],
        [5.0, 3.0, 3.0, 3.4, 3.8, 4.2, 4.6, 5.0, 5.4, 5.8, 5.0, 5.0],
        [5.0, 6.0, 6.5, 6.5, 6.0, 5.25, 4.75, 4.0, 3.5, 3.5, 4.0, 5.0],
        [5.0, 6.0, 6.5, 6.5, 6.0, 5.0, 5.0, 6.0, 6.5, 6.5, 6.0, 5.0],
        [5.0, 4.4, 3.8, 3.2, 2.6, 2.6, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0],
        [5.0, 3.0, 3.0, 3.0, 3.0, 5.0, 6.0, 6.5, 6.5, 6.0, 4.5, 5.0],
        [5.0, 4.0, 3.5, 3.25, 3.0, 3.0, 3.0, 3.0, 3.25, 3.5, 4.0, 5.0],
        [5.0, 7.0, 7.0, 6.6, 6.2, 5.8, 5.4, 5.0, 4.6, 4.2, 5.0, 5.0],
        [5.0, 4.0, 3.5, 3.5, 4.0, 5.0, 5.0, 4.0, 3.5, 3.5, 4.0, 5.0],
        [5.0, 4.0, 3.5, 3.5, 4.0, 5.0, 5.0, 5.0, 5.0, 4.7, 4.3, 5.0],
    ];
    RAW.map(|mut x| {
        let mean = x.iter().sum::<f64>() / 12.0;
        x.iter_mut().for_each(|v| *v -= mean);
        let std = (x.iter().map(|v| v * v).sum::<f64>() / 12.0).sqrt();
        x.iter_mut().for_each(|v| *v /= std);
        let first = x[0];
        x.map(|v| (v - first) / 6.0)
    })
}

/// One signal from a template (`transform()`), drawing from `rng` in the package's order: the
/// padding, the scale, the translation, the correlated noise, the iid noise, the shear.
fn transform(template: &[f64], args: &Mnist1dArgs, rng: &mut RandomState) -> Vec<f64> {
    const EPS: f64 = 1e-8;
    let (low, high) = args.padding;
    let pad = low + (rng.rand() * (high - low + 1) as f64) as usize;
    let mut x: Vec<f64> = template.iter().map(|v| v + EPS).collect();
    x.resize(x.len() + pad, 0.0);
    let mut x = resample(&x, args.template_len + high);
    let scale = 1.0 + args.scale_coeff * (rng.rand() - 0.5);
    x.iter_mut().for_each(|v| *v *= scale);
    // `concatenate([x[-k:], x[:-k]])`: a rotation right by k (none for k = 0).
    let k = rng.below(args.max_translation as u32) as usize;
    x.rotate_right(k);
    let n = x.len();
    let noise: Vec<f64> = rng
        .randn(n)
        .into_iter()
        .map(|v| args.corr_noise_scale * v)
        .collect();
    let correlated = gaussian_filter(&noise, 2.0);
    // `mask * x + (1 - mask) * noise`, mask = x != 0.
    for (v, c) in x.iter_mut().zip(&correlated) {
        let mask = f64::from(u8::from(*v != 0.0));
        *v = mask * *v + (1.0 - mask) * c;
    }
    for (v, g) in x.iter_mut().zip(rng.randn(n)) {
        *v += args.iid_noise_scale * g;
    }
    let coeff = args.shear_scale * (rng.rand() - 0.5);
    for (v, t) in x.iter_mut().zip(linspace(-0.5, 0.5, n)) {
        *v -= coeff * t;
    }
    resample(&x, args.final_seq_length)
}

/// `make_dataset(args)`: `num_samples / 10` signals per class, class by class, shuffled,
/// optionally with the positions shuffled too, normalised, split.
pub fn make_dataset(args: &Mnist1dArgs) -> Result<Mnist1d, String> {
    args.check()?;
    let mut rng = RandomState::new(args.seed);
    let templates = templates();
    let per_class = args.num_samples / CLASSES;
    let mut xs: Vec<Vec<f64>> = Vec::with_capacity(per_class * CLASSES);
    let mut ys: Vec<u8> = Vec::with_capacity(per_class * CLASSES);
    for (label, template) in templates.iter().enumerate() {
        for _ in 0..per_class {
            xs.push(transform(template, args, &mut rng));
            ys.push(label as u8);
        }
    }
    let order = rng.permutation(ys.len());
    let mut xs: Vec<Vec<f64>> = order.iter().map(|&i| xs[i].clone()).collect();
    let ys: Vec<u8> = order.iter().map(|&i| ys[i]).collect();
    let length = args.final_seq_length;
    if args.shuffle_seq {
        let positions = rng.permutation(length);
        for x in &mut xs {
            *x = positions.iter().map(|&p| x[p]).collect();
        }
    }
    let flat: Vec<f64> = xs.concat();
    let mean = flat.iter().sum::<f64>() / flat.len() as f64;
    let std =
        (flat.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / flat.len() as f64).sqrt();
    let flat: Vec<f64> = flat.iter().map(|v| (v - mean) / std).collect();
    let split = (ys.len() as f64 * args.train_split) as usize;
    Ok(Mnist1d {
        train_x: flat[..split * length].to_vec(),
        train_y: ys[..split].to_vec(),
        test_x: flat[split * length..].to_vec(),
        test_y: ys[split..].to_vec(),
        length,
    })
}
