//! Reading an input file whatever it is: at most [`MAX_INPUT_BYTES`] (so `/dev/zero` ends),
//! valid UTF-8 (checked as it is read, so `/dev/urandom` ends at once), without a leading
//! byte-order mark.

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::Path;

/// The most bytes a dataset may hold. Larger inputs, and inputs that never end
/// (`/dev/zero`), are an error once this much is read.
pub const MAX_INPUT_BYTES: u64 = 1 << 30;

/// Reads a dataset as UTF-8 text, without a leading byte-order mark; an unreadable or
/// non-UTF-8 file is an error. It reads the stream, not the file's size, so pipes
/// (`--input <(zcat names.gz)`) work; it stops with an error past [`MAX_INPUT_BYTES`], and
/// at the first invalid UTF-8 as soon as it is read.
pub fn read_bounded(path: &Path) -> Result<String> {
    let context = || format!("cannot read dataset {}", path.display());
    let mut reader = std::fs::File::open(path)
        .with_context(context)?
        .take(MAX_INPUT_BYTES + 1);
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 1 << 20];
    let mut valid = 0;
    loop {
        let got = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(got) => got,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(context),
        };
        if (bytes.len() + got) as u64 > MAX_INPUT_BYTES {
            bail!(
                "dataset {} is larger than the {} GiB limit on inputs (or never ends)",
                path.display(),
                MAX_INPUT_BYTES >> 30
            );
        }
        bytes.extend_from_slice(&chunk[..got]);
        valid = utf8_prefix(&bytes, valid, path)?;
    }
    if valid < bytes.len() {
        return Err(not_utf8(path, valid));
    }
    let mut text = String::from_utf8(bytes).expect("checked above");
    // A byte-order mark is an encoding marker some editors write, not text.
    if text.starts_with(BOM) {
        text.drain(..BOM.len_utf8());
    }
    Ok(text)
}

const BOM: char = '\u{feff}';

/// How much of `bytes` is valid UTF-8, given that the first `from` bytes are; a character
/// cut at the end may be completed by the next read.
fn utf8_prefix(bytes: &[u8], from: usize, path: &Path) -> Result<usize> {
    match std::str::from_utf8(&bytes[from..]) {
        Ok(_) => Ok(bytes.len()),
        Err(e) if e.error_len().is_none() => Ok(from + e.valid_up_to()),
        Err(e) => Err(not_utf8(path, from + e.valid_up_to())),
    }
}

fn not_utf8(path: &Path, byte: usize) -> anyhow::Error {
    anyhow::anyhow!(
        "dataset {} is not valid UTF-8 (byte {byte})",
        path.display()
    )
}

/// Errors unless `path` can be read again as the same text: a regular file. A run's
/// recorded dataset is read again (to resume, to compare samples with) only from one: a
/// pipe it was trained from is gone, and a FIFO or device would be waited on or read
/// without end.
pub fn check_rereadable(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(meta) => bail!(
            "{} is a {}, whose text cannot be read again",
            path.display(),
            crate::data::files::kind(&meta)
        ),
        Err(e) => bail!("{} cannot be read again ({e})", path.display()),
    }
}
