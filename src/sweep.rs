use crate::cli::SweepArgs;
pub fn sweep(_args: &SweepArgs) -> anyhow::Result<crate::interrupt::Outcome> {
    anyhow::bail!("not implemented yet")
}
