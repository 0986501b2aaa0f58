//! THE training loop ([`train_stack`]; one run is a stack of one): each model's method
//! schedule (a baseline's one phase, SmartMixed's selection then fixed phase), Adam,
//! gradient-norm clipping, divergence and the best-validation-loss checkpoint, for one model
//! or many trained together. In parts: [`epoch`] (the batches), [`evaluate`] (loss and
//! accuracy), [`member`] (one model's log, best checkpoint, divergence and files),
//! [`summary`] (`summary.json`), [`board`] (its TensorBoard events); the phase switch and the epoch line are below. It knows no
//! file formats or terminals itself.

pub mod board;
mod epoch;
mod evaluate;
mod member;
mod summary;

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use summary::Summary;

use crate::progress::Progress;
use crate::run::config::{EvalSelection, TrainConfig};
use crate::run::data::Splits;
use crate::run::hidden::Pass;
use crate::run::method::{LayerSettings, Phase2Init};
use crate::run::optim::{Adam, AdamConfig};
use crate::run::setting;
use crate::run::stack::{draw_linears, Network, Stack};
use crate::run::step::Learner;
use crate::run::train::board::BoardTarget;
use evaluate::{evaluate, Evaluation};
use member::{EpochOutcome, Member};

/// Independent random streams of one run, all derived from its seed, so that (for example)
/// the number of Gumbel draws never shifts the batch order.
pub struct Streams {
    pub init: ChaCha8Rng,
    pub shuffle: ChaCha8Rng,
    /// Gumbel noise (training, and evaluation in the reference preset).
    pub gumbel: ChaCha8Rng,
    /// A fresh second phase's linear layers.
    pub fresh: ChaCha8Rng,
}

impl Streams {
    pub fn new(seed: u64) -> Self {
        let stream = |n: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(n);
            rng
        };
        Self {
            init: stream(0),
            shuffle: stream(1),
            gumbel: stream(2),
            fresh: stream(3),
        }
    }
}

/// Where a model of a stack writes: its run directory, and where its TensorBoard events go
/// (none: it writes none).
#[derive(Clone, Copy, Debug)]
pub struct RunOut<'a> {
    pub dir: &'a Path,
    pub board: Option<&'a BoardTarget>,
}

impl<'a> From<&'a Path> for RunOut<'a> {
    fn from(dir: &'a Path) -> Self {
        RunOut { dir, board: None }
    }
}

/// What must agree between the models of a stack (they share batches, epochs and evaluation
/// passes): the data folder, the widths and the settings [`setting::SETTINGS`] declares shared;
/// each model may differ in method, seed and the others (learning rate, gradient clipping, its
/// method's own settings). The first that differs, or `None`.
pub fn cohort_mismatch(a: &TrainConfig, b: &TrainConfig) -> Option<&'static str> {
    // Compared as config.json writes them, field by field.
    let (a, b) = (serde_json::to_value(a), serde_json::to_value(b));
    let (a, b) = (
        a.expect("a config serialises to JSON"),
        b.expect("a config serialises to JSON"),
    );
    ["data_dir", "net", "widths"]
        .into_iter()
        .chain(setting::cohort_shared())
        .find(|&name| a.get(name) != b.get(name))
}

/// The network a run of `cfg` starts from, drawn from its seed's init stream: the linear
/// layers first, whatever the method, so that runs with one seed start from the same linear
/// weights (what the paired comparison of `compare` relies on; tested), then the hidden
/// layers as the method's first phase has them.
pub fn initial_network(
    cfg: &TrainConfig,
    init: &mut ChaCha8Rng,
    device: &Device,
) -> Result<Network> {
    let plan = cfg.plan()?;
    let linears = draw_linears(&plan, init, device)?;
    let settings = LayerSettings {
        pool: cfg.pool.0,
        tau: cfg.tau,
        clamp: cfg.clamp,
    };
    let hidden = cfg
        .widths
        .iter()
        .map(|&w| cfg.method.initial_layer(w, &settings, init, device))
        .collect::<Result<_>>()?;
    Ok(Network {
        plan,
        linears,
        hidden,
    })
}

/// Trains one model as `cfg` says and writes epochs.csv, choices.csv (methods with choices),
/// model.safetensors and summary.json into `out` (config.json is the caller's), and its
/// TensorBoard events where `out` says: a stack of one.
pub fn train(
    cfg: &TrainConfig,
    splits: &Splits,
    device: &Device,
    out: RunOut,
    progress: Progress,
) -> Result<Summary> {
    let mut summaries = train_stack(&[cfg], splits, device, &[out], progress)?;
    Ok(summaries.pop().expect("one summary per model"))
}

