//! The gradient check: one engine's loss and gradients against a reference engine's, from
//! the same parameters on the same batches, one [`Deviation`] per tensor; [`check`] runs it
//! for a user's config and data (`microgpt gradcheck`).

use crate::data::Corpus;
use crate::model::engine::{Engine, EngineKind};
use crate::model::scalar::ScalarGpt;
use crate::model::{with_engine, EngineTask};
use crate::numerics::dtype::{Dtype, Float};
use crate::numerics::rng::Rng;
use crate::settings::{Choice, DataSettings, ModelArgs};
use crate::training::memory::{self, Need, Workload};
use anyhow::{bail, Result};

/// Batches checked unless asked otherwise: the first ones of the shuffled documents.
pub const BATCHES: usize = 3;

/// The element types a gradient check checks (`gradcheck --dtype` offers these), and why
/// not the others.
pub const DTYPES: &[Dtype] = &[Dtype::F64, Dtype::F32];
pub const WHY_NOT_BF16: &str = "bf16 rounds every GEMM operand to 8 bits, beyond a gradient check's tolerance (bf16 training is checked by its loss curve against f32's)";

/// The largest relative error accepted per tensor unless asked otherwise.
pub fn default_tolerance(dtype: Dtype) -> f64 {
    match dtype {
        Dtype::F64 => 1e-9,
        Dtype::F32 | Dtype::Bf16 => 1e-3,
    }
}

/// The tensor engine in `dtype` against the scalar reference, from the initial weights of
/// `model` on `data` (its validation split ignored), on the first `batches` batches of
/// `batch_size` documents; with the warning when the data's lines are cropped to the block
/// ([`Corpus::crop_warning`]). `checked(n)` is called as each batch is done, `n` of
/// `batches` (the reference engine takes minutes on a large model).
pub fn check(
    data: &DataSettings,
    model: &ModelArgs,
    dtype: Dtype,
    batch_size: usize,
    batches: usize,
    checked: &mut dyn FnMut(usize),
) -> Result<(Vec<Deviation>, Option<String>)> {
    if !DTYPES.contains(&dtype) {
        let names: Vec<&str> = DTYPES.iter().map(|d| d.name()).collect();
        bail!("gradcheck checks {}: {WHY_NOT_BF16}", names.join(" or "));
    }
    let data = DataSettings {
        val_frac: 0.0,
        ..data.clone()
    };
    let mut rng = Rng::new(data.seed);
    let corpus = Corpus::load(&data, model.block_size, &mut rng)?;
    let cfg = model.config(corpus.vocab.size());
    cfg.validate()?;
    memory::check_with(
        &cfg,
        &Workload::gradcheck(dtype, batch_size, &corpus, model.block_size),
        &[Need::batches(batches, batch_size)],
    )?;
    let params = cfg.layout().init(&mut rng, model.init_std);
    let source = corpus.batches(batch_size, model.block_size, data.seed);
    let batches: Vec<Vec<&[usize]>> = (0..batches).map(|step| source.batch(step)).collect();
    let task = CompareTask {
        reference: ScalarGpt::new(&cfg, &params)?,
        batches: &batches,
        checked,
    };
    let deviations = with_engine(EngineKind::Tensor, dtype, &cfg, params.as_slice(), task)?;
    Ok((deviations, corpus.crop_warning(model.block_size)))
}

struct CompareTask<'a> {
    reference: ScalarGpt,
    batches: &'a [Vec<&'a [usize]>],
    checked: &'a mut dyn FnMut(usize),
}

impl EngineTask for CompareTask<'_> {
    type Output = Vec<Deviation>;
    fn run<E: Engine>(mut self, mut engine: E) -> Vec<Deviation> {
        deviations_reporting(&mut engine, &mut self.reference, self.batches, self.checked)
    }
}

/// How far one quantity (a parameter's gradient, or the loss) is from the reference, over
/// every batch checked: the largest `max|a - b|` and the largest `max|a - b| / max|b|`.
#[derive(Clone, Debug, PartialEq)]
pub struct Deviation {
    pub name: String,
    pub shape: (usize, usize),
    pub max_abs: f64,
    pub max_rel: f64,
}

impl Deviation {
    fn new(name: &str, shape: (usize, usize)) -> Self {
        Deviation {
            name: name.to_string(),
            shape,
            max_abs: 0.0,
            max_rel: 0.0,
        }
    }

    fn update(&mut self, ours: impl Iterator<Item = f64>, reference: &[f64]) {
        let (mut abs, mut scale) = (0.0f64, 0.0f64);
        for (a, &b) in ours.zip(reference) {
            abs = abs.max(not_nan((a - b).abs()));
            scale = scale.max(b.abs());
        }
        let rel = if abs == 0.0 {
            0.0
        } else {
            not_nan(abs / scale)
        };
        self.max_abs = self.max_abs.max(abs);
        self.max_rel = self.max_rel.max(rel);
    }
}

/// `f64::max` skips NaN; a NaN error must count as the worst.
fn not_nan(x: f64) -> f64 {
    if x.is_nan() {
        f64::INFINITY
    } else {
        x
    }
}

/// The loss (first) and every parameter tensor's gradient of `engine` against `reference`
/// after `forward_backward` on each of `batches`.
pub fn deviations<E: Engine, R: Engine<F = f64>>(
    engine: &mut E,
    reference: &mut R,
    batches: &[Vec<&[usize]>],
) -> Vec<Deviation> {
    deviations_reporting(engine, reference, batches, &mut |_| {})
}

/// [`deviations`], calling `checked(n)` as the `n`th batch is done.
fn deviations_reporting<E: Engine, R: Engine<F = f64>>(
    engine: &mut E,
    reference: &mut R,
    batches: &[Vec<&[usize]>],
    checked: &mut dyn FnMut(usize),
) -> Vec<Deviation> {
    let specs = reference.layout().specs.clone();
    let mut deviations = vec![Deviation::new("loss", (1, 1))];
    deviations.extend(
        specs
            .iter()
            .map(|s| Deviation::new(&s.name, (s.rows, s.cols))),
    );
    for (n, batch) in batches.iter().enumerate() {
        let ours = engine.forward_backward(batch);
        let want = reference.forward_backward(batch);
        deviations[0].update(std::iter::once(ours), &[want]);
        for (dev, spec) in deviations[1..].iter_mut().zip(&specs) {
            let grads = engine.grads()[spec.range()].iter().map(|g| g.as_f64());
            dev.update(grads, &reference.grads()[spec.range()]);
        }
        checked(n + 1);
    }
    deviations
}

/// The verdict column of a deviation table.
pub fn verdict(max_rel: f64, tolerance: f64) -> &'static str {
    if max_rel <= tolerance {
        "OK"
    } else {
        "NOT OK"
    }
}

/// llm.c's table: one line per tensor (name, shape, max abs, max rel, OK / NOT OK).
pub fn table(deviations: &[Deviation], tolerance: f64) -> String {
    deviations
        .iter()
        .map(|d| {
            format!(
                "{:<18} [{:>4}, {:>4}]  max abs {:.3e}  max rel {:.3e}  {}\n",
                d.name,
                d.shape.0,
                d.shape.1,
                d.max_abs,
                d.max_rel,
                verdict(d.max_rel, tolerance)
            )
        })
        .collect()
}

/// The largest relative error of any tensor.
pub fn worst(deviations: &[Deviation]) -> f64 {
    deviations.iter().map(|d| d.max_rel).fold(0.0, f64::max)
}
