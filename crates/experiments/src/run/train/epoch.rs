//! One epoch of training batches for every model of a stack, each in its own order.

use anyhow::Result;
use candle_core::{DType, Tensor};
use rand_chacha::ChaCha8Rng;

use super::member::Member;
use crate::progress::{EpochProgress, Progress};
use crate::run::data::{epoch_order, Splits};
use crate::run::stack::Stack;
use crate::run::step::{step, Learner};

/// Batches between progress-bar updates.
const BAR_EVERY: usize = 25;

/// Runs one epoch and returns each model's mean training loss over its batches (finished
/// models run along without updates: their entries are to be ignored).
pub fn train_epoch(
    stack: &Stack,
    learner: &mut Learner,
    members: &mut [Member],
    splits: &Splits,
    rngs: &mut [ChaCha8Rng],
    (progress, bar): (Progress, &EpochProgress),
) -> Result<Vec<f64>> {
    let train = &splits.train;
    let batch_size = members[0].cfg.batch_size;
    let batches = train.len().div_ceil(batch_size);
    let device = train.images.device();
    let size = members.len();
    let orders = members
        .iter_mut()
        .map(|m| epoch_order(train.len(), &mut m.shuffle, device))
        .collect::<Result<Vec<_>>>()?;
    let active: Vec<bool> = members.iter().map(Member::active).collect();
    let mut loss_sums = vec![Tensor::zeros((), DType::F32, device)?; size];
    for b in 0..batches {
        let start = b * batch_size;
        let len = batch_size.min(train.len() - start);
        let (mut xs, mut ys) = (Vec::with_capacity(size), Vec::with_capacity(size));
        for order in &orders {
            let index = order.narrow(0, start, len)?;
            xs.push(train.images.index_select(&index, 0)?);
            ys.push(train.labels.index_select(&index, 0)?);
        }
        let (x, y) = (Tensor::stack(&xs, 0)?, Tensor::stack(&ys, 0)?);
        if crate::interrupt::requested() {
            return Err(crate::interrupt::Interrupted.into());
        }
        let losses = step(stack, learner, (&x, &y), rngs, &active)?;
        for (sum, batch_loss) in loss_sums.iter_mut().zip(losses) {
            *sum = (&*sum + batch_loss.detach())?;
        }
        if progress == Progress::Bar && (b % BAR_EVERY == BAR_EVERY - 1 || b + 1 == batches) {
            // One model alone shows its running loss (a host sync every BAR_EVERY batches).
            let running = match size {
                1 => Some(loss_sums[0].to_scalar::<f32>()? as f64 / (b + 1) as f64),
                _ => None,
            };
            bar.batch(b + 1, running);
        }
    }
    loss_sums
        .iter()
        .map(|s| Ok(s.to_scalar::<f32>()? as f64 / batches as f64))
        .collect()
}
