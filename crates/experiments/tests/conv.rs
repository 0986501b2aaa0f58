//! Convolutions, pooling and per-channel activations against plain candle references:
//!
//! - the unfolded windows (im2col), their fold and pooling equal candle's `conv2d`,
//!   `max_pool2d`/`avg_pool2d` and their autograd gradients (channels-first there, channels-last
//!   here), for strides, paddings and windows that overlap;
//! - a conv net's forward and explicit backward pass equal autograd through the same net
//!   written with candle's channels-first convolutions and pooling and each hidden layer's
//!   plain `forward_ops` per channel, for every method: the logits, the loss and the gradient
//!   of every weight, bias and per-channel parameter (summed over the batch and the positions).

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var, D};
use experiments::run::config::{DatasetName, LossKind, NetName, Settings, TrainConfig};
use experiments::run::conv::{pool_backward, pool_forward, Windows};
use experiments::run::hidden::{Draws, HiddenLayer, Pass};
use experiments::run::net::{LayerSpec, Shape};
use experiments::run::stack::Stack;
use experiments::run::step::loss;
use experiments::run::train::{initial_network, Streams};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CPU: Device = Device::Cpu;

fn random(rng: &mut ChaCha8Rng, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_vec(v, shape, &CPU).unwrap()
}

/// `a` and `b` agree to `tol` relative to `b`'s largest magnitude.
fn close(a: &Tensor, b: &Tensor, tol: f32, what: &str) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
    let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= tol * scale,
        "{what}: off by {worst} (scale {scale})"
    );
}

/// Channels-first `[B, C, spatial...]` to this crate's `[1, B, spatial... x C]`.
fn channels_last(x: &Tensor) -> Tensor {
    let rank = x.rank();
    let mut order: Vec<usize> = vec![0];
    order.extend(2..rank);
    order.push(1);
    let b = x.dim(0).unwrap();
    x.permute(order)
        .unwrap()
        .contiguous()
        .unwrap()
        .reshape((1, b, ()))
        .unwrap()
}

/// A conv weight `[O, C, k...]` as the crate's `[O, k... x C]`.
fn weight_rows(w: &Tensor) -> Tensor {
    let o = w.dim(0).unwrap();
    channels_last(w).reshape((o, ())).unwrap()
}

/// candle's convolution of channels-first `x` by `w` (`[O, C, k...]`), made safe for autograd:
/// zero padding added by hand and the input cut to what the windows read (candle 0.11's
/// backward fails on a remainder), 1-D as 2-D over maps of height 1 (its `conv1d` backward
/// gives wrong weight gradients here).
fn conv_reference(x: &Tensor, w: &Tensor, padding: usize, stride: usize) -> Tensor {
    let one_d = x.rank() == 3;
    let (x, w) = match one_d {
        true => (x.unsqueeze(2).unwrap(), w.unsqueeze(2).unwrap()),
        false => (x.clone(), w.clone()),
    };
    let k = w.dim(3).unwrap();
    let mut x = x;
    for d in [2, 3] {
        if one_d && d == 2 {
            continue;
        }
        let padded = x.pad_with_zeros(d, padding, padding).unwrap();
        let n = padded.dim(d).unwrap();
        let used = (n - k) / stride * stride + k;
        x = padded.narrow(d, 0, used).unwrap();
    }
    let y = x.conv2d(&w, 0, stride, 1, 1).unwrap();
    match one_d {
        true => y.squeeze(2).unwrap(),
        false => y,
    }
}

