//! `summary.json`: the outcome of a run.

use serde::{Deserialize, Serialize};

/// The outcome of a run. Accuracies are fractions in [0, 1].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// "ok", or "diverged" (non-finite loss; see `diverged_epoch`).
    pub status: String,
    pub diverged_epoch: Option<usize>,
    pub test_acc: Option<f64>,
    pub val_acc: Option<f64>,
    pub val_loss: Option<f64>,
    pub best_epoch: Option<usize>,
    pub phase1_test_acc: Option<f64>,
    pub n_params: usize,
    pub epoch_seconds: f64,
    pub phase1_epoch_seconds: Option<f64>,
    pub phase2_epoch_seconds: Option<f64>,
    pub train_seconds: f64,
    /// Methods with per-neuron choices: per hidden layer, the share of neurons using each
    /// function of the pool, in pool order (config.json's `pool`; the paper's six when it has
    /// none).
    pub layer_shares: Option<Vec<Vec<f64>>>,
    /// Adaptive methods with parameters of their own: per hidden layer what it learned (PReLU
    /// slopes and Swish betas: mean, quartiles, range; PAU coefficients; a soft mixture's mean
    /// weight of each function). Left out for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned: Option<Vec<serde_json::Value>>,
    /// How many models trained together in this run's cohort (the epoch times are the
    /// cohort's wall time; divided by this, one model's share). Left out when 1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub cohort_models: usize,
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

pub(super) fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}
