//! The gradient check: the tensor engine's loss and gradients against the scalar reference
//! engine's, from the same parameters on the same batches.

use crate::cli::GradcheckArgs;
use crate::dtype::Float;
use crate::engine::{with_engine, Engine, EngineKind, EngineTask};
use crate::rng::Rng;
use crate::run::Corpus;
use crate::scalar::ScalarGpt;
use crate::train::batch_of;
use anyhow::{bail, Result};

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
pub fn compare<E: Engine, R: Engine<F = f64>>(
    engine: &mut E,
    reference: &mut R,
    batches: &[Vec<&[usize]>],
) -> Vec<Deviation> {
    let specs = reference.layout().specs.clone();
    let mut deviations = vec![Deviation::new("loss", (1, 1))];
    deviations.extend(
        specs
            .iter()
            .map(|s| Deviation::new(&s.name, (s.rows, s.cols))),
    );
    for batch in batches {
        let ours = engine.forward_backward(batch);
        let want = reference.forward_backward(batch);
        deviations[0].update(std::iter::once(ours), &[want]);
        for (dev, spec) in deviations[1..].iter_mut().zip(&specs) {
            let grads = engine.grads()[spec.range()].iter().map(|g| g.as_f64());
            dev.update(grads, &reference.grads()[spec.range()]);
        }
    }
    deviations
}

/// `microgpt gradcheck`: prints one line per tensor and the largest relative error; an
/// error when it exceeds the tolerance.
pub fn run(args: &GradcheckArgs) -> Result<()> {
    let mut rng = Rng::new(args.data.seed);
    let corpus = Corpus::load(args.data.input.as_deref(), &mut rng)?;
    let cfg = args.model.config(corpus.vocab.size());
    cfg.validate()?;
    let params = cfg.layout().init(&mut rng, args.init_std);
    let batches: Vec<Vec<&[usize]>> = (0..args.docs)
        .map(|step| batch_of(&corpus.tokens, step, args.batch_size))
        .collect();
    let task = CompareTask {
        reference: ScalarGpt::new(&cfg, &params)?,
        batches: &batches,
    };
    let deviations = with_engine(EngineKind::Tensor, args.dtype, &cfg, &params, task)?;
    let tolerance = args.tolerance();
    let mut worst = 0.0f64;
    for d in &deviations {
        let verdict = if d.max_rel <= tolerance {
            "OK"
        } else {
            "NOT OK"
        };
        println!(
            "{:<18} [{:>4}, {:>4}]  max abs {:.3e}  max rel {:.3e}  {verdict}",
            d.name, d.shape.0, d.shape.1, d.max_abs, d.max_rel
        );
        worst = worst.max(d.max_rel);
    }
    println!("max relative error: {worst:e}");
    if worst > tolerance {
        bail!("gradient check failed: max relative error {worst:e} exceeds the tolerance {tolerance:e}");
    }
    Ok(())
}

struct CompareTask<'a> {
    reference: ScalarGpt,
    batches: &'a [Vec<&'a [usize]>],
}

impl EngineTask for CompareTask<'_> {
    type Output = Vec<Deviation>;
    fn run<E: Engine>(mut self, mut engine: E) -> Vec<Deviation> {
        compare(&mut engine, &mut self.reference, self.batches)
    }
}
