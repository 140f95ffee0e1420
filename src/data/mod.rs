//! The data: reading an input file (`input`), the character vocabulary (`vocab`), the
//! dataset (docs/SPEC.md §1) — one document per line, or one stream of text — found the
//! original's way (`--input`, else `input.txt`, else download), shuffled into the
//! [`Corpus`] with its train/validation split and the sequences each step trains on — and
//! files written atomically with their checksums (`files`). Uses `numerics`, `model` and
//! `settings`.

pub mod files;
pub mod input;
pub mod vocab;

use crate::data::files::sha256_hex;
use crate::data::input::read_bounded;
pub use crate::data::input::MAX_INPUT_BYTES;
pub use crate::data::vocab::Vocab;
use crate::model::config::ParamLayout;
use crate::numerics::rng::{splitmix64, Rng};
use crate::settings::{DataMode, DataSettings};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// A dataset ready to train on: its vocabulary and its tokens, split into training and
/// validation parts.
pub struct Corpus {
    pub path: PathBuf,
    /// SHA-256 of the text read (a leading byte-order mark dropped): the run's fingerprint
    /// of its data, which a resume must find again.
    pub sha256: String,
    pub vocab: Vocab,
    pub text: Text,
}

/// The tokens of a corpus in its data mode.
pub enum Text {
    /// The shuffled documents, each encoded as `[BOS] + ids + [BOS]`; the first `n_train`
    /// train, the rest validate.
    Lines {
        docs: Vec<String>,
        tokens: Vec<Vec<usize>>,
        n_train: usize,
    },
    /// The whole text as one sequence of ids (no BOS); the first `n_train` train, the rest
    /// (a contiguous tail) validates.
    Stream { tokens: Vec<usize>, n_train: usize },
}

impl Corpus {
    /// Reads the dataset in `settings.data` mode. Lines are shuffled with `rng`, the first
    /// draws of the stream; a stream draws nothing.
    pub fn load(settings: &DataSettings, block_size: usize, rng: &mut Rng) -> Result<Self> {
        Corpus::load_within(settings, block_size, rng, &|_, _| Ok(()))
    }

    /// [`Corpus::load`], asking `budget` first whether the memory fits: it gets the bytes
    /// of text read, and at most how many its documents and tokens will take.
    pub fn load_within(
        settings: &DataSettings,
        block_size: usize,
        rng: &mut Rng,
        budget: &dyn Fn(u128, u128) -> Result<()>,
    ) -> Result<Self> {
        let url = std::env::var("MICROGPT_DATA_URL").unwrap_or_else(|_| NAMES_URL.into());
        let path = resolve_input(settings.input.as_deref(), &url)?;
        let raw = read_text(&path)?;
        // Upper bounds: every line a document, every character a token.
        let lines = raw.bytes().filter(|&b| b == b'\n' || b == b'\r').count() + 1;
        let chars = raw.chars().count();
        let most = match settings.data {
            DataMode::Lines => held_bytes(settings.data, lines, raw.len(), chars + 2 * lines),
            DataMode::Stream => held_bytes(settings.data, 0, 0, chars),
        };
        budget(raw.len() as u128, most).with_context(|| format!("dataset {}", path.display()))?;
        let sha256 = sha256_hex(raw.as_bytes());
        let (vocab, text) = match settings.data {
            DataMode::Lines => {
                // Not empty: the text is not all whitespace.
                let mut docs = parse_docs(&raw);
                rng.shuffle(&mut docs);
                let vocab = Vocab::from_docs(&docs);
                let tokens = docs.iter().map(|d| vocab.encode_doc(d)).collect();
                let n_train = train_split(docs.len(), settings.val_frac)?;
                let text = Text::Lines {
                    docs,
                    tokens,
                    n_train,
                };
                (vocab, text)
            }
            DataMode::Stream => {
                let vocab = Vocab::from_docs(std::slice::from_ref(&raw));
                let tokens = vocab.encode_text(&raw);
                let n_train = stream_split(tokens.len(), settings.val_frac, block_size, &path)?;
                (vocab, Text::Stream { tokens, n_train })
            }
        };
        Ok(Corpus {
            path,
            sha256,
            vocab,
            text,
        })
    }

    /// The bytes the corpus holds in memory (its documents and tokens).
    pub fn bytes(&self) -> u128 {
        match &self.text {
            Text::Lines { docs, tokens, .. } => {
                let text: usize = docs.iter().map(String::len).sum();
                let ids: usize = tokens.iter().map(Vec::len).sum();
                held_bytes(DataMode::Lines, docs.len(), text, ids)
            }
            Text::Stream { tokens, .. } => held_bytes(DataMode::Stream, 0, 0, tokens.len()),
        }
    }

