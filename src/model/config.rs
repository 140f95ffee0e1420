//! Model configuration, its validation, and the flat parameter layout (docs/SPEC.md §2) that
//! every engine, the optimizer and the checkpoint share.

use serde::{Deserialize, Serialize};

/// The MLP's non-linearity (mission C).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `max(0, x)`, the original's.
    #[default]
    Relu,
    /// GPT-2's tanh approximation: `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`.
    Gelu,
    /// Squared relu: `max(0, x)²`.
    Relu2,
}

pub const GELU_C: f64 = 0.797_884_560_802_865_4; // √(2/π)
pub const GELU_A: f64 = 0.044_715;

impl Activation {
    /// The activation and its derivative at `x`.
    pub fn forward_and_grad(self, x: f64) -> (f64, f64) {
        match self {
            // Python's max(0, x) keeps the first maximal argument: 0 unless x > 0.
            Activation::Relu => {
                if x > 0.0 {
                    (x, 1.0)
                } else {
                    (0.0, 0.0)
                }
            }
            Activation::Relu2 => {
                if x > 0.0 {
                    (x * x, 2.0 * x)
                } else {
                    (0.0, 0.0)
                }
            }
            Activation::Gelu => {
                let u = GELU_C * (x + GELU_A * x * x * x);
                let t = u.tanh();
                let du = GELU_C * (1.0 + 3.0 * GELU_A * x * x);
                (
                    0.5 * x * (1.0 + t),
                    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du,
                )
            }
        }
    }
}

/// The shape of a GPT. `vocab_size` includes the BOS token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub vocab_size: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_layer: usize,
    pub block_size: usize,
    #[serde(default)]
    pub activation: Activation,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error("n_embd ({n_embd}) must be divisible by n_head ({n_head})")]
    HeadsDoNotDivide { n_embd: usize, n_head: usize },
    #[error("{found} parameters given, the model has {expected}")]
    ParamCount { expected: usize, found: usize },
}

impl ModelConfig {
    /// The number of parameters, `None` beyond 2^128 (see [`ParamLayout`]), computed without
    /// overflow however absurd the config: wte and lm_head `[V, C]`, wpe `[T, C]`, and per
    /// layer four `[C, C]` and two `[4C, C]`.
    pub fn param_count(&self) -> Option<u128> {
        let (v, c, t, l) = (
            self.vocab_size as u128,
            self.n_embd as u128,
            self.block_size as u128,
            self.n_layer as u128,
        );
        let embeddings = v
            .checked_mul(c)?
            .checked_mul(2)?
            .checked_add(t.checked_mul(c)?)?;
        let layers = l.checked_mul(12)?.checked_mul(c)?.checked_mul(c)?;
        embeddings.checked_add(layers)
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    pub fn mlp_dim(&self) -> usize {
        4 * self.n_embd
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("vocab_size", self.vocab_size),
            ("n_embd", self.n_embd),
            ("n_head", self.n_head),
            ("n_layer", self.n_layer),
            ("block_size", self.block_size),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return Err(ConfigError::HeadsDoNotDivide {
                n_embd: self.n_embd,
                n_head: self.n_head,
            });
        }
        Ok(())
    }

    pub fn layout(&self) -> ParamLayout {
        ParamLayout::new(self)
    }

    /// Checks the config and that `params` fit it: what an engine needs before it is built.
    pub fn check_params(&self, params: &[f64]) -> Result<ParamLayout, ConfigError> {
        self.validate()?;
        let layout = self.layout();
        if params.len() != layout.total {
            return Err(ConfigError::ParamCount {
                expected: layout.total,
                found: params.len(),
            });
        }
        Ok(layout)
    }
}

/// One weight matrix `[rows][cols]` (= `[out][in]`) inside the flat parameter vector.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub rows: usize,
    pub cols: usize,
    pub offset: usize,
}

impl ParamSpec {
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// One layer's matrices. `attn_wq`, `attn_wk` and `attn_wv` are adjacent, in that order.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerParams {
    pub attn_wq: ParamSpec,
    pub attn_wk: ParamSpec,
    pub attn_wv: ParamSpec,
    pub attn_wo: ParamSpec,
    pub mlp_fc1: ParamSpec,
    pub mlp_fc2: ParamSpec,
}

