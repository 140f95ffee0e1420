pub fn compare(_runs: &[std::path::PathBuf], _out: &std::path::Path) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
