//! Row-major buffers that know their width, and how the tensor engine hands its outputs to
//! the pool's tasks without `unsafe`: [`split_rows`] cuts a buffer into disjoint `&mut` row
//! ranges (`split_at_mut`), [`split_axis`] a matrix view into rows or columns, and
//! [`for_rows`] runs a row-wise layer with each task on its own rows of every output.

use crate::numerics::pool;
use ndarray::{ArrayViewMut2, Axis};
use std::ops::Range;

/// A row-major `[rows, width]` buffer: callers name rows, not offsets.
#[derive(Default)]
pub struct Rows<F> {
    data: Vec<F>,
    width: usize,
}

impl<F: Clone> Rows<F> {
    /// Exactly `rows` rows of `width`, all `zero`: what the buffer held is freed first, so
    /// the old and the new buffer are never held at once.
    pub fn resize(&mut self, rows: usize, width: usize, zero: F) {
        self.data = Vec::new();
        self.data = vec![zero; rows * width];
        self.width = width;
    }
}

impl<F> Rows<F> {
    pub fn width(&self) -> usize {
        self.width
    }

    /// Rows `r`, one after another.
    pub fn rows(&self, r: &Range<usize>) -> &[F] {
        &self.data[r.start * self.width..r.end * self.width]
    }

    pub fn rows_mut(&mut self, r: &Range<usize>) -> &mut [F] {
        &mut self.data[r.start * self.width..r.end * self.width]
    }

    pub fn row(&self, i: usize) -> &[F] {
        &self.data[i * self.width..][..self.width]
    }

    /// The rows of each of `ranges` (ascending, disjoint), each mutable on its own.
    pub fn split_mut<'a>(
        &'a mut self,
        ranges: impl IntoIterator<Item = &'a Range<usize>> + 'a,
    ) -> impl Iterator<Item = &'a mut [F]> + 'a {
        split_rows(&mut self.data, self.width, ranges.into_iter().cloned())
    }
}

/// The rows of `buf` (row-major, `width` wide) in each of `ranges`, which must ascend and
/// not overlap: disjoint `&mut` slices.
pub fn split_rows<'a, F>(
    buf: &'a mut [F],
    width: usize,
    ranges: impl Iterator<Item = Range<usize>> + 'a,
) -> impl Iterator<Item = &'a mut [F]> + 'a {
    let mut rest = buf;
    let mut at = 0;
    ranges.map(move |r| {
        assert!(r.start >= at, "row ranges ascend without overlap");
        let (_, from) = std::mem::take(&mut rest).split_at_mut((r.start - at) * width);
        let (rows, after) = from.split_at_mut(r.len() * width);
        rest = after;
        at = r.end;
        rows
    })
}

/// A row-wise layer's work on one task's rows: `kernel(rows, outs)`.
type RowsKernel<'k, F, const K: usize> = dyn Fn(Range<usize>, [&mut [F]; K]) + Sync + 'k;

/// Runs `kernel(rows, outs)` on the pool over near-equal ranges of `0..rows`, each task
/// with its own rows of every output (a `(buffer, width)` pair each); `flops` is the
/// whole cost.
pub fn for_rows<F: Send, const K: usize>(
    rows: usize,
    flops: f64,
    outs: [(&mut [F], usize); K],
    kernel: &RowsKernel<'_, F, K>,
) {
    let parts = pool::parts(flops).min(rows.max(1));
    let ranges = move || (0..parts).map(move |part| pool::split(rows, parts, part));
    let mut outs = outs.map(|(buf, width)| split_rows(buf, width, ranges()));
    let tasks = ranges().map(move |r| {
        let mine = outs
            .each_mut()
            .map(|o| o.next().expect("rows for every range"));
        (r, mine)
    });
    pool::for_each_part(parts, flops, tasks, &|(r, outs), _| kernel(r, outs));
}

/// The rows (`Axis(0)`) or columns (`Axis(1)`) of `m` in each of `ranges` (ascending,
/// not overlapping): disjoint mutable views, with their ranges.
pub fn split_axis<'a, F>(
    m: ArrayViewMut2<'a, F>,
    axis: Axis,
    ranges: impl Iterator<Item = Range<usize>> + 'a,
) -> impl Iterator<Item = (Range<usize>, ArrayViewMut2<'a, F>)> + 'a {
    let (mut rest, mut at) = (Some(m), 0);
    ranges.map(move |r| {
        assert!(r.start >= at, "ranges ascend without overlap");
        let from = rest
            .take()
            .expect("a view left")
            .split_at(axis, r.start - at)
            .1;
        let (part, after) = from.split_at(axis, r.len());
        (rest, at) = (Some(after), r.end);
        (r, part)
    })
}