/// Every parameter matrix in microgpt's `state_dict` order, packed into one flat vector.
/// The names (`wte`, `layer0.attn_wq`, ...) are spelled here only.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamLayout {
    /// All matrices in layout order.
    pub specs: Vec<ParamSpec>,
    pub total: usize,
    pub wte: ParamSpec,
    pub wpe: ParamSpec,
    pub lm_head: ParamSpec,
    pub layers: Vec<LayerParams>,
}

impl ParamLayout {
    fn new(c: &ModelConfig) -> Self {
        let d = c.n_embd;
        let mut specs = Vec::new();
        let mut offset = 0;
        let mut add = |name: String, rows: usize, cols: usize| {
            let spec = ParamSpec {
                name,
                rows,
                cols,
                offset,
            };
            offset += rows * cols;
            specs.push(spec.clone());
            spec
        };
        let wte = add("wte".into(), c.vocab_size, d);
        let wpe = add("wpe".into(), c.block_size, d);
        let lm_head = add("lm_head".into(), c.vocab_size, d);
        let layers = (0..c.n_layer)
            .map(|i| LayerParams {
                attn_wq: add(format!("layer{i}.attn_wq"), d, d),
                attn_wk: add(format!("layer{i}.attn_wk"), d, d),
                attn_wv: add(format!("layer{i}.attn_wv"), d, d),
                attn_wo: add(format!("layer{i}.attn_wo"), d, d),
                mlp_fc1: add(format!("layer{i}.mlp_fc1"), c.mlp_dim(), d),
                mlp_fc2: add(format!("layer{i}.mlp_fc2"), d, c.mlp_dim()),
            })
            .collect();
        ParamLayout {
            specs,
            total: offset,
            wte,
            wpe,
            lm_head,
            layers,
        }
    }

    /// `gauss(0, std)` for every element in layout order, as the original's `matrix()` calls.
    pub fn init(&self, rng: &mut crate::numerics::rng::Rng, std: f64) -> Vec<f64> {
        (0..self.total).map(|_| rng.gauss(0.0, std)).collect()
    }
}

/// Positions a sequence of `len` tokens predicts in a model of `block_size`: every token
/// but the first is a target, cropped to the block (the original's `min(block_size, n)`).
pub fn predictions(len: usize, block_size: usize) -> usize {
    block_size.min(len - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ModelConfig {
        ModelConfig {
            vocab_size: 27,
            n_embd: 16,
            n_head: 4,
            n_layer: 1,
            block_size: 16,
            activation: Activation::Relu,
        }
    }

    #[test]
    fn default_layout_has_the_originals_4192_params() {
        let layout = cfg().layout();
        assert_eq!(layout.total, 4192);
        let names: Vec<_> = layout.specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "wte",
                "wpe",
                "lm_head",
                "layer0.attn_wq",
                "layer0.attn_wk",
                "layer0.attn_wv",
                "layer0.attn_wo",
                "layer0.mlp_fc1",
                "layer0.mlp_fc2"
            ]
        );
        assert_eq!(layout.layers[0].mlp_fc2.cols, 64);
    }

    #[test]
    fn validation_names_the_problem() {
        let mut c = cfg();
        c.n_head = 3;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "n_embd (16) must be divisible by n_head (3)"
        );
        c.n_head = 4;
        c.block_size = 0;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "block_size must be at least 1"
        );
    }

    #[test]
    fn activation_gradients_match_finite_differences() {
        for act in [Activation::Relu, Activation::Gelu, Activation::Relu2] {
            for x in [-2.3, -0.4, 0.3, 1.7] {
                let h = 1e-6;
                let fd =
                    (act.forward_and_grad(x + h).0 - act.forward_and_grad(x - h).0) / (2.0 * h);
                let (_, g) = act.forward_and_grad(x);
                assert!((fd - g).abs() < 1e-8, "{act} at {x}: {fd} vs {g}");
            }
        }
    }
}
