//! A method is a schedule of phases over kinds of hidden layer ([`crate::run::hidden`]): which
//! kind each hidden layer starts as, how long each phase lasts, and what happens at a switch
//! (the best checkpoint restored, each layer turned into what its kind becomes, the linear
//! layers kept or drawn afresh, a fresh optimizer). A baseline is one phase of fixed functions;
//! SmartMixed is a Gumbel selection phase, then the frozen argmax.
//!
//! Everything the rest of the crate asks about a method lives here: its name (the one place
//! the word `smartmixed` is spelled), the settings it reads, whether it is a fixed function or
//! an adaptive method (a treatment in `compare`), whether it leaves per-neuron choices.

use std::fmt;
use std::str::FromStr;

use anyhow::Result;
use candle_core::Device;
use mixed_act::{Activation, Learnable, Pool};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::input_error;
use crate::run::hidden::{Fixed, GumbelSelection, HiddenLayer, LearnableUnits, SoftMixture};
use crate::run::setting;

/// What the hidden layers do: one function everywhere (a baseline), SmartMixed, or one of the
/// adaptive methods it is compared with (`../shared/docs/adaptive-methods.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Baseline(Activation),
    SmartMixed,
    /// A soft mixture of the pool per neuron, trained to the end.
    Softmix,
    /// SmartMixed's schedule with a soft mixture in place of the hard Gumbel sample.
    SoftmixFreeze,
    /// A learnable slope per neuron for negative inputs.
    Prelu,
    /// `x sigmoid(beta x)` with a learnable beta per neuron.
    SwishBeta,
    /// A Pade activation unit per layer, as published.
    Pau,
    /// A Pade activation unit per neuron (an extension).
    PauNeuron,
}

const SMARTMIXED: &str = "smartmixed";

impl Method {
    pub const VALID: &'static str = "relu, sigmoid, tanh, leaky_relu, elu, selu, gelu, silu, \
         mish, softplus, identity, smartmixed, softmix, softmix_freeze, prelu, swish_beta, pau, \
         pau_neuron";

    /// Every adaptive method (the fixed functions are the pool's members).
    pub const ADAPTIVE: [Method; 7] = [
        Method::SmartMixed,
        Method::Softmix,
        Method::SoftmixFreeze,
        Method::Prelu,
        Method::SwishBeta,
        Method::Pau,
        Method::PauNeuron,
    ];

