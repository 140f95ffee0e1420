//! How the flags that are no setting are parsed and checked (the settings' flags are in
//! `flags.rs`): every refusal is a message of the flag's own, negative numbers included.

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use microgpt::settings;
use std::path::PathBuf;

/// A path that must be UTF-8 because config.json records it as text. Any other path is
/// refused naming it (lossily), rather than failing later without saying which.
#[derive(Clone)]
pub struct Utf8Path;

impl TypedValueParser for Utf8Path {
    type Value = PathBuf;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<PathBuf, clap::Error> {
        match value.to_str() {
            Some(text) => Ok(PathBuf::from(text)),
            None => {
                let flag = arg.and_then(|a| a.get_long()).unwrap_or("path");
                let message = format!(
                    "the path {} given to --{flag} is not valid UTF-8, which config.json cannot record: rename it\n",
                    std::path::Path::new(value).display()
                );
                Err(clap::Error::raw(ErrorKind::InvalidUtf8, message).with_cmd(cmd))
            }
        }
    }
}

/// A whole number of at least 1, for a flag that is no setting (`--jobs`, `--batches`).
pub fn at_least_one(s: &str) -> Result<usize, String> {
    settings::parse_number(s, settings::at_least_one)
}

/// A positive number, for a flag that is no setting (`--tolerance`).
pub fn positive(s: &str) -> Result<f64, String> {
    settings::parse_number(s, settings::positive)
}

pub fn size(s: &str) -> Result<u64, String> {
    microgpt::training::memory::parse_size(s).map_err(|e| e.to_string())
}