/// Trains the models of `cfgs` (one or many, see [`cohort_mismatch`] for what they must share)
/// together as one stack, each writing its files into its `outs` entry exactly as it would
/// alone: its own batch order, random streams, phases, clipping, divergence (a diverged model
/// stops updating; the others go on) and best checkpoint. The epochs' `seconds` are the
/// stack's wall time; `summary.json` says how many models shared it.
pub fn train_stack(
    cfgs: &[&TrainConfig],
    splits: &Splits,
    device: &Device,
    outs: &[RunOut],
    progress: Progress,
) -> Result<Vec<Summary>> {
    let started = Instant::now();
    let first = check_stack(cfgs, outs)?;
    let size = cfgs.len();
    let (mut members, mut stack, mut rngs) = build(cfgs, outs, device)?;
    let params = stack.params();
    let mut optimizer = Adam::with_owners(params.clone(), AdamConfig::with_lr(first.lr))?;
    for (m, cfg) in cfgs.iter().enumerate() {
        optimizer.set_lr(m, cfg.lr);
    }
    let grad_clips: Vec<Option<f64>> = cfgs.iter().map(|c| c.grad_clip).collect();
    let eval = Pass::Eval(match first.eval_selection {
        EvalSelection::Argmax => mixed_act::Selection::Argmax,
        EvalSelection::Sample => mixed_act::Selection::Sample,
    });
    for epoch in 1..=first.epochs {
        if members.iter().all(|m| !m.active()) {
            break;
        }
        let epoch_started = Instant::now();
        let batches = splits.train.len().div_ceil(first.batch_size);
        let bar = progress.epoch(epoch_label(&members, epoch), batches);
        let mut learner = Learner {
            params: &params,
            optimizer: &mut optimizer,
            loss: first.loss,
            grad_clips: &grad_clips,
        };
        let train_losses = epoch::train_epoch(
            &stack,
            &mut learner,
            &mut members,
            splits,
            &mut rngs,
            (progress, &bar),
        )?;
        let active: Vec<bool> = members.iter().map(Member::active).collect();
        let vals = evaluate(&stack, &splits.val, eval, first.loss, &mut rngs, &active)?;
        let seconds = epoch_started.elapsed().as_secs_f64();
        let mut ending = Vec::new();
        for (m, member) in members.iter_mut().enumerate() {
            let Some(val) = &vals[m] else { continue };
            let outcome = member.record_epoch(
                &stack,
                m,
                epoch,
                (train_losses[m], val),
                (seconds, started, size),
            )?;
            if outcome == EpochOutcome::PhaseEnds {
                ending.push(m);
            }
        }
        bar.finish(&epoch_line(&members, &train_losses, &vals, seconds));
        if !ending.is_empty() {
            let mut switch = Switching {
                stack: &mut stack,
                optimizer: &mut optimizer,
                rngs: &mut rngs,
            };
            switch.end_phases(&mut members, &ending, splits, eval, (started, progress))?;
        }
    }
    Ok(members
        .into_iter()
        .map(|m| m.summary.expect("every model finishes or diverges"))
        .collect())
}

/// The first config, once every config may join it in one stack.
fn check_stack<'a>(cfgs: &[&'a TrainConfig], outs: &[RunOut]) -> Result<&'a TrainConfig> {
    let first = *cfgs.first().context("a stack needs at least one model")?;
    anyhow::ensure!(cfgs.len() == outs.len(), "one output directory per model");
    for cfg in cfgs {
        if let Some(setting) = cohort_mismatch(first, cfg) {
            anyhow::bail!("the models of a cohort must share {setting}");
        }
    }
    Ok(first)
}

/// Each model's member, the stack of their initial networks, and their Gumbel streams.
fn build<'a>(
    cfgs: &[&'a TrainConfig],
    outs: &[RunOut<'a>],
    device: &Device,
) -> Result<(Vec<Member<'a>>, Stack, Vec<ChaCha8Rng>)> {
    let (mut members, mut networks, mut gumbel) = (Vec::new(), Vec::new(), Vec::new());
    for (&cfg, out) in cfgs.iter().zip(outs) {
        let mut streams = Streams::new(cfg.seed);
        let network = initial_network(cfg, &mut streams.init, device)?;
        let n_params = network.n_params();
        let name = match cfgs.len() {
            1 => String::new(),
            _ => format!("{} seed {}: ", cfg.method, cfg.seed),
        };
        members.push(Member::new(
            cfg,
            (out.dir, out.board),
            streams.shuffle,
            n_params,
            name,
        )?);
        gumbel.push(streams.gumbel);
        networks.push(network);
    }
    Ok((members, Stack::new(networks)?, gumbel))
}

/// The progress bar's label of an epoch.
fn epoch_label(members: &[Member], epoch: usize) -> String {
    let epochs = members[0].cfg.epochs;
    match (members.len(), members[0].phase()) {
        (1, _) if members[0].phases() == 1 => format!("epoch {epoch}/{epochs}"),
        (1, phase) => format!("epoch {epoch}/{epochs} [phase {}]", phase.name),
        (n, _) => format!("epoch {epoch}/{epochs} [cohort of {n}]"),
    }
}

/// The line that ends an epoch: the one model's losses and accuracy, or the stack's mean.
fn epoch_line(
    members: &[Member],
    train_losses: &[f64],
    vals: &[Option<Evaluation>],
    seconds: f64,
) -> String {
    if members.len() > 1 {
        let accs: Vec<f64> = vals.iter().flatten().map(|v| v.acc).collect();
        let mean_acc = 100.0 * accs.iter().sum::<f64>() / accs.len().max(1) as f64;
        return format!(
            "{} models training, val_acc {mean_acc:.2}% on average, {seconds:.1}s",
            accs.len()
        );
    }
    match &vals[0] {
        Some(val) => format!(
            "{}train_loss {:.4} val_loss {:.4} val_acc {:.2}% {seconds:.1}s",
            members[0].name,
            train_losses[0],
            val.loss,
            100.0 * val.acc
        ),
        None => format!("{seconds:.1}s"),
    }
}

/// What a phase switch changes besides the members: the stack's layers, the optimizer's
/// state and the streams the test evaluation draws from.
struct Switching<'s> {
    stack: &'s mut Stack,
    optimizer: &'s mut Adam,
    rngs: &'s mut [ChaCha8Rng],
}