    /// Documents (lines) in the dataset; 0 for a stream. The shuffle drew this many.
    pub fn num_docs(&self) -> usize {
        match &self.text {
            Text::Lines { docs, .. } => docs.len(),
            Text::Stream { .. } => 0,
        }
    }

    /// Documents (lines) the model cannot see whole at `block_size`: one of `n` characters
    /// has `n + 1` targets (its characters, then the closing BOS), and one with
    /// `n >= block_size` loses those past the block, as the original crops them (see
    /// [`crate::model::config::predictions`]). 0 for a stream, which is cut into windows.
    pub fn cropped_docs(&self, block_size: usize) -> usize {
        match &self.text {
            Text::Lines { tokens, .. } => {
                tokens.iter().filter(|t| t.len() - 2 >= block_size).count()
            }
            Text::Stream { .. } => 0,
        }
    }

    /// What to say when documents are cropped (see [`Corpus::cropped_docs`]): how many,
    /// and the two ways out; `None` when every document fits. Every command that trains
    /// or checks on the data prints it, prefixed `warning: `.
    pub fn crop_warning(&self, block_size: usize) -> Option<String> {
        let cropped = self.cropped_docs(block_size);
        let Text::Lines { tokens, .. } = &self.text else {
            return None;
        };
        let longest = tokens.iter().map(|t| t.len() - 2).max().unwrap_or(0);
        (cropped > 0).then(|| {
            format!(
                "{} of {} lines of {} are cropped to block_size {block_size}: a line of {block_size} characters or more loses its end (the longest has {longest}). Continuous text (a play, a book) trains whole with --data stream; every line fits with --block-size {}",
                thousands(cropped),
                thousands(tokens.len()),
                self.path.display(),
                longest + 1
            )
        })
    }

    /// Tokens in the training and validation parts (a document's: its characters).
    pub fn split_sizes(&self) -> (usize, usize) {
        match &self.text {
            Text::Lines { docs, n_train, .. } => {
                let chars = |d: &[String]| d.iter().map(|d| d.chars().count()).sum();
                (chars(&docs[..*n_train]), chars(&docs[*n_train..]))
            }
            Text::Stream { tokens, n_train } => (*n_train, tokens.len() - n_train),
        }
    }

    /// The training batches: `batch_size` documents a step in order (lines), or
    /// `batch_size` windows of `block_size + 1` tokens at positions drawn from `seed` and
    /// the step alone (stream), so a resumed run draws the same ones.
    pub fn batches(
        &self,
        batch_size: usize,
        block_size: usize,
        seed: u64,
    ) -> Box<dyn BatchSource<'_> + '_> {
        match &self.text {
            Text::Lines {
                tokens, n_train, ..
            } => Box::new(DocBatches {
                docs: &tokens[..*n_train],
                batch_size,
            }),
            Text::Stream { tokens, n_train } => Box::new(WindowBatches {
                tokens: &tokens[..*n_train],
                window: block_size + 1,
                batch_size,
                seed,
            }),
        }
    }

    /// The validation sequences: every held-out document (lines), or the non-overlapping
    /// windows of `block_size + 1` tokens of the held-out text, each predicting
    /// `block_size` tokens — at most `max_windows` of them, evenly spaced (0: all).
    pub fn val_sequences(&self, block_size: usize, max_windows: usize) -> Vec<&[usize]> {
        match &self.text {
            Text::Lines {
                tokens, n_train, ..
            } => tokens[*n_train..].iter().map(Vec::as_slice).collect(),
            Text::Stream { tokens, n_train } => {
                let val = &tokens[*n_train..];
                let count = val.len().saturating_sub(1) / block_size;
                let take = if max_windows == 0 {
                    count
                } else {
                    count.min(max_windows)
                };
                (0..take)
                    .map(|i| {
                        let start = i * count / take * block_size;
                        &val[start..start + block_size + 1]
                    })
                    .collect()
            }
        }
    }

    /// The training text as the strings samples are checked against: its documents
    /// (lines), or the training part of the text (stream).
    pub fn train_texts(&self) -> Vec<String> {
        match &self.text {
            Text::Lines { docs, n_train, .. } => docs[..*n_train].to_vec(),
            Text::Stream { tokens, n_train } => vec![self.vocab.decode(&tokens[..*n_train])],
        }
    }
}

