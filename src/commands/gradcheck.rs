//! `microgpt gradcheck`: the tensor engine against the scalar reference engine on a
//! user's config and data, one line per tensor.

use crate::cli::GradcheckArgs;
use anyhow::{bail, Result};
use microgpt::settings::DataSettings;
use microgpt::training::gradcheck;

pub fn run(args: &GradcheckArgs) -> Result<()> {
    let data = DataSettings {
        input: args.data.input.clone(),
        data: args.data.data,
        seed: args.data.seed,
        val_frac: 0.0,
    };
    let deviations = gradcheck::check(
        &data,
        &args.model.args(),
        args.dtype,
        args.batch_size,
        args.batches,
    )?;
    let tolerance = args.tolerance();
    print!("{}", gradcheck::table(&deviations, tolerance));
    let worst = gradcheck::worst(&deviations);
    println!("max relative error: {worst:e}");
    if worst > tolerance {
        bail!("gradient check failed: max relative error {worst:e} exceeds the tolerance {tolerance:e}");
    }
    Ok(())
}
