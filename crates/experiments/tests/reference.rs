//! The stacked model and the training loop against plain references written here:
//!
//! - the stack's explicit backward pass equals candle's autograd through a plain forward pass
//!   of the same model (each layer's `forward_ops`), bit for bit;
//! - a stack of M models steps each model exactly as M stacks of one do;
//! - the training loop equals a plain loop written for one model (per phase a fresh Adam, an
//!   autograd step per batch, the best validation loss's checkpoint restored, the method's
//!   switch between phases).

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var, D};
use experiments::progress::Progress;
use experiments::run::config::{
    ClampSetting, EvalSelection, LossKind, Phase2Init, Settings, TrainConfig,
};
use experiments::run::data::{epoch_order, load_dir, DeviceSplit, Splits};
use experiments::run::hidden::{Draws, HiddenLayer, Pass};
use experiments::run::optim::{clip_factor, Adam, AdamConfig};
use experiments::run::stack::Stack;
use experiments::run::step::{loss, step, Learner};
use experiments::run::train::{initial_network, train_stack, RunOut, Streams};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod common;
use common::{mini_data, temp_dir};

fn bits(t: &Tensor) -> Vec<u32> {
    let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
    v.iter().map(|x| x.to_bits()).collect()
}

fn config(method: &str, seed: u64, extra: &dyn Fn(&mut Settings)) -> TrainConfig {
    let mut flags = Settings {
        widths: Some(vec![24, 12]),
        method: Some(method.parse().unwrap()),
        seed: Some(seed),
        ..Default::default()
    };
    extra(&mut flags);
    TrainConfig::resolve(None, None, &flags).unwrap()
}

fn stack_of(cfgs: &[&TrainConfig]) -> Stack {
    let networks = cfgs
        .iter()
        .map(|c| initial_network(c, &mut Streams::new(c.seed).init, &Device::Cpu).unwrap())
        .collect();
    Stack::new(networks).unwrap()
}

/// Model 0 of `stack` as plain candle ops, tracked for autograd: the stacked linear variables
/// through their slice 0, each hidden layer's `forward_ops`, `pass` deciding the draws.
fn plain_logits(stack: &Stack, x: &Tensor, pass: Pass, rng: &mut ChaCha8Rng) -> Tensor {
    let mut h = x.clone();
    let linears = stack.linear_vars();
    for (i, (w, b)) in linears.iter().enumerate() {
        let (w, b) = (w.as_tensor().get(0).unwrap(), b.as_tensor().get(0).unwrap());
        h = h
            .matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap();
        if let Some(layer) = stack.hidden(0).get(i) {
            let group: [&dyn HiddenLayer; 1] = [layer.as_ref()];
            let mut draws = Draws {
                pass,
                rngs: std::slice::from_mut(rng),
                include: &[true],
            };
            let y = layer.forward_ops(&group, &h.unsqueeze(0).unwrap(), &mut draws);
            h = y.unwrap().squeeze(0).unwrap();
        }
    }
    h
}

/// The stack's own step pass without the update: the loss and every gradient.
fn explicit_grads(
    stack: &Stack,
    (x, y): (&Tensor, &Tensor),
    kind: LossKind,
    rng: &mut ChaCha8Rng,
) -> (Tensor, GradStore) {
    let x = x.unsqueeze(0).unwrap();
    let rngs = std::slice::from_mut(rng);
    let (logits, trace) = stack.forward(&x, Pass::Train, rngs, &[true]).unwrap();
    let logits = Var::from_tensor(&logits.get(0).unwrap()).unwrap();
    let batch_loss = loss(logits.as_tensor(), y, kind).unwrap();
    let g = batch_loss
        .backward()
        .unwrap()
        .remove(logits.as_tensor())
        .unwrap();
    let grads = stack.backward(&trace, &g.unsqueeze(0).unwrap()).unwrap();
    (batch_loss, grads)
}

fn random_batch(rng: &mut ChaCha8Rng, models: usize, batch: usize) -> (Tensor, Tensor) {
    let x: Vec<f32> = (0..models * batch * 784).map(|_| rng.random()).collect();
    let y: Vec<u32> = (0..models * batch)
        .map(|_| rng.random_range(0..10))
        .collect();
    (
        Tensor::from_vec(x, (models, batch, 784), &Device::Cpu).unwrap(),
        Tensor::from_vec(y, (models, batch), &Device::Cpu).unwrap(),
    )
}

