//! One training run, from its settings to its files: [`config`] (presets, TOML, flags,
//! validation) → [`data`] (IDX or hub, split, batches) → [`model`] (the MLP, traced forward and
//! explicit backward pass, with [`cpu_ops`]) → [`optim`] (Adam) → [`train`] (THE loop: phases,
//! clipping, divergence, best checkpoint) → [`files`] (config.json, epochs.csv, choices.csv,
//! summary.json). [`arch`] is the reference's table of architectures. [`cohort`] stacks M models
//! of the same widths into one (one batched product per layer, one fused op per run of models);
//! the loop trains such a cohort, a single run being a cohort of one.

pub mod arch;
pub mod cohort;
pub mod config;
pub mod cpu_ops;
pub mod data;
pub mod files;
pub mod model;
pub mod optim;
pub mod train;
