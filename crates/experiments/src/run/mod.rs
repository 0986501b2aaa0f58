//! One training run, from its settings to its files, in the order data flows: [`config`]
//! (presets, TOML, flags, validation; [`setting`] declares the settings results are told apart
//! by) → [`data`] (IDX or hub, split, batches) → [`method`]
//! (a method's schedule of phases over kinds of hidden layer) → [`hidden`] (the kinds, one
//! file each, behind one trait) → [`stack`] (THE model: M networks of one shape stacked, with
//! its traced forward and explicit backward pass, helped by [`cpu_ops`]) → [`optim`] (Adam,
//! clipping) → [`step`] (one optimizer step) → [`train`] (THE loop: a single run is a stack of
//! one; its `board`: the run's records as TensorBoard events) → [`files`] (config.json,
//! epochs.csv, choices.csv, summary.json). [`arch`] is the
//! reference's table of architectures.

pub mod arch;
pub mod cifar;
pub mod config;
pub mod conv;
pub mod cpu_ops;
pub mod data;
pub mod files;
pub mod hidden;
pub mod method;
pub mod mnist1d;
pub mod net;
pub mod optim;
pub mod products;
pub mod setting;
pub mod stack;
pub mod step;
pub mod train;