impl Switching<'_> {
    /// Ends the phase of the models in `ending`: the best checkpoint back, the test split, then
    /// the method's switch (the next phase, with a fresh optimizer) or the model's files.
    fn end_phases(
        &mut self,
        members: &mut [Member],
        ending: &[usize],
        splits: &Splits,
        eval: Pass,
        (started, progress): (Instant, Progress),
    ) -> Result<()> {
        let size = members.len();
        let mut results = Vec::new();
        let mut include = vec![false; size];
        for &m in ending {
            results.push((m, members[m].restore_best(self.stack, m)?));
            include[m] = true;
        }
        let loss = members[0].cfg.loss;
        let tests = evaluate(self.stack, &splits.test, eval, loss, self.rngs, &include)?;
        for (m, result) in results {
            let test = tests[m].as_ref().expect("evaluated above").acc;
            let member = &mut members[m];
            let Some(switch) = member.phase().switch else {
                member.finish(self.stack, m, result, test, (started, size))?;
                continue;
            };
            progress.note(&format!(
                "{}phase {} done: best epoch {}, val_acc {:.2}%, test_acc {:.2}%; freezing",
                member.name,
                member.phase().name,
                result.best_epoch,
                100.0 * result.best_val_acc,
                100.0 * test
            ));
            let mut fresh = Streams::new(member.cfg.seed).fresh;
            let redraw = (switch.linears == Phase2Init::Fresh).then_some(&mut fresh);
            self.stack.end_phase(m, redraw)?;
            // The next phase starts with a fresh optimizer, as a run alone does.
            self.optimizer.reset_model(m)?;
            member.next_phase(result, test);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every setting a cohort must share names a field of config.json (a misspelt name would
    /// compare two absent fields and never split a cohort).
    #[test]
    fn cohort_shared_settings_are_config_fields() {
        // MNIST-1D with arguments of its own, so that config.json writes them too.
        let settings = crate::run::config::Settings {
            dataset: Some(crate::run::config::DatasetName::Mnist1d),
            mnist1d: Some("seed=7".parse().unwrap()),
            net: Some(crate::run::config::NetName::Mnist1dCnn),
            ..Default::default()
        };
        let cfg = TrainConfig::resolve(None, None, &settings).expect("the config resolves");
        let json = serde_json::to_value(&cfg).unwrap();
        for name in ["data_dir", "net", "widths"]
            .into_iter()
            .chain(setting::cohort_shared())
        {
            assert!(json.get(name).is_some(), "config.json has no field {name}");
        }
    }
    use crate::run::config::{ClampSetting, Settings};

    /// Runs with one seed start from the same linear weights, bit for bit, whatever their
    /// method and its settings; another seed starts elsewhere.
    #[test]
    fn one_seed_gives_every_method_the_same_initial_linear_weights() {
        let config = |method: &str, seed: u64, tau: f64, clamp: Option<f64>| {
            let flags = Settings {
                widths: Some(vec![24, 12]),
                method: Some(method.parse().unwrap()),
                seed: Some(seed),
                tau: Some(tau),
                clamp: Some(ClampSetting(clamp)),
                ..Default::default()
            };
            TrainConfig::resolve(None, None, &flags).unwrap()
        };
        let weights = |cfg: &TrainConfig| -> Vec<Vec<u32>> {
            let network =
                initial_network(cfg, &mut Streams::new(cfg.seed).init, &Device::Cpu).unwrap();
            network
                .linears
                .iter()
                .flat_map(|(w, b)| [w, b])
                .map(|t| {
                    let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
                    v.iter().map(|x| x.to_bits()).collect()
                })
                .collect()
        };
        let relu = weights(&config("relu", 5, 0.3, Some(10.0)));
        for other in [
            config("elu", 5, 0.3, Some(10.0)),
            config("smartmixed", 5, 0.3, Some(10.0)),
            config("smartmixed", 5, 3.0, None),
        ] {
            assert_eq!(weights(&other), relu, "{} tau {}", other.method, other.tau);
        }
        assert_ne!(weights(&config("relu", 6, 0.3, Some(10.0))), relu);
    }
}