    /// The name in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Method::Baseline(a) => a.name(),
            Method::SmartMixed => SMARTMIXED,
            Method::Softmix => "softmix",
            Method::SoftmixFreeze => "softmix_freeze",
            Method::Prelu => "prelu",
            Method::SwishBeta => "swish_beta",
            Method::Pau => "pau",
            Method::PauNeuron => "pau_neuron",
        }
    }

    /// The name in report headings and figure legends.
    pub fn display_name(self) -> &'static str {
        match self {
            Method::SmartMixed => "SmartMixed",
            Method::Softmix => "soft mixture",
            Method::SoftmixFreeze => "soft mixture, frozen",
            Method::Prelu => "PReLU",
            Method::SwishBeta => "Swish-beta",
            Method::Pau => "PAU",
            Method::PauNeuron => "PAU per neuron",
            other => other.name(),
        }
    }

    /// An adaptive method (a treatment in `compare`) rather than one fixed function.
    pub fn is_adaptive(self) -> bool {
        !matches!(self, Method::Baseline(_))
    }

    /// Whether the network a run leaves is a plain MLP (fixed functions per neuron).
    pub fn leaves_plain_mlp(self) -> bool {
        matches!(
            self,
            Method::Baseline(_) | Method::SmartMixed | Method::SoftmixFreeze
        )
    }

    /// Whether its first phase ends in a switch (SmartMixed's freeze): a schedule of more than
    /// one phase.
    pub fn has_switch(self) -> bool {
        self.schedule(2, 1, Phase2Init::Warm).len() > 1
    }

    /// Whether its runs leave per-neuron choices (`choices.csv`, the share tables).
    pub fn has_choices(self) -> bool {
        matches!(self, Method::SmartMixed | Method::SoftmixFreeze)
    }

    /// Whether a run of this method reads `setting` (a run setting's name). Every method reads
    /// the settings [`setting::SETTINGS`] declares for every method. Of the selection settings:
    /// the soft mixtures read the pool, tau and clamp (so that `softmix_freeze` differs from
    /// SmartMixed only by the Gumbel noise and the hard sample), and the frozen one also the
    /// selection length and phase-2 init; only SmartMixed samples at evaluation. A baseline's
    /// result does not depend on the selection settings, so a grid axis over one of them does
    /// not multiply a baseline's runs: the baseline runs once, and its result row lists them in
    /// `not_applicable`.
    pub fn reads(self, setting: &str) -> bool {
        let general = !setting::selection_only(setting);
        match self {
            Method::SmartMixed => true,
            Method::SoftmixFreeze => setting != "eval_selection",
            Method::Softmix => general || ["tau", "clamp", "pool"].contains(&setting),
            _ => general,
        }
    }

    /// The selection settings this method reads, for messages ("none" for none).
    pub fn settings_read(self) -> String {
        let read: Vec<&str> = setting::selection_settings()
            .filter(|s| self.reads(s))
            .collect();
        match read.is_empty() {
            true => "none of the selection settings".into(),
            false => read.join(", "),
        }
    }

    /// The settings this method does not read, space-separated (results.csv's
    /// `not_applicable`).
    pub fn not_applicable(self) -> String {
        setting::selection_settings()
            .filter(|s| !self.reads(s))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A method's name as written in a results row; `None` for a name this build does not know.
    pub fn from_name(name: &str) -> Option<Method> {
        name.parse().ok()
    }

    /// The phases of a run of `epochs` epochs.
    pub fn schedule(self, epochs: usize, phase1_epochs: usize, init: Phase2Init) -> Vec<Phase> {
        let one_phase = |name| {
            vec![Phase {
                name,
                last_epoch: epochs,
                switch: None,
                logs_shares: false,
            }]
        };
        match self {
            Method::Baseline(_) => one_phase("baseline"),
            Method::Softmix
            | Method::Prelu
            | Method::SwishBeta
            | Method::Pau
            | Method::PauNeuron => one_phase("train"),
            Method::SmartMixed | Method::SoftmixFreeze => vec![
                Phase {
                    name: "1",
                    last_epoch: phase1_epochs,
                    switch: Some(Switch { linears: init }),
                    logs_shares: true,
                },
                Phase {
                    name: "2",
                    last_epoch: epochs,
                    switch: None,
                    logs_shares: false,
                },
            ],
        }
    }

    /// A hidden layer of `width` neurons as the method's first phase has it, drawing whatever
    /// it draws from `rng` (the run's init stream, after the linear layers).
    pub fn initial_layer(
        self,
        width: usize,
        settings: &LayerSettings,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Result<Box<dyn HiddenLayer>> {
        let learnable = |kind, shared| LearnableUnits::new(kind, width, shared, device);
        Ok(match self {
            Method::Baseline(a) => Box::new(Fixed::uniform(a, width, device)?),
            Method::SmartMixed => Box::new(GumbelSelection::new(width, settings, rng, device)?),
            Method::Softmix => Box::new(SoftMixture::new(width, settings, false, rng, device)?),
            Method::SoftmixFreeze => {
                Box::new(SoftMixture::new(width, settings, true, rng, device)?)
            }
            Method::Prelu => Box::new(learnable(Learnable::Prelu, false)?),
            Method::SwishBeta => Box::new(learnable(Learnable::SwishBeta, false)?),
            Method::Pau => Box::new(learnable(Learnable::Pau, true)?),
            Method::PauNeuron => Box::new(learnable(Learnable::Pau, false)?),
        })
    }
}

/// The settings a method's hidden layers take.
#[derive(Clone, Copy, Debug)]
pub struct LayerSettings {
    pub pool: Pool,
    pub tau: f64,
    pub clamp: Option<f64>,
}

/// One phase of a method's schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Phase {
    /// As `epochs.csv` writes it: `baseline`, `1` or `2`.
    pub name: &'static str,
    /// The phase's last epoch (epochs are counted over the whole run).
    pub last_epoch: usize,
    /// What happens when it ends; `None` for the last phase.
    pub switch: Option<Switch>,
    /// Whether `epochs.csv` records each layer's share of each function in this phase (a
    /// selection phase, whose choices move).
    pub logs_shares: bool,
}

/// The end of a phase that another follows: the best checkpoint is restored, every hidden layer
/// becomes what its kind turns into ([`HiddenLayer::end_phase`]), the linear layers are kept or
/// drawn afresh, and the optimizer starts afresh.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Switch {
    pub linears: Phase2Init,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Phase2Init {
    /// Keep the phase-1 weights (the paper's text).
    Warm,
    /// Re-initialise the network for phase 2 (the reference code).
    Fresh,
}

impl FromStr for Method {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let key = |s: &str| s.trim().to_lowercase().replace(['-', '_'], "");
        if let Some(m) = Method::ADAPTIVE
            .into_iter()
            .find(|m| key(m.name()) == key(s))
        {
            return Ok(m);
        }
        s.parse::<Activation>()
            .map(Method::Baseline)
            .map_err(|_| input_error(format!("unknown method '{s}' (valid: {})", Method::VALID)))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Method {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baselines_read_no_selection_setting_and_smartmixed_reads_all() {
        let relu = Method::Baseline(Activation::Relu);
        assert_eq!(
            relu.not_applicable(),
            setting::selection_settings().collect::<Vec<_>>().join(" ")
        );
        assert!(relu.reads("lr") && !relu.reads("tau"));
        assert_eq!(Method::SmartMixed.not_applicable(), "");
        assert!(!relu.is_adaptive() && Method::SmartMixed.is_adaptive());
        for m in [relu, Method::SmartMixed] {
            assert_eq!(m.name().parse::<Method>().unwrap(), m);
        }
    }

    #[test]
    fn schedules_end_where_the_settings_say() {
        let relu = Method::Baseline(Activation::Relu).schedule(9, 0, Phase2Init::Warm);
        assert_eq!(relu.len(), 1);
        assert_eq!((relu[0].last_epoch, relu[0].switch), (9, None));
        let sm = Method::SmartMixed.schedule(9, 4, Phase2Init::Fresh);
        assert_eq!(
            sm.iter()
                .map(|p| (p.name, p.last_epoch))
                .collect::<Vec<_>>(),
            [("1", 4), ("2", 9)]
        );
        assert_eq!(
            sm[0].switch,
            Some(Switch {
                linears: Phase2Init::Fresh
            })
        );
    }
}