/// The explicit backward pass gives exactly autograd's loss and gradients, for a ReLU baseline,
/// a phase-2 network with mixed functions, phase 1 with and without clamps and with a small
/// pool, and every adaptive method, under both loss kinds.
#[test]
fn explicit_backward_equals_autograd_bit_for_bit() {
    let clamped = config("smartmixed", 2, &|_| {});
    let unclamped = config("smartmixed", 3, &|s| {
        s.tau = Some(0.5);
        s.clamp = Some(ClampSetting(None));
        s.pool = Some("relu,elu,gelu".parse().unwrap());
    });
    let mut phase2 = stack_of(&[&clamped]);
    // Trained a little first, so that the argmax mixes functions.
    let mut data = ChaCha8Rng::seed_from_u64(7);
    let mut adam = Adam::with_owners(phase2.params(), AdamConfig::with_lr(0.05)).unwrap();
    for _ in 0..5 {
        let (x, y) = random_batch(&mut data, 1, 64);
        let params = phase2.params();
        let mut learner = Learner {
            params: &params,
            optimizer: &mut adam,
            loss: LossKind::Logits,
            grad_clips: &[None],
        };
        let mut rngs = [ChaCha8Rng::seed_from_u64(1)];
        step(&phase2, &mut learner, (&x, &y), &mut rngs, &[true]).unwrap();
    }
    phase2.end_phase(0, None).unwrap();
    let functions = phase2.choices(0).unwrap().unwrap();
    let distinct: std::collections::BTreeSet<_> = functions.iter().flatten().collect();
    assert!(distinct.len() > 1, "phase 2 mixes functions: {distinct:?}");
    let mut cases = vec![
        ("relu".to_string(), stack_of(&[&config("relu", 1, &|_| {})])),
        ("phase 2".to_string(), phase2),
        ("phase 1".to_string(), stack_of(&[&clamped])),
        (
            "phase 1 unclamped, small pool".to_string(),
            stack_of(&[&unclamped]),
        ),
    ];
    for method in [
        "prelu",
        "swish_beta",
        "pau",
        "pau_neuron",
        "softmix",
        "softmix_freeze",
    ] {
        cases.push((method.to_string(), stack_of(&[&config(method, 4, &|_| {})])));
    }
    let (x, y) = random_batch(&mut data, 1, 128);
    let (x, y) = (x.get(0).unwrap(), y.get(0).unwrap());
    for (name, stack) in &cases {
        for kind in [LossKind::Logits, LossKind::Probs] {
            let mut draws = ChaCha8Rng::seed_from_u64(11);
            let logits = plain_logits(stack, &x, Pass::Train, &mut draws);
            let want_loss = loss(&logits, &y, kind).unwrap();
            let want = want_loss.backward().unwrap();
            let mut draws = ChaCha8Rng::seed_from_u64(11);
            let (got_loss, got) = explicit_grads(stack, (&x, &y), kind, &mut draws);
            assert_eq!(bits(&got_loss), bits(&want_loss), "{name} {kind:?} loss");
            for (i, (var, _)) in stack.params().iter().enumerate() {
                let want = want.get(var.as_tensor()).expect("autograd gradient");
                let have = got.get(var.as_tensor()).expect("explicit gradient");
                assert_eq!(have.dims(), want.dims(), "{name} {kind:?} param {i} shape");
                // +0 and -0 differ in bits only where autograd added -0 to zeros.
                let (have, want) = (bits(have), bits(want));
                let same = have
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a == b || (a | b) == 0x8000_0000);
                assert!(same, "{name} {kind:?}: gradient of param {i} differs");
            }
        }
    }
}

