//! The dataset (docs/SPEC.md §1): one document per line, a character vocabulary plus BOS, and
//! the original's way of finding its input (`--input`, else `input.txt`, else download); the
//! shuffled [`Corpus`], its train/validation split, and the sequences each step trains on.

use crate::config::ParamLayout;
use crate::rng::Rng;
use crate::settings::DataSettings;
use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Positions a sequence of `len` tokens predicts in a model of `block_size`: every token
/// but the first is a target, cropped to the block (the original's `min(block_size, n)`).
pub fn predictions(len: usize, block_size: usize) -> usize {
    block_size.min(len - 1)
}

/// The shuffled documents, their vocabulary and encodings, and the train/validation split.
pub struct Corpus {
    pub path: PathBuf,
    pub docs: Vec<String>,
    pub vocab: Vocab,
    pub tokens: Vec<Vec<usize>>,
    /// The first `n_train` documents train; the rest validate.
    pub n_train: usize,
}

impl Corpus {
    /// Reads the dataset and shuffles it with `rng`, the first draws of the stream.
    pub fn load(settings: &DataSettings, rng: &mut Rng) -> Result<Self> {
        if settings.data == crate::settings::DataMode::Stream {
            bail!("--data stream is not built yet");
        }
        let url = std::env::var("MICROGPT_DATA_URL").unwrap_or_else(|_| NAMES_URL.into());
        let path = resolve_input(settings.input.as_deref(), &url)?;
        let mut docs = read_docs(&path)?;
        rng.shuffle(&mut docs);
        let vocab = Vocab::from_docs(&docs);
        let tokens = docs.iter().map(|d| vocab.encode_doc(d)).collect();
        let n_train = train_split(docs.len(), settings.val_frac)?;
        Ok(Corpus {
            path,
            docs,
            vocab,
            tokens,
            n_train,
        })
    }

    /// The training batches, `batch_size` documents a step.
    pub fn batches(&self, batch_size: usize) -> DocBatches<'_> {
        DocBatches {
            docs: &self.tokens[..self.n_train],
            batch_size,
        }
    }

    /// The validation documents.
    pub fn val_sequences(&self) -> Vec<&[usize]> {
        self.tokens[self.n_train..]
            .iter()
            .map(Vec::as_slice)
            .collect()
    }

    /// The training documents as text.
    pub fn train_docs(&self) -> &[String] {
        &self.docs[..self.n_train]
    }
}

/// How many of `num_docs` shuffled documents train: the last `val_frac` of them (at least
/// one when `val_frac > 0`) are held out for validation.
pub fn train_split(num_docs: usize, val_frac: f64) -> Result<usize> {
    let n_val = if val_frac > 0.0 {
        ((num_docs as f64 * val_frac).round() as usize).max(1)
    } else {
        0
    };
    if n_val >= num_docs {
        bail!("--val-frac {val_frac} leaves none of the {num_docs} documents for training");
    }
    Ok(num_docs - n_val)
}

/// The run's RNG after the shuffle and the weight init, rebuilt without the dataset: the
/// shuffle's draws depend only on the number of documents. Training draws nothing, so
/// this is the stream the run's own samples come from.
pub fn rng_after_init(seed: u64, num_docs: usize, layout: &ParamLayout, init_std: f64) -> Rng {
    let mut rng = Rng::new(seed);
    rng.shuffle(&mut vec![(); num_docs]);
    layout.init(&mut rng, init_std);
    rng
}

/// Where each training step's sequences come from.
pub trait BatchSource {
    /// The sequences of 0-based `step`: token ids, each predicting
    /// [`predictions`]`(len, block_size)` positions.
    fn batch(&self, step: usize) -> Vec<&[usize]>;
}

/// One document per line: step `s` takes documents `s*B .. s*B+B-1`, cyclically (the
/// original's order for `B = 1`).
pub struct DocBatches<'a> {
    docs: &'a [Vec<usize>],
    batch_size: usize,
}

impl BatchSource for DocBatches<'_> {
    fn batch(&self, step: usize) -> Vec<&[usize]> {
        (0..self.batch_size)
            .map(|b| self.docs[(step * self.batch_size + b) % self.docs.len()].as_slice())
            .collect()
    }
}

/// Where the original downloads the names list from when `input.txt` is missing.
pub const NAMES_URL: &str = "https://raw.githubusercontent.com/karpathy/makemore/988aa59/names.txt";

/// Splits on `\n`, `\r\n` or `\r` (Python's universal newlines), strips each line as
/// `str.strip()` does and drops the empty ones.
pub fn parse_docs(text: &str) -> Vec<String> {
    // Splitting the bytes at the ASCII line ends keeps every piece valid UTF-8, and is much
    // faster than splitting on a char pattern.
    text.as_bytes()
        .split(|&b| b == b'\n' || b == b'\r')
        .filter_map(|line| {
            let line = std::str::from_utf8(line).expect("split at ASCII bytes");
            let doc = line.trim_matches(is_python_space);
            (!doc.is_empty()).then(|| doc.to_string())
        })
        .collect()
}

/// Python's `str.isspace()`: Unicode White_Space plus the separators U+001C..U+001F.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Reads a UTF-8 text file of documents (see [`read_text`]); a blank file is an error.
pub fn read_docs(path: &Path) -> Result<Vec<String>> {
    let docs = parse_docs(&read_text(path)?);
    if docs.is_empty() {
        bail!(
            "dataset {} has no documents (it is empty or all blank lines)",
            path.display()
        );
    }
    Ok(docs)
}