#[test]
fn windows_equal_candles_convolutions_and_their_gradients() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    // (spatial sizes, channels in, channels out, kernel, stride, padding)
    type Case<'a> = (&'a [usize], usize, usize, usize, usize, usize);
    let cases: [Case; 7] = [
        (&[7, 6], 2, 3, 3, 1, 1),
        (&[9, 9], 3, 4, 3, 2, 0),
        (&[8, 7], 1, 2, 5, 2, 2),
        (&[6, 6], 2, 2, 2, 2, 0),
        (&[40], 1, 5, 5, 2, 1),
        (&[19], 4, 3, 3, 2, 1),
        (&[10], 2, 3, 3, 1, 0),
    ];
    for (spatial, c_in, c_out, k, s, p) in cases {
        let what = format!("{spatial:?} x {c_in} -> {c_out}, k{k} s{s} p{p}");
        let batch = 3;
        let mut shape = vec![batch, c_in];
        shape.extend_from_slice(spatial);
        let x = Var::from_tensor(&random(&mut rng, &shape)).unwrap();
        let mut w_shape = vec![c_out, c_in];
        w_shape.extend(std::iter::repeat_n(k, spatial.len()));
        let w = Var::from_tensor(&random(&mut rng, &w_shape)).unwrap();
        let y = conv_reference(x.as_tensor(), w.as_tensor(), p, s);
        let r = random(&mut rng, y.dims());
        let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();

        let input = Shape {
            spatial: spatial.to_vec(),
            channels: c_in,
        };
        let out_spatial = &y.dims()[2..];
        let windows = Windows::new(&input, out_spatial, k, s, p);
        let cols = windows.unfold(&channels_last(x.as_tensor())).unwrap();
        let w_rows = weight_rows(w.as_tensor());
        let ours = cols.get(0).unwrap().matmul(&w_rows.t().unwrap()).unwrap();
        let rows = |t: &Tensor| {
            channels_last(t)
                .squeeze(0)
                .unwrap()
                .reshape(((), c_out))
                .unwrap()
        };
        close(&ours, &rows(&y), 1e-5, &format!("forward {what}"));
        let r_rows = rows(&r);
        let grad_cols = r_rows.matmul(&w_rows).unwrap().unsqueeze(0).unwrap();
        let grad_x = windows.fold(&grad_cols, 1, batch).unwrap();
        let want = channels_last(grads.get(x.as_tensor()).unwrap());
        close(&grad_x, &want, 1e-5, &format!("grad x {what}"));
        let grad_w = r_rows.t().unwrap().matmul(&cols.get(0).unwrap()).unwrap();
        let want = weight_rows(grads.get(w.as_tensor()).unwrap());
        close(&grad_w, &want, 1e-5, &format!("grad w {what}"));
    }
}

/// Pooling's gradient by definition: each output's gradient to its window's first maximum, or
/// shared by its taps.
fn pool_gradient_by_loops(
    x: &[f32],
    (h, w, c): (usize, usize, usize),
    (k, s): (usize, usize),
    grad: &[f32],
    max: bool,
) -> Vec<f32> {
    let (ho, wo) = ((h - k) / s + 1, (w - k) / s + 1);
    let mut out = vec![0f32; x.len()];
    for i in 0..ho {
        for j in 0..wo {
            for ch in 0..c {
                let g = grad[(i * wo + j) * c + ch];
                let at = |a: usize, b: usize| ((i * s + a) * w + (j * s + b)) * c + ch;
                let taps: Vec<usize> = (0..k)
                    .flat_map(|a| (0..k).map(move |b| (a, b)))
                    .map(|(a, b)| at(a, b))
                    .collect();
                if max {
                    let best = taps
                        .iter()
                        .copied()
                        .reduce(|m, t| if x[t] > x[m] { t } else { m })
                        .unwrap();
                    out[best] += g;
                } else {
                    for t in taps {
                        out[t] += g / (k * k) as f32;
                    }
                }
            }
        }
    }
    out
}

#[test]
fn pooling_equals_candles_and_its_gradient_the_definition() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for (h, w, c, k, s) in [
        (8, 6, 3, 2, 2),
        (7, 7, 2, 3, 2),
        (6, 5, 2, 2, 1),
        (9, 9, 1, 3, 3),
    ] {
        for max in [true, false] {
            let what = format!("{h}x{w}x{c} k{k} s{s} max {max}");
            let x = Var::from_tensor(&random(&mut rng, &[1, c, h, w])).unwrap();
            let y = match max {
                true => x.as_tensor().max_pool2d_with_stride(k, s),
                false => x.as_tensor().avg_pool2d_with_stride(k, s),
            }
            .unwrap();
            let r = random(&mut rng, y.dims());
            let input = Shape {
                spatial: vec![h, w],
                channels: c,
            };
            let windows = Windows::new(&input, &y.dims()[2..], k, s, 0);
            let x_cl = channels_last(x.as_tensor());
            let (ours, saved) = pool_forward(&windows, max, &x_cl).unwrap();
            close(&ours, &channels_last(&y), 1e-6, &format!("forward {what}"));
            let r_cl = channels_last(&r);
            let grad = pool_backward(&windows, &saved, &r_cl).unwrap();
            let by_loops = pool_gradient_by_loops(
                &x_cl.flatten_all().unwrap().to_vec1().unwrap(),
                (h, w, c),
                (k, s),
                &r_cl.flatten_all().unwrap().to_vec1().unwrap(),
                max,
            );
            let by_loops = Tensor::from_vec(by_loops, grad.dims(), &CPU).unwrap();
            close(&grad, &by_loops, 1e-6, &format!("backward {what}"));
            // candle differentiates pooling where windows do not overlap; its max pooling
            // gradient (0.11) is the true one scaled by 1/k^2 (it multiplies the output's
            // gradient by the window's share of maxima instead of dividing by their count).
            if k == s {
                let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
                let want = channels_last(grads.get(x.as_tensor()).unwrap());
                let scale = if max { (k * k) as f64 } else { 1.0 };
                close(
                    &grad,
                    &(want * scale).unwrap(),
                    1e-6,
                    &format!("autograd {what}"),
                );
            }
        }
    }
}