/// A stack of {relu seed 1, SmartMixed seed 1, ELU seed 2, SmartMixed seed 2 with a small pool
/// and no clamp, every adaptive method (PReLU and PAU twice, so that they form groups), a
/// SmartMixed model in phase 2} stepped 4 times, each model on its own batches,
/// gives every model exactly the parameters and losses of the same model stepped alone, with
/// and without gradient clipping.
#[test]
fn a_stack_of_m_steps_each_model_as_a_stack_of_one() {
    let configs = [
        config("relu", 1, &|_| {}),
        config("smartmixed", 1, &|_| {}),
        config("elu", 2, &|_| {}),
        config("smartmixed", 2, &|s| {
            s.pool = Some("relu,elu,gelu".parse().unwrap());
            s.clamp = Some(ClampSetting(None));
        }),
        config("prelu", 1, &|_| {}),
        config("prelu", 2, &|_| {}),
        config("swish_beta", 1, &|_| {}),
        config("pau", 1, &|_| {}),
        config("pau", 2, &|_| {}),
        config("pau_neuron", 1, &|_| {}),
        config("softmix", 1, &|_| {}),
        config("softmix_freeze", 1, &|_| {}),
        config("smartmixed", 3, &|_| {}),
    ];
    let m = configs.len();
    let last = m - 1;
    let mut data = ChaCha8Rng::seed_from_u64(9);
    let steps: Vec<(Tensor, Tensor)> = (0..4).map(|_| random_batch(&mut data, m, 16)).collect();
    for grad_clip in [Some(1.0), None] {
        let build = |cfgs: &[&TrainConfig], frozen: Option<usize>| {
            let mut stack = stack_of(cfgs);
            if let Some(j) = frozen {
                stack.end_phase(j, None).unwrap();
            }
            stack
        };
        let all: Vec<&TrainConfig> = configs.iter().collect();
        let stack = build(&all, Some(last));
        let run = |stack: &Stack, streams: &[u64], models: &[usize]| -> Vec<Vec<Tensor>> {
            let params = stack.params();
            let mut adam = Adam::with_owners(params.clone(), AdamConfig::with_lr(3e-3)).unwrap();
            let mut rngs: Vec<ChaCha8Rng> = streams
                .iter()
                .map(|&s| ChaCha8Rng::seed_from_u64(s))
                .collect();
            let clips = vec![grad_clip; models.len()];
            let mut losses = Vec::new();
            for (x, y) in &steps {
                let pick = |t: &Tensor| {
                    let parts: Vec<Tensor> = models.iter().map(|&j| t.get(j).unwrap()).collect();
                    Tensor::stack(&parts, 0).unwrap()
                };
                let mut learner = Learner {
                    params: &params,
                    optimizer: &mut adam,
                    loss: LossKind::Logits,
                    grad_clips: &clips,
                };
                let active = vec![true; models.len()];
                let l = step(
                    stack,
                    &mut learner,
                    (&pick(x), &pick(y)),
                    &mut rngs,
                    &active,
                );
                losses.push(l.unwrap());
            }
            losses
        };
        let stacked: Vec<u64> = (0..m as u64).collect();
        let models: Vec<usize> = (0..m).collect();
        let together = run(&stack, &stacked, &models);
        for j in 0..m {
            let alone = build(&[&configs[j]], (j == last).then_some(0));
            let losses = run(&alone, &[j as u64], &[j]);
            for (s, (a, b)) in losses.iter().zip(&together).enumerate() {
                assert_eq!(
                    bits(&a[0]),
                    bits(&b[j]),
                    "model {j} step {s} loss, clip {grad_clip:?}"
                );
            }
            let (mine, theirs) = (alone.snapshot(0).unwrap(), stack.snapshot(j).unwrap());
            assert_eq!(mine.len(), theirs.len());
            for (v, (a, b)) in mine.iter().zip(&theirs).enumerate() {
                assert_eq!(
                    bits(a),
                    bits(b),
                    "model {j} variable {v}, clip {grad_clip:?}"
                );
            }
        }
    }
}

/// (epoch rows, best validation loss, test accuracy, phase-1 test accuracy, final variables)
type Outcome = (Vec<(f64, f64, f64)>, f64, f64, Option<f64>, Vec<Tensor>);

