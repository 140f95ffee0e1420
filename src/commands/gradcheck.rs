//! `microgpt gradcheck`: the tensor engine against the scalar reference engine on a
//! user's config and data, one line per tensor.

use crate::cli::GradcheckArgs;
use anyhow::{bail, Result};
use microgpt::data::Corpus;
use microgpt::model::engine::Engine;
use microgpt::model::engine::EngineKind;
use microgpt::model::scalar::ScalarGpt;
use microgpt::model::{with_engine, EngineTask};
use microgpt::numerics::rng::Rng;
use microgpt::settings::DataSettings;
use microgpt::training::gradcheck::{self, Deviation};
use microgpt::training::memory::{self, Need, Workload};

pub fn run(args: &GradcheckArgs) -> Result<()> {
    let mut rng = Rng::new(args.data.seed);
    let data = DataSettings {
        input: args.data.input.clone(),
        data: args.data.data,
        seed: args.data.seed,
        val_frac: 0.0,
    };
    let model = args.model.args();
    let corpus = Corpus::load(&data, model.block_size, &mut rng)?;
    let cfg = model.config(corpus.vocab.size());
    cfg.validate()?;
    memory::check_with(
        &cfg,
        &Workload::gradcheck(args.dtype, args.batch_size, &corpus, model.block_size),
        &[Need::batches(args.batches, args.batch_size)],
    )?;
    let params = cfg.layout().init(&mut rng, model.init_std);
    let source = corpus.batches(args.batch_size, model.block_size, data.seed);
    let batches: Vec<Vec<&[usize]>> = (0..args.batches).map(|step| source.batch(step)).collect();
    let task = CompareTask {
        reference: ScalarGpt::new(&cfg, &params)?,
        batches: &batches,
    };
    let deviations = with_engine(EngineKind::Tensor, args.dtype, &cfg, &params, task)?;
    let tolerance = args.tolerance();
    print!("{}", gradcheck::table(&deviations, tolerance));
    let worst = gradcheck::worst(&deviations);
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
        gradcheck::deviations(&mut engine, &mut self.reference, self.batches)
    }
}
