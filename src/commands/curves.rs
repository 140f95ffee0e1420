//! Loss curves as a plot shows them: non-finite values are gaps, and the y range is chosen
//! from the curves' robust extent, so one diverging run does not flatten the others.

use microgpt::rundir::metrics::{Ema, Row, SMOOTHING};

/// A (step, loss) point.
pub type Point = (f64, f64);

/// The smoothed training loss. A NaN or infinite loss is a gap (a NaN point) and stays out
/// of the average, so the curve goes on after it.
pub fn smoothed(rows: &[Row]) -> Vec<Point> {
    let mut ema = Ema::new(SMOOTHING);
    rows.iter()
        .map(|r| {
            let y = if r.loss.is_finite() {
                ema.push(r.loss)
            } else {
                f64::NAN
            };
            (r.step as f64, y)
        })
        .collect()
}

/// The validation losses recorded.
pub fn validation(rows: &[Row]) -> Vec<Point> {
    rows.iter()
        .filter_map(|r| r.val_loss.map(|v| (r.step as f64, v)))
        .collect()
}

/// The pieces of `points` whose values all lie in `lo..=hi`: NaN, infinities and points
/// outside the range end a piece.
pub fn pieces(points: &[Point], lo: f64, hi: f64) -> Vec<&[Point]> {
    points
        .split(|p| !(p.1 >= lo && p.1 <= hi))
        .filter(|piece| !piece.is_empty())
        .collect()
}

/// The first steps, whose losses dwarf the rest, are left out of the range: this fraction.
pub const START: f64 = 0.05;
/// A run's high end is this quantile of its values, so single spikes do not count.
pub const HIGH_QUANTILE: f64 = 0.95;
/// A run whose high end lies more than this many times as far above the lowest loss as the
/// lower quartile of the runs' high ends is left out of the range (and marked as leaving
/// it). The lower quartile, so that one run of two, or two of six, can be the outliers.
pub const OUTLIER_FACTOR: f64 = 4.0;

/// The most decades a log axis spans.
const LOG_DECADES: f64 = 12.0;
/// The largest magnitude a linear axis reaches.
const LINEAR_LIMIT: f64 = 1e300;

/// The y range of a plot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct YRange {
    pub lo: f64,
    pub hi: f64,
}

impl YRange {
    /// A linear axis: from the lowest value to the highest high end (see [`HIGH_QUANTILE`])
    /// of the runs that are not outliers (see [`OUTLIER_FACTOR`]), after the first
    /// [`START`] of the steps, padded by 5%. `runs` holds each run's curves, pooled.
    pub fn robust(runs: &[Vec<Point>], max_step: f64) -> YRange {
        let values: Vec<Vec<f64>> = runs
            .iter()
            .map(|points| {
                let finite = points.iter().filter(|p| p.1.is_finite());
                let after: Vec<f64> = finite
                    .clone()
                    .filter(|p| p.0 > max_step * START)
                    .map(|p| p.1)
                    .collect();
                // A run that ended early is measured on all it has.
                if after.is_empty() {
                    finite.map(|p| p.1).collect()
                } else {
                    after
                }
            })
            .filter(|v: &Vec<f64>| !v.is_empty())
            .collect();
        if values.is_empty() {
            return YRange { lo: 0.0, hi: 1.0 };
        }
        let lo = values
            .iter()
            .flatten()
            .fold(f64::INFINITY, |a, &b| a.min(b));
        let highs: Vec<f64> = values.iter().map(|v| quantile(v, HIGH_QUANTILE)).collect();
        let typical = quantile(&highs, 0.25) - lo;
        let hi = highs
            .iter()
            .filter(|&&h| h - lo <= OUTLIER_FACTOR * typical)
            .fold(lo, |a, &b| a.max(b));
        // Values beyond ±LINEAR_LIMIT leave the plot, so its height stays a finite number.
        let (lo, hi) = (
            lo.clamp(-LINEAR_LIMIT, LINEAR_LIMIT),
            hi.clamp(-LINEAR_LIMIT, LINEAR_LIMIT),
        );
        // Never an empty axis, even where 0.01 is below the numbers' resolution.
        let pad = ((hi - lo) * 0.05).max(0.01).max(hi.abs() * 1e-6);
        YRange {
            lo: lo - pad,
            hi: hi + pad,
        }
    }