/// The most bytes a dataset may hold. Larger inputs, and inputs that never end
/// (`/dev/zero`), are an error once this much is read.
pub const MAX_INPUT_BYTES: u64 = 1 << 30;

/// Reads a dataset as UTF-8 text, without a leading byte-order mark. It reads the stream,
/// not the file's size, so pipes (`--input <(zcat names.gz)`) work; it stops with an error
/// past [`MAX_INPUT_BYTES`], and at the first invalid UTF-8 as soon as it is read.
pub fn read_text(path: &Path) -> Result<String> {
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

/// The input file as the original finds it: `input` when given; else `input.txt` in the
/// working directory, downloading the names list from `url` to it when missing.
pub fn resolve_input(input: Option<&Path>, url: &str) -> Result<PathBuf> {
    if let Some(path) = input {
        return Ok(path.to_path_buf());
    }
    let path = PathBuf::from("input.txt");
    if !path.exists() {
        eprintln!("input.txt not found: downloading {url}");
        download(url, &path).with_context(|| {
            format!("no dataset: pass --input FILE (downloading {url} to input.txt failed)")
        })?;
    }
    Ok(path)
}

/// Fetches `url` into `dest` atomically, so a failed download leaves no partial file.
pub fn download(url: &str, dest: &Path) -> Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(60)))
        .build()
        .into();
    let bytes = agent
        .get(url)
        .call()
        .with_context(|| format!("GET {url}"))?
        .into_body()
        .with_config()
        .limit(512 * 1024 * 1024)
        .read_to_vec()
        .with_context(|| format!("reading {url}"))?;
    crate::files::write_atomic(dest, &bytes)
}

/// Characters sorted by code point get ids `0..n`; `BOS = n`.
#[derive(Clone, Debug, PartialEq)]
pub struct Vocab {
    chars: Vec<char>,
    /// The id of each ASCII character (`NO_ID` if absent): the common case without a search.
    ascii_ids: [u32; 128],
}

const NO_ID: u32 = u32::MAX;

impl Vocab {
    pub fn from_docs(docs: &[String]) -> Self {
        let mut ascii = [false; 128];
        let mut other = BTreeSet::new();
        for c in docs.iter().flat_map(|d| d.chars()) {
            match ascii.get_mut(c as usize) {
                Some(seen) => *seen = true,
                None => {
                    other.insert(c);
                }
            }
        }
        let chars = (0u8..128)
            .filter(|&b| ascii[b as usize])
            .map(char::from)
            .chain(other)
            .collect();
        Vocab::from_chars(chars)
    }

    pub fn from_chars(chars: Vec<char>) -> Self {
        let mut ascii_ids = [NO_ID; 128];
        for (id, &c) in chars.iter().enumerate() {
            if let Some(slot) = ascii_ids.get_mut(c as usize) {
                *slot = id as u32;
            }
        }
        Vocab { chars, ascii_ids }
    }

    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    pub fn bos(&self) -> usize {
        self.chars.len()
    }

    /// Characters plus BOS.
    pub fn size(&self) -> usize {
        self.chars.len() + 1
    }

    pub fn id(&self, c: char) -> Option<usize> {
        match self.ascii_ids.get(c as usize) {
            Some(&NO_ID) => None,
            Some(&id) => Some(id as usize),
            None => self.chars.binary_search(&c).ok(),
        }
    }

    /// `[BOS] + ids(doc) + [BOS]`. Panics on a character outside the vocabulary, which cannot
    /// happen for the documents the vocabulary was built from; see [`Vocab::encode_prompt`].
    pub fn encode_doc(&self, doc: &str) -> Vec<usize> {
        let mut tokens = Vec::with_capacity(doc.len() + 2);
        tokens.push(self.bos());
        tokens.extend(doc.chars().map(|c| {
            self.id(c)
                .expect("document character outside its vocabulary")
        }));
        tokens.push(self.bos());
        tokens
    }

    /// Ids of a user-supplied prompt; characters outside the vocabulary are an error naming them.
    pub fn encode_prompt(&self, prompt: &str) -> Result<Vec<usize>> {
        let unknown: BTreeSet<char> = prompt.chars().filter(|&c| self.id(c).is_none()).collect();
        if !unknown.is_empty() {
            let list: Vec<String> = unknown.iter().map(|c| format!("{c:?}")).collect();
            bail!(
                "prompt has characters outside the vocabulary: {}",
                list.join(", ")
            );
        }
        Ok(prompt.chars().map(|c| self.id(c).unwrap()).collect())
    }

    pub fn decode(&self, ids: &[usize]) -> String {
        ids.iter()
            .filter(|&&i| i < self.chars.len())
            .map(|&i| self.chars[i])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_on_every_line_ending_and_are_stripped() {
        let docs = parse_docs("  ann\r\nbob\rcé  \n\n \t \r\n\u{1f}zoë\u{3000}\n");
        assert_eq!(docs, ["ann", "bob", "cé", "zoë"]);
    }

    #[test]
    fn vocab_orders_by_code_point_and_round_trips() {
        let docs = parse_docs("zoë\nabe\n");
        let v = Vocab::from_docs(&docs);
        assert_eq!(v.chars(), ['a', 'b', 'e', 'o', 'z', 'ë']);
        assert_eq!(v.bos(), 6);
        let t = v.encode_doc("zoë");
        assert_eq!(t, [6, 4, 3, 5, 6]);
        assert_eq!(v.decode(&t), "zoë");
        let err = v.encode_prompt("zax!").unwrap_err().to_string();
        assert!(err.contains("'!', 'x'"), "{err}");
    }
}