/// Model 0 of `stack` written channels-first with candle's convolutions and pooling, each
/// hidden layer's `forward_ops` applied per channel (the map moved to rows of channels and
/// back), flatten in the crate's channels-last order; tracked to the stack's variables.
fn plain_logits(
    stack: &Stack,
    plan: &[experiments::run::net::Planned],
    x: &Tensor,
    pass: Pass,
    rng: &mut ChaCha8Rng,
) -> Tensor {
    let batch = x.dim(0).unwrap();
    let input = &plan[0].input;
    // [B, features] channels-last to channels-first.
    let mut dims = vec![batch];
    dims.extend_from_slice(&input.spatial);
    dims.push(input.channels);
    let rank = dims.len();
    let to_first = |t: &Tensor| {
        let mut order = vec![0, rank - 1];
        order.extend(1..rank - 1);
        t.permute(order).unwrap()
    };
    let mut h = to_first(&x.reshape(dims).unwrap());
    let vars = stack.linear_vars();
    let mut product = 0;
    for p in plan {
        match p.spec {
            LayerSpec::Flatten => {
                let rank = h.rank();
                let mut order = vec![0];
                order.extend(2..rank);
                order.push(1);
                h = h.permute(order).unwrap().flatten_from(1).unwrap();
                continue;
            }
            LayerSpec::MaxPool { kernel, stride } => {
                // Not candle's max_pool2d, whose gradient is scaled (see above), and which sends
                // a tie's gradient to every maximum: ReLU's zeros tie often. Windows that tile,
                // gathered at their first maximum (PyTorch's rule, and this crate's).
                assert_eq!(kernel, stride, "the reference pools windows that tile");
                let (b, c, hh, ww) = h.dims4().unwrap();
                let (ho, wo) = (hh / kernel, ww / kernel);
                let windows = h
                    .reshape((b, c, ho, kernel, wo, kernel))
                    .unwrap()
                    .permute((0, 1, 2, 4, 3, 5))
                    .unwrap()
                    .contiguous()
                    .unwrap()
                    .reshape((b, c, ho, wo, kernel * kernel))
                    .unwrap();
                let first_max = windows.argmax_keepdim(D::Minus1).unwrap();
                h = windows
                    .gather(&first_max, D::Minus1)
                    .unwrap()
                    .squeeze(D::Minus1)
                    .unwrap();
                continue;
            }
            LayerSpec::AvgPool { kernel, stride } => {
                h = h.avg_pool2d_with_stride(kernel, stride).unwrap();
                continue;
            }
            _ => {}
        }
        let (w, b) = &vars[product];
        let (w, b) = (w.as_tensor().get(0).unwrap(), b.as_tensor().get(0).unwrap());
        h = match p.spec {
            LayerSpec::Conv {
                out,
                kernel,
                stride,
                padding,
            } => {
                let c = p.input.channels;
                let spatial = p.input.spatial.len();
                let mut shape = vec![out];
                shape.extend(std::iter::repeat_n(kernel, spatial));
                shape.push(c);
                let w = to_first(&w.reshape(shape).unwrap());
                let y = conv_reference(&h, &w, padding, stride);
                let mut bias_shape = vec![1, out];
                bias_shape.extend(std::iter::repeat_n(1, spatial));
                y.broadcast_add(&b.reshape(bias_shape).unwrap()).unwrap()
            }
            _ => h
                .matmul(&w.t().unwrap())
                .unwrap()
                .broadcast_add(&b)
                .unwrap(),
        };
        if let Some(layer) = stack.hidden(0).get(product) {
            // Channels to the last axis, rows of channels, the layer, and back.
            let rank = h.rank();
            let dims = h.dims().to_vec();
            let mut order = vec![0];
            order.extend(2..rank);
            order.push(1);
            let rows = h
                .permute(order)
                .unwrap()
                .reshape((1, (), p.units()))
                .unwrap();
            let group: [&dyn HiddenLayer; 1] = [layer.as_ref()];
            let mut draws = Draws {
                pass,
                rngs: std::slice::from_mut(rng),
                include: &[true],
            };
            let y = layer.forward_ops(&group, &rows, &mut draws).unwrap();
            let mut last = vec![dims[0]];
            last.extend_from_slice(&dims[2..]);
            last.push(dims[1]);
            h = match rank {
                2 => y.reshape(dims).unwrap(),
                _ => to_first(&y.reshape(last).unwrap()),
            };
        }
        product += 1;
    }
    h
}