/// The bytes a corpus of `docs` documents of `text` bytes and `ids` token ids in all holds:
/// per document a `String` and a `Vec` of ids (headers and allocator chunks), the text and
/// the ids (8 bytes each).
fn held_bytes(mode: DataMode, docs: usize, text: usize, ids: usize) -> u128 {
    let per_doc = match mode {
        DataMode::Lines => 2 * 24 + 2 * 32,
        DataMode::Stream => 0,
    };
    docs as u128 * per_doc + text as u128 + 8 * ids as u128
}

/// How many of `len` stream tokens train: all but the last `val_frac`; each part must hold
/// at least one window of `block_size + 1` tokens.
fn stream_split(len: usize, val_frac: f64, block_size: usize, path: &Path) -> Result<usize> {
    let n_val = (len as f64 * val_frac).round() as usize;
    let n_train = len - n_val;
    let window = block_size + 1;
    if n_train < window {
        bail!(
            "{}: the training part has {n_train} characters, fewer than block_size + 1 = {window}",
            path.display()
        );
    }
    if val_frac > 0.0 && n_val < window {
        bail!(
            "{}: the validation part (--val-frac {val_frac}) has {n_val} characters, fewer than block_size + 1 = {window}",
            path.display()
        );
    }
    Ok(n_train)
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

/// The run's RNG after the shuffle of `shuffled` documents and the weight init, rebuilt
/// without the dataset: the shuffle's draws depend only on the count. Training draws
/// nothing from it, so this is the stream the run's own samples come from.
pub fn rng_after_init(seed: u64, shuffled: usize, layout: &ParamLayout, init_std: f64) -> Rng {
    let mut rng = Rng::new(seed);
    rng.shuffle(&mut vec![(); shuffled]);
    layout.init(&mut rng, init_std);
    rng
}

/// Where each training step's sequences come from.
pub trait BatchSource<'a> {
    /// The sequences of 0-based `step`: token ids, each predicting
    /// [`predictions`]`(len, block_size)` positions.
    fn batch(&self, step: usize) -> Vec<&'a [usize]>;
}

/// One document per line: step `s` takes documents `s*B .. s*B+B-1`, cyclically (the
/// original's order for `B = 1`).
pub struct DocBatches<'a> {
    docs: &'a [Vec<usize>],
    batch_size: usize,
}

impl<'a> BatchSource<'a> for DocBatches<'a> {
    fn batch(&self, step: usize) -> Vec<&'a [usize]> {
        (0..self.batch_size)
            .map(|b| self.docs[(step * self.batch_size + b) % self.docs.len()].as_slice())
            .collect()
    }
}

/// Random windows of one text: window `b` of step `s` starts at `splitmix64` of the seed
/// and `s*B + b`, reduced to the valid starts (the modulo bias is below 1e-12 for texts
/// under a terabyte). A pure function of the step: no state to save or resume.
pub struct WindowBatches<'a> {
    tokens: &'a [usize],
    window: usize,
    batch_size: usize,
    seed: u64,
}

impl<'a> BatchSource<'a> for WindowBatches<'a> {
    fn batch(&self, step: usize) -> Vec<&'a [usize]> {
        let starts = (self.tokens.len() - self.window + 1) as u64;
        (0..self.batch_size)
            .map(|b| {
                let draw = (step * self.batch_size + b) as u64;
                let start = (splitmix64(self.seed ^ splitmix64(draw)) % starts) as usize;
                &self.tokens[start..start + self.window]
            })
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

/// `25327` as `25,327`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Python's `str.isspace()`: Unicode White_Space plus the separators U+001C..U+001F.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Reads a dataset as UTF-8 text (see [`crate::data::input::read_bounded`]: at most
/// [`MAX_INPUT_BYTES`], a leading byte-order mark dropped); a blank file is an error.
pub fn read_text(path: &Path) -> Result<String> {
    let text = read_bounded(path)?;
    if text.trim_matches(is_python_space).is_empty() {
        bail!(
            "dataset {} has no text (it is empty or all whitespace)",
            path.display()
        );
    }
    Ok(text)
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
    crate::data::files::write_atomic(dest, &bytes)
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
    fn thousands_are_grouped() {
        let grouped = [0, 7, 999, 1000, 25327, 1234567].map(thousands);
        assert_eq!(grouped, ["0", "7", "999", "1,000", "25,327", "1,234,567"]);
    }
}
