//! First timing of the fused ops against candle's uniform relu, interleaved in one process so
//! that machine drift hits every variant alike. (The full benchmark is `smartmixed bench ops`.)
//!
//! cargo run --release -p mixed-act --example op_timing -- [rows] [cols] [repeats]

use std::time::Instant;

use candle_core::{Device, Result, Tensor, Var};
use mixed_act::{gumbel::one_hot_argmax, mixture, per_neuron};
use rand::{Rng, SeedableRng};

fn main() -> Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let (rows, cols, repeats) = (
        args.first().copied().unwrap_or(1024),
        args.get(1).copied().unwrap_or(1024),
        args.get(2).copied().unwrap_or(40),
    );
    let dev = Device::Cpu;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let x: Vec<f32> = (0..rows * cols)
        .map(|_| rng.random::<f32>() * 6.0 - 3.0)
        .collect();
    let x = Var::from_tensor(&Tensor::from_vec(x, (rows, cols), &dev)?)?;
    // Functions drawn evenly from all six, in random order.
    let ids: Vec<u32> = (0..cols).map(|_| rng.random_range(0..6)).collect();
    let ids = Tensor::new(ids, &dev)?;
    let logits: Vec<f32> = (0..cols * 6).map(|_| rng.random()).collect();
    let w = Var::from_tensor(&one_hot_argmax(&Tensor::from_vec(
        logits,
        (cols, 6),
        &dev,
    )?)?)?;

    type Case<'a> = (&'a str, Box<dyn Fn() -> Result<()> + 'a>);
    let cases: Vec<Case> = vec![
        ("relu fwd", Box::new(|| x.as_tensor().relu().map(drop))),
        (
            "per_neuron fwd",
            Box::new(|| per_neuron(x.as_tensor(), &ids).map(drop)),
        ),
        (
            "mixture fwd",
            Box::new(|| mixture(x.as_tensor(), w.as_tensor(), Some(10.0)).map(drop)),
        ),
        (
            "relu fwd+bwd",
            Box::new(|| x.as_tensor().relu()?.backward().map(drop)),
        ),
        (
            "per_neuron fwd+bwd",
            Box::new(|| per_neuron(x.as_tensor(), &ids)?.backward().map(drop)),
        ),
        (
            "mixture fwd+bwd",
            Box::new(|| {
                mixture(x.as_tensor(), w.as_tensor(), Some(10.0))?
                    .backward()
                    .map(drop)
            }),
        ),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for round in 0..repeats + 3 {
        for (i, (_, run)) in cases.iter().enumerate() {
            let start = Instant::now();
            run()?;
            if round >= 3 {
                times[i].push(start.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let medians: Vec<f64> = times.iter_mut().map(median).collect();
    println!(
        "[{rows}, {cols}] f32, {repeats} interleaved repeats, threads {}",
        rayon::current_num_threads()
    );
    println!("{:<22}{:>12}{:>14}", "case", "median µs", "x relu");
    for (i, (name, _)) in cases.iter().enumerate() {
        let floor = if i < 3 { medians[0] } else { medians[3] };
        println!("{name:<22}{:>12.0}{:>14.2}", medians[i], medians[i] / floor);
    }
    Ok(())
}