fn explicit_grads(
    stack: &Stack,
    (x, y): (&Tensor, &Tensor),
    rng: &mut ChaCha8Rng,
) -> (Tensor, Tensor, GradStore) {
    let x = x.unsqueeze(0).unwrap();
    let (logits, trace) = stack
        .forward(&x, Pass::Train, std::slice::from_mut(rng), &[true])
        .unwrap();
    let logits = Var::from_tensor(&logits.get(0).unwrap()).unwrap();
    let batch_loss = loss(logits.as_tensor(), y, LossKind::Logits).unwrap();
    let g = batch_loss
        .backward()
        .unwrap()
        .remove(logits.as_tensor())
        .unwrap();
    let grads = stack.backward(&trace, &g.unsqueeze(0).unwrap()).unwrap();
    (logits.as_tensor().clone(), batch_loss, grads)
}

#[test]
fn conv_nets_backward_equals_autograd_of_a_plain_channels_first_net_for_every_method() {
    let methods = [
        "relu",
        "elu",
        "prelu",
        "swish_beta",
        "pau",
        "pau_neuron",
        "softmix",
        "softmix_freeze",
        "smartmixed",
    ];
    for (net, dataset) in [
        (NetName::Lenet5, DatasetName::Mnist),
        (NetName::Conv4, DatasetName::FashionMnist),
        (NetName::Mnist1dCnn5, DatasetName::Mnist1d),
        (NetName::Mnist1dCnn, DatasetName::Mnist1d),
    ] {
        for method in methods {
            let what = format!("{net} {method}");
            let settings = Settings {
                net: Some(net),
                dataset: Some(dataset),
                method: Some(method.parse().unwrap()),
                seed: Some(5),
                tau: Some(0.7),
                ..Default::default()
            };
            let cfg = TrainConfig::resolve(None, None, &settings).unwrap();
            let plan = cfg.plan().unwrap();
            let network = initial_network(&cfg, &mut Streams::new(cfg.seed).init, &CPU).unwrap();
            let stack = Stack::new(vec![network]).unwrap();
            let mut data = ChaCha8Rng::seed_from_u64(9);
            let batch = 4;
            let x = random(&mut data, &[batch, plan[0].input.features()]);
            let labels: Vec<u32> = (0..batch).map(|_| data.random_range(0..10)).collect();
            let y = Tensor::new(labels, &CPU).unwrap();

            let noise = ChaCha8Rng::seed_from_u64(3);
            let (logits, batch_loss, grads) = explicit_grads(&stack, (&x, &y), &mut noise.clone());
            let plain = plain_logits(&stack, &plan, &x, Pass::Train, &mut noise.clone());
            close(&logits, &plain, 1e-4, &format!("logits {what}"));
            let log_p = candle_nn::ops::log_softmax(&plain, D::Minus1).unwrap();
            let plain_loss = log_p
                .gather(&y.unsqueeze(1).unwrap(), 1)
                .unwrap()
                .mean_all()
                .unwrap()
                .neg()
                .unwrap();
            close(&batch_loss, &plain_loss, 1e-5, &format!("loss {what}"));
            let want = plain_loss.backward().unwrap();
            for (i, (var, _)) in stack.params().iter().enumerate() {
                let got = grads.get(var.as_tensor()).unwrap();
                let expected = want.get(var.as_tensor()).unwrap();
                close(got, expected, 1e-3, &format!("gradient {i} {what}"));
            }
        }
    }
}