    /// A logarithmic axis over every positive finite value, the first steps included.
    pub fn log(runs: &[Vec<Point>]) -> YRange {
        let (lo, hi) = runs
            .iter()
            .flatten()
            .map(|p| p.1)
            .filter(|y| (1e-300..1e300).contains(y))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
                (lo.min(y), hi.max(y))
            });
        if lo > hi {
            return YRange { lo: 0.1, hi: 10.0 };
        }
        // At most LOG_DECADES decades (higher values leave the plot), and 5% of the axis
        // on each side, in log space.
        let (l0, l1) = (lo.ln(), hi.ln().min(lo.ln() + LOG_DECADES * 10f64.ln()));
        let pad = ((l1 - l0) * 0.05).max(0.01);
        YRange {
            lo: (l0 - pad).exp(),
            hi: (l1 + pad).exp(),
        }
    }

    /// Where a curve leaves the range, and its highest value: the first point above it
    /// after the curve was inside it (a curve falling into the range from above has not
    /// left it), or the first point after the first [`START`] of the steps if it is never
    /// inside.
    pub fn leaves(&self, points: &[Point], max_step: f64) -> Option<(Point, f64)> {
        let after: Vec<Point> = points
            .iter()
            .filter(|p| p.0 > max_step * START && p.1.is_finite())
            .copied()
            .collect();
        let first = match after.iter().position(|p| p.1 <= self.hi) {
            None => *after.first()?,
            Some(inside) => *after[inside..].iter().find(|p| p.1 > self.hi)?,
        };
        let top = after.iter().map(|p| p.1).fold(first.1, f64::max);
        Some((first, top))
    }
}

/// The `q` quantile of `values` (nearest rank); `values` must not be empty.
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[rank]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run that falls from 3 to `end`, with a spike.
    fn curve(end: f64) -> Vec<Point> {
        (1..=200)
            .map(|s| {
                let y = end + (3.0 - end) * (-(s as f64) / 20.0).exp();
                (s as f64, if s == 150 { y + 5.0 } else { y })
            })
            .collect()
    }

    #[test]
    fn a_diverging_run_does_not_set_the_range() {
        let mut runs: Vec<Vec<Point>> = [2.0, 2.1, 2.2, 2.3, 2.4].map(curve).to_vec();
        runs.push((1..=200).map(|s| (s as f64, 800.0)).collect());
        let r = YRange::robust(&runs, 200.0);
        assert!(r.lo < 2.0 && r.lo > 1.9, "{r:?}");
        assert!(r.hi > 2.4 && r.hi < 2.7, "{r:?}");
        assert!(r
            .leaves(&runs[5], 200.0)
            .is_some_and(|(_, top)| top == 800.0));
        // The spike at step 150 leaves too; the falling start does not count.
        assert_eq!(r.leaves(&runs[0], 200.0).unwrap().0 .0, 150.0);
    }

    #[test]
    fn one_diverging_run_of_two_is_the_outlier() {
        let runs = vec![curve(2.0), (1..=200).map(|s| (s as f64, 800.0)).collect()];
        let r = YRange::robust(&runs, 200.0);
        assert!(r.hi < 3.0, "{r:?}");
    }

    #[test]
    fn non_finite_values_are_gaps() {
        let rows: Vec<Row> = [1.0, f64::INFINITY, 2.0, f64::NAN, 3.0]
            .iter()
            .enumerate()
            .map(|(i, &loss)| Row {
                step: i + 1,
                loss,
                lr: 0.01,
                tokens: 1,
                elapsed_s: 1.0,
                val_loss: Some(loss),
            })
            .collect();
        let train = smoothed(&rows);
        assert!(train[1].1.is_nan() && train[4].1.is_finite());
        let r = YRange::robust(&[train.clone(), validation(&rows)], 5.0);
        assert!(r.lo.is_finite() && r.hi.is_finite() && r.lo < r.hi, "{r:?}");
        assert_eq!(pieces(&train, r.lo, r.hi).len(), 3);
        let all_bad = vec![(1.0, f64::NAN), (2.0, f64::INFINITY)];
        assert_eq!(
            YRange::robust(std::slice::from_ref(&all_bad), 2.0),
            YRange { lo: 0.0, hi: 1.0 }
        );
        assert!(YRange::log(&[all_bad]).lo > 0.0);
    }

    #[test]
    fn every_range_is_finite_and_not_empty() {
        let extremes = [
            f64::MAX,
            -f64::MAX,
            1e300,
            1e-308,
            0.0,
            -1.0,
            2.0,
            f64::NAN,
            f64::INFINITY,
        ];
        for &a in &extremes {
            for &b in &extremes {
                let run = vec![(1.0, a), (2.0, b), (3.0, 2.5)];
                for r in [
                    YRange::robust(std::slice::from_ref(&run), 3.0),
                    YRange::log(&[run]),
                ] {
                    assert!(r.lo < r.hi && (r.hi - r.lo).is_finite(), "{a} {b}: {r:?}");
                }
                let r = YRange::log(&[vec![(1.0, a), (2.0, b)]]);
                assert!(r.lo > 0.0 && (r.hi / r.lo).is_finite(), "{a} {b}: {r:?}");
            }
        }
    }
}
