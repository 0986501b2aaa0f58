//! Loss and accuracy of every model of a stack over a split.

use anyhow::Result;
use candle_core::{DType, Tensor, D};
use rand_chacha::ChaCha8Rng;

use crate::run::config::LossKind;
use crate::run::data::DeviceSplit;
use crate::run::hidden::Pass;
use crate::run::stack::Stack;
use crate::run::step::loss;

/// One model's loss and accuracy over a split.
pub struct Evaluation {
    pub loss: f64,
    pub acc: f64,
}

/// Images per forward pass.
const EVAL_CHUNK: usize = 2048;

/// Each included model's loss and accuracy over `split` (every model sees the same images;
/// `None` for the others), as a model evaluated alone gets them. Per chunk, the losses and
/// correct counts of all models come to the host in one transfer.
pub fn evaluate(
    stack: &Stack,
    split: &DeviceSplit,
    pass: Pass,
    kind: LossKind,
    rngs: &mut [ChaCha8Rng],
    include: &[bool],
) -> Result<Vec<Option<Evaluation>>> {
    let (n, models) = (split.len(), stack.len());
    let (mut loss_sums, mut correct) = (vec![0f64; models], vec![0f64; models]);
    let included: Vec<usize> = (0..models).filter(|&m| include[m]).collect();
    for start in (0..n).step_by(EVAL_CHUNK) {
        let len = EVAL_CHUNK.min(n - start);
        let x = split.images.narrow(0, start, len)?;
        let x = x
            .unsqueeze(0)?
            .broadcast_as((models, len, x.dim(1)?))?
            .contiguous()?;
        let y = split.labels.narrow(0, start, len)?;
        let (logits, _) = stack.forward(&x, pass, rngs, include)?;
        let mut parts = Vec::with_capacity(2 * included.len());
        for &m in &included {
            let logits = logits.get(m)?;
            parts.push(loss(&logits, &y, kind)?.to_dtype(DType::F64)?);
            let right = logits.argmax(D::Minus1)?.eq(&y)?.to_dtype(DType::F64)?;
            parts.push(right.sum_all()?);
        }
        if parts.is_empty() {
            continue;
        }
        let values = Tensor::stack(&parts, 0)?.to_vec1::<f64>()?;
        for (j, &m) in included.iter().enumerate() {
            loss_sums[m] += values[2 * j] * len as f64;
            correct[m] += values[2 * j + 1];
        }
    }
    Ok((0..models)
        .map(|m| {
            include[m].then(|| Evaluation {
                loss: loss_sums[m] / n as f64,
                acc: correct[m] / n as f64,
            })
        })
        .collect())
}