/// A loop for one model written plainly: per phase a fresh Adam, per batch an autograd step
/// (the plain forward pass, `loss.backward()`, the clipping factor, Adam), the best validation
/// loss's checkpoint restored at the phase's end, the method's switch between phases.
fn reference_loop(cfg: &TrainConfig, splits: &Splits) -> Outcome {
    let dev = Device::Cpu;
    let mut streams = Streams::new(cfg.seed);
    let eval_pass = Pass::Eval(match cfg.eval_selection {
        EvalSelection::Argmax => mixed_act::Selection::Argmax,
        EvalSelection::Sample => mixed_act::Selection::Sample,
    });
    let eval = |stack: &Stack, split: &DeviceSplit, rng: &mut ChaCha8Rng| -> (f64, f64) {
        let logits = plain_logits(stack, &split.images, eval_pass, rng);
        let l = loss(&logits, &split.labels, cfg.loss).unwrap();
        let l = l.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap();
        let right = logits.argmax(D::Minus1).unwrap().eq(&split.labels).unwrap();
        let right = right.to_dtype(DType::F64).unwrap().sum_all().unwrap();
        let n = split.len() as f64;
        (l * n / n, right.to_scalar::<f64>().unwrap() / n)
    };
    let network = initial_network(cfg, &mut streams.init, &dev).unwrap();
    let mut stack = Stack::new(vec![network]).unwrap();
    let schedule = cfg
        .method
        .schedule(cfg.epochs, cfg.phase1_epochs, cfg.phase2_init);
    let (mut rows, mut phase1_test, mut best_val) = (Vec::new(), None, f64::INFINITY);
    let mut first_epoch = 1;
    for phase in &schedule {
        let params = stack.params();
        let vars: Vec<Var> = params.iter().map(|(v, _)| v.clone()).collect();
        let mut adam = Adam::with_owners(params, AdamConfig::with_lr(cfg.lr)).unwrap();
        let mut best: Option<(f64, Vec<Tensor>)> = None;
        let train = &splits.train;
        let batches = train.len().div_ceil(cfg.batch_size);
        for _ in first_epoch..=phase.last_epoch {
            let order = epoch_order(train.len(), &mut streams.shuffle, &dev).unwrap();
            let mut sum = Tensor::zeros((), DType::F32, &dev).unwrap();
            for b in 0..batches {
                let start = b * cfg.batch_size;
                let len = cfg.batch_size.min(train.len() - start);
                let index = order.narrow(0, start, len).unwrap();
                let x = train.images.index_select(&index, 0).unwrap();
                let y = train.labels.index_select(&index, 0).unwrap();
                let logits = plain_logits(&stack, &x, Pass::Train, &mut streams.gumbel);
                let l = loss(&logits, &y, cfg.loss).unwrap();
                let grads = l.backward().unwrap();
                let scale = match cfg.grad_clip {
                    Some(max) => {
                        let own: Vec<Tensor> = vars
                            .iter()
                            .filter_map(|v| grads.get(v.as_tensor()).cloned())
                            .collect();
                        clip_factor(&own, max)
                            .unwrap()
                            .unwrap()
                            .to_scalar::<f32>()
                            .unwrap()
                    }
                    None => 1.0,
                };
                adam.step_models(&grads, &[Some(scale)]).unwrap();
                sum = (sum + l.detach()).unwrap();
            }
            let train_loss = sum.to_scalar::<f32>().unwrap() as f64 / batches as f64;
            let (val_loss, val_acc) = eval(&stack, &splits.val, &mut streams.gumbel);
            rows.push((train_loss, val_loss, val_acc));
            if best.as_ref().is_none_or(|(b, _)| val_loss < *b) {
                best = Some((val_loss, stack.snapshot(0).unwrap()));
            }
        }
        let (val, snapshot) = best.unwrap();
        stack.restore(0, &snapshot).unwrap();
        best_val = val;
        first_epoch = phase.last_epoch + 1;
        if let Some(switch) = phase.switch {
            phase1_test = Some(eval(&stack, &splits.test, &mut streams.gumbel).1);
            let fresh = (switch.linears == Phase2Init::Fresh).then_some(&mut streams.fresh);
            stack.end_phase(0, fresh).unwrap();
        }
    }
    let test = eval(&stack, &splits.test, &mut streams.gumbel).1;
    (
        rows,
        best_val,
        test,
        phase1_test,
        stack.snapshot(0).unwrap(),
    )
}

