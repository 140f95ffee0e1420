//! One description of what an engine allocates: a list of named buffers, each some copies
//! of a width of elements, once or per row, sequence or thread. The tensor engine allocates
//! its buffers from it (`tensor::inventory`) and `training::memory` sums it for the memory
//! estimate, so the two cannot drift; `tests/memory_inventory.rs` checks the sum against
//! the bytes a counting allocator sees. The sizes are checked [`Count`]s: an absurd config
//! is "too large", never an overflow.

use std::ops::{Add, Mul};

/// A count or size that turns into "too large" (`None`) instead of overflowing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Count(pub Option<u128>);

/// `x` as a [`Count`].
pub fn n(x: usize) -> Count {
    Count(Some(x as u128))
}

impl Add for Count {
    type Output = Count;
    fn add(self, o: Count) -> Count {
        Count(self.0.zip(o.0).and_then(|(a, b)| a.checked_add(b)))
    }
}

impl Count {
    /// The larger of two counts.
    pub fn max(self, o: Count) -> Count {
        Count(self.0.zip(o.0).map(|(a, b)| a.max(b)))
    }
}

impl Mul for Count {
    type Output = Count;
    fn mul(self, o: Count) -> Count {
        Count(self.0.zip(o.0).and_then(|(a, b)| a.checked_mul(b)))
    }
}

/// What a buffer's length is multiplied by.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Per {
    /// Allocated once (the parameters, their gradients, Adam's moments).
    Model,
    /// One row per row of the largest batch run (activations and their gradients).
    Row,
    /// One per sequence of a batch.
    Sequence,
    /// One per thread of the pool (scratch).
    Thread,
}

/// `copies` buffers of `width` elements of `bytes` each, times what [`Per`] says.
#[derive(Clone, Copy, Debug)]
pub struct Buffer {
    pub name: &'static str,
    pub per: Per,
    pub copies: Count,
    pub width: Count,
    pub bytes: usize,
}

impl Buffer {
    pub fn new(name: &'static str, per: Per, width: Count, bytes: usize) -> Self {
        Buffer {
            name,
            per,
            copies: n(1),
            width,
            bytes,
        }
    }

    /// `copies` of this buffer (one per layer, ...).
    pub fn times(self, copies: Count) -> Self {
        Buffer { copies, ..self }
    }
}

/// How many rows, sequences and threads a workload sizes [`Per`] buffers for.
#[derive(Clone, Copy, Debug)]
pub struct Extent {
    pub rows: usize,
    pub sequences: usize,
    pub threads: usize,
}

/// Every buffer an engine allocates.
#[derive(Clone, Debug, Default)]
pub struct Inventory(pub Vec<Buffer>);

impl Inventory {
    /// The buffer `name`; the description and the code allocating from it must agree.
    pub fn get(&self, name: &str) -> &Buffer {
        let found = self.0.iter().find(|b| b.name == name);
        found.unwrap_or_else(|| panic!("no buffer {name} in the inventory"))
    }

    /// Elements in a row (or all elements, [`Per::Model`]) of buffer `name`. Only asked of
    /// valid configs, whose sizes fit in memory.
    pub fn width(&self, name: &str) -> usize {
        let width = self.get(name).width.0;
        width
            .and_then(|w| usize::try_from(w).ok())
            .expect("a valid config's widths fit")
    }

    /// Copies of buffer `name` (one per layer, ...).
    pub fn copies(&self, name: &str) -> usize {
        let copies = self.get(name).copies.0;
        copies
            .and_then(|c| usize::try_from(c).ok())
            .expect("a valid config's counts fit")
    }

    /// Total bytes for `extent`.
    pub fn bytes(&self, extent: Extent) -> Count {
        let times = |per| match per {
            Per::Model => 1,
            Per::Row => extent.rows,
            Per::Sequence => extent.sequences,
            Per::Thread => extent.threads,
        };
        self.0.iter().fold(n(0), |sum, b| {
            sum + b.copies * b.width * n(b.bytes) * n(times(b.per))
        })
    }
}
