use crate::cli::SampleArgs;
pub fn sample(_args: &SampleArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