/// The training loop against [`reference_loop`], model by model, for a stack whose models
/// change phase at different epochs (a baseline, SmartMixed with 1 and 2 selection epochs,
/// warm and fresh, the frozen soft mixture, PAU, Swish-beta) and for one with the reference's sampled evaluation and probability loss
/// alone: every epoch row, the best validation loss, the test accuracies and the final weights.
#[test]
fn the_loop_follows_the_reference_loop() {
    let dev = Device::Cpu;
    let splits = Splits::new(&load_dir(&mini_data()).unwrap(), 42, &dev).unwrap();
    let cfg = |method: &str, seed: u64, p1: usize, extra: &dyn Fn(&mut Settings)| {
        config(method, seed, &|s| {
            s.epochs = Some(4);
            s.phase1_epochs = Some(p1);
            s.batch_size = Some(128);
            extra(s);
        })
    };
    let stacked = [
        cfg("relu", 1, 1, &|_| {}),
        cfg("smartmixed", 1, 1, &|_| {}),
        cfg("smartmixed", 2, 2, &|s| {
            s.phase2_init = Some(Phase2Init::Fresh)
        }),
    ];
    let reference_preset = cfg("smartmixed", 3, 2, &|s| {
        s.loss = Some(LossKind::Probs);
        s.eval_selection = Some(EvalSelection::Sample);
    });
    let dir = temp_dir("reference-loop");
    for group in [stacked.iter().collect::<Vec<_>>(), vec![&reference_preset]] {
        let outs: Vec<std::path::PathBuf> = (0..group.len())
            .map(|i| {
                let d = dir.join(format!("{}-{i}", group.len()));
                std::fs::create_dir_all(&d).unwrap();
                d
            })
            .collect();
        let out_refs: Vec<RunOut> = outs.iter().map(|p| RunOut::from(p.as_path())).collect();
        let summaries = train_stack(&group, &splits, &dev, &out_refs, Progress::Quiet).unwrap();
        for (i, cfg) in group.iter().enumerate() {
            let (rows, val, test, phase1_test, vars) = reference_loop(cfg, &splits);
            let s = &summaries[i];
            assert_eq!(s.val_loss, Some(val), "model {i} best val loss");
            assert_eq!(s.test_acc, Some(test), "model {i} test acc");
            assert_eq!(s.phase1_test_acc, phase1_test, "model {i} phase-1 test acc");
            let logged: Vec<(f64, f64, f64)> = csv::Reader::from_path(outs[i].join("epochs.csv"))
                .unwrap()
                .records()
                .map(|r| {
                    let r = r.unwrap();
                    let f = |c: usize| r[c].parse::<f64>().unwrap();
                    (f(2), f(3), f(4))
                })
                .collect();
            let round = |v: f64| format!("{v:.6}").parse::<f64>().unwrap();
            let rounded: Vec<(f64, f64, f64)> = rows
                .iter()
                .map(|&(a, b, c)| (round(a), round(b), round(c)))
                .collect();
            assert_eq!(logged, rounded, "model {i} epochs");
            let saved =
                candle_core::safetensors::load(outs[i].join("model.safetensors"), &dev).unwrap();
            for (l, pair) in vars.chunks(2).take(3).enumerate() {
                for (what, t) in ["weight", "bias"].iter().zip(pair) {
                    let name = format!("linear.{l}.{what}");
                    assert_eq!(bits(&saved[&name]), bits(t), "model {i} {name}");
                }
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A soft mixture over a pool of one function, without the clamp, is that fixed function: its
/// softmax weight is exactly 1 and its logit gets a zero gradient, so four training steps give
/// the baseline's losses and weights bit for bit. Sigmoid and tanh are left out: the mixture op
/// and the per-neuron op form their derivatives by different arithmetic (measured: the same
/// losses, weights apart in the last bits after four steps).
#[test]
fn a_soft_mixture_of_one_function_is_that_function() {
    for function in [
        "relu",
        "leaky_relu",
        "elu",
        "selu",
        "gelu",
        "silu",
        "mish",
        "softplus",
        "identity",
    ] {
        let baseline = config(function, 3, &|_| {});
        let mixture = config("softmix", 3, &|s| {
            s.pool = Some(function.parse().unwrap());
            s.clamp = Some(ClampSetting(None));
        });
        let mut data = ChaCha8Rng::seed_from_u64(12);
        let steps: Vec<(Tensor, Tensor)> = (0..4).map(|_| random_batch(&mut data, 1, 32)).collect();
        let run = |cfg: &TrainConfig| {
            let stack = stack_of(&[cfg]);
            let params = stack.params();
            let mut adam = Adam::with_owners(params.clone(), AdamConfig::with_lr(1e-2)).unwrap();
            let mut rngs = [ChaCha8Rng::seed_from_u64(0)];
            let losses: Vec<Vec<u32>> = steps
                .iter()
                .map(|(x, y)| {
                    let mut learner = Learner {
                        params: &params,
                        optimizer: &mut adam,
                        loss: LossKind::Logits,
                        grad_clips: &[Some(1.0)],
                    };
                    let l = step(&stack, &mut learner, (x, y), &mut rngs, &[true]).unwrap();
                    bits(&l[0])
                })
                .collect();
            let linears: Vec<Vec<u32>> = (0..3)
                .flat_map(|i| {
                    let (w, b) = stack.linear(0, i).unwrap();
                    [bits(&w), bits(&b)]
                })
                .collect();
            (losses, linears)
        };
        assert!(
            run(&mixture) == run(&baseline),
            "softmix over {{{function}}}"
        );
    }
}
