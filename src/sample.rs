//! Temperature sampling (docs/SPEC.md §4): `softmax(logits / T)` with the original's
//! arithmetic, then one weighted draw from CPython's `choices`.

use crate::engine::Engine;
use crate::pymath::pow;
use crate::rng::Rng;

/// `softmax([l / T for l in logits])` as the original's Value ops compute it:
/// `l * T**-1`, `exp(x - max)`, a sum from 0, then `e * total**-1`.
pub fn probs_at_temperature(logits: &[f64], temperature: f64, probs: &mut [f64]) {
    let inv_t = pow(temperature, -1.0);
    let mut max = f64::NEG_INFINITY;
    for (p, &l) in probs.iter_mut().zip(logits) {
        *p = l * inv_t;
        if *p > max {
            max = *p;
        }
    }
    let mut total = 0.0;
    for p in probs.iter_mut() {
        *p = (*p + -max).exp();
        total += *p;
    }
    let inv_total = pow(total, -1.0);
    probs.iter_mut().for_each(|p| *p *= inv_total);
}

/// Generates one sequence: BOS, then the `prompt` ids fed as given, then draws until BOS
/// or `block_size` positions. Returns the ids after BOS (prompt included, final BOS not).
pub fn generate<E: Engine>(
    engine: &mut E,
    rng: &mut Rng,
    prompt: &[usize],
    temperature: f64,
) -> Vec<usize> {
    let cfg = engine.config();
    let (vocab_size, block_size) = (cfg.vocab_size, cfg.block_size);
    let bos = vocab_size - 1;
    let mut logits = vec![0.0; vocab_size];
    let mut probs = vec![0.0; vocab_size];
    let mut out: Vec<usize> = prompt.to_vec();
    engine.reset_decode();
    let mut token = bos;
    for pos in 0..block_size {
        engine.decode(token, pos, &mut logits);
        if pos < prompt.len() {
            token = prompt[pos];
            continue;
        }
        probs_at_temperature(&logits, temperature, &mut probs);
        token = rng.choice_weighted(&probs);
        if token == bos {
            break;
        }
        out.push(token);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_sum_to_one_and_sharpen_with_low_temperature() {
        let logits = [1.0, 2.0, 0.5];
        let mut hot = [0.0; 3];
        let mut cold = [0.0; 3];
        probs_at_temperature(&logits, 1.0, &mut hot);
        probs_at_temperature(&logits, 0.2, &mut cold);
        assert!((hot.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert!(cold[1] > hot[1]);
    }
}
