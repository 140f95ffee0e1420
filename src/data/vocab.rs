//! The character vocabulary (docs/SPEC.md §1): the dataset's characters sorted by code
//! point get ids `0..n`, and BOS is `n`.

use anyhow::{bail, Result};
use std::collections::BTreeSet;

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

    /// The ids of a text whose characters are all in the vocabulary (the one it was built
    /// from).
    pub fn encode_text(&self, text: &str) -> Vec<usize> {
        text.chars()
            .map(|c| self.id(c).expect("text character outside its vocabulary"))
            .collect()
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
    fn vocab_orders_by_code_point_and_round_trips() {
        let docs = ["zoë".to_string(), "abe".to_string()];
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
