//! `microgpt gradcheck`: the tensor engine against the scalar reference engine on a
//! user's config and data, one line per tensor; progress with an estimate on stderr while
//! the reference engine works.

use super::progress::Work;
use crate::cli::GradcheckArgs;
use anyhow::{bail, Result};
use microgpt::training::gradcheck;

pub fn run(args: &GradcheckArgs) -> Result<()> {
    let settings = args.flags.settings();
    settings.validate()?;
    let what = format!(
        "checking {} batches of {}",
        args.batches, settings.schedule.batch_size
    );
    let mut work = Work::new(what, args.batches);
    let checked = gradcheck::check(
        &settings.data,
        &settings.model,
        settings.system.dtype,
        settings.schedule.batch_size,
        args.batches,
        &mut |_| work.add(1),
    );
    work.finish();
    let (deviations, crop_warning) = checked?;
    if let Some(warning) = crop_warning {
        eprintln!("warning: {warning}");
    }
    let tolerance = args.tolerance();
    print!("{}", gradcheck::table(&deviations, tolerance));
    let worst = gradcheck::worst(&deviations);
    println!("max relative error: {worst:e}");
    if worst > tolerance {
        bail!("gradient check failed: max relative error {worst:e} exceeds the tolerance {tolerance:e}");
    }
    Ok(())
}
