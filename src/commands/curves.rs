//! Loss curves as a plot shows them: non-finite values are gaps; the y ranges are the whole
//! run's (linear, or log when a run diverges) and a zoom chosen from the curves' robust
//! extent, so one diverging run does not flatten the others; which runs diverge, and how
//! far apart two curves are.

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

    /// Every finite value of the curves, the first steps included, padded 5%: on a linear
    /// axis while the highest is at most [`LINEAR_SPAN`] times the lowest (positive) value,
    /// else on a log axis (see [`YRange::log`]). Returns the range and whether it is log.
    pub fn whole(runs: &[Vec<Point>]) -> (YRange, bool) {
        let (lo, hi) = runs
            .iter()
            .flatten()
            .map(|p| p.1)
            .filter(|y| y.abs() < LINEAR_LIMIT)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
                (lo.min(y), hi.max(y))
            });
        if lo > hi {
            return (YRange { lo: 0.0, hi: 1.0 }, false);
        }
        if lo > 0.0 && hi > LINEAR_SPAN * lo {
            return (YRange::log(runs), true);
        }
        let pad = ((hi - lo) * 0.05).max(0.01).max(hi.abs() * 1e-6);
        (
            YRange {
                lo: lo - pad,
                hi: hi + pad,
            },
            false,
        )
    }
}

/// A whole-run axis whose highest value is more than this many times its lowest is
/// logarithmic: a diverging run would flatten the others on a linear one.
pub const LINEAR_SPAN: f64 = 4.0;

/// A run diverges when its smoothed loss or a validation loss, after the first [`START`]
/// of the steps, exceeds this many times where its loss started; or when a loss is not
/// finite. Spikes and a noisy start stay below it.
pub const DIVERGED: f64 = 1.1;

/// Where a run diverged (see [`DIVERGED`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Divergence {
    pub step: f64,
    /// The loss there: infinite or NaN for a loss that is not finite.
    pub loss: f64,
    /// Where the loss started: the first finite smoothed value.
    pub start: f64,
}

/// Whether a run diverged, from its per-step `rows`, its smoothed `train` curve and its
/// `val` points: the step at which it did (where the rise that ends above began, the first
/// steps included).
pub fn divergence(rows: &[Row], train: &[Point], val: &[Point]) -> Option<Divergence> {
    let start = train.iter().map(|p| p.1).find(|y| y.is_finite())?;
    let max_step = rows.last()?.step as f64;
    let not_finite = rows
        .iter()
        .find(|r| !r.loss.is_finite() || r.val_loss.is_some_and(|v| !v.is_finite()))
        .map(|r| (r.step as f64, f64::INFINITY));
    let high = |p: &Point| p.1 > start * DIVERGED;
    // The first point above after the first steps, back to where that rise began.
    let above = |points: &[Point]| {
        let found = points
            .iter()
            .position(|p| p.0 > max_step * START && high(p))?;
        let began = points[..found]
            .iter()
            .rposition(|p| !high(p))
            .map_or(0, |i| i + 1);
        Some(points[began])
    };
    let first = [not_finite, above(train), above(val)]
        .into_iter()
        .flatten()
        .min_by(|a, b| a.0.total_cmp(&b.0))?;
    Some(Divergence {
        step: first.0,
        loss: first.1,
        start,
    })
}

/// The largest gap between two curves at the steps both have, after the first [`START`]
/// of `max_step`; `None` when they share no such step.
pub fn max_gap(a: &[Point], b: &[Point], max_step: f64) -> Option<f64> {
    let (mut i, mut j) = (0, 0);
    let mut gap: Option<f64> = None;
    while i < a.len() && j < b.len() {
        let (pa, pb) = (a[i], b[j]);
        if pa.0 < pb.0 {
            i += 1;
        } else if pb.0 < pa.0 {
            j += 1;
        } else {
            let d = (pa.1 - pb.1).abs();
            if pa.0 > max_step * START && d.is_finite() {
                gap = Some(gap.map_or(d, |g| g.max(d)));
            }
            i += 1;
            j += 1;
        }
    }
    gap
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
        // The whole run goes on a log axis: the diverging run would flatten the others.
        let (whole, log) = YRange::whole(&runs);
        assert!(log && whole.hi > 800.0 && whole.lo < 2.0, "{whole:?}");
        let (whole, log) = YRange::whole(&runs[..5]);
        assert!(!log && whole.lo < 2.0 && whole.hi > 3.0, "{whole:?}");
    }

    fn rows(losses: &[f64]) -> Vec<Row> {
        losses
            .iter()
            .enumerate()
            .map(|(i, &loss)| Row {
                step: i + 1,
                loss,
                lr: 0.01,
                tokens: 1,
                elapsed_s: 1.0,
                val_loss: None,
            })
            .collect()
    }

    #[test]
    fn only_a_loss_above_its_start_or_not_finite_is_a_divergence() {
        let diverges = |losses: &[f64]| {
            let r = rows(losses);
            divergence(&r, &smoothed(&r), &[])
        };
        // Healthy: a noisy start, then spikes well below the start.
        let mut healthy: Vec<f64> = curve(2.0).iter().map(|p| p.1).collect();
        healthy[1] = 3.5;
        healthy[120] = 3.2;
        assert_eq!(diverges(&healthy), None);
        let mut exploding = healthy.clone();
        exploding[100..].iter_mut().for_each(|l| *l = 1000.0);
        let d = diverges(&exploding).unwrap();
        assert_eq!((d.step, d.start), (101.0, exploding[0]), "{d:?}");
        // A rise that begins within the first steps and never comes back is dated from
        // its beginning.
        let mut early = healthy.clone();
        early[3..].iter_mut().for_each(|l| *l = 40.0);
        assert_eq!(diverges(&early).unwrap().step, 4.0);
        let mut nan = healthy;
        nan[60] = f64::NAN;
        assert_eq!(diverges(&nan).unwrap().step, 61.0);
    }

    #[test]
    fn the_gap_between_curves_is_measured_at_shared_steps_after_the_start() {
        let a = curve(2.0);
        let b: Vec<Point> = a.iter().map(|p| (p.0, p.1 + 0.003)).collect();
        let gap = max_gap(&a, &b, 200.0).unwrap();
        assert!((gap - 0.003).abs() < 1e-12, "{gap}");
        let mut c = b.clone();
        c[0].1 = 100.0; // the first steps do not count
        assert_eq!(max_gap(&a, &c, 200.0), Some(gap));
        assert_eq!(max_gap(&a[..5], &b[100..], 200.0), None);
    }

    #[test]
    fn one_diverging_run_of_two_is_the_outlier() {
        let runs = vec![curve(2.0), (1..=200).map(|s| (s as f64, 800.0)).collect()];
        let r = YRange::robust(&runs, 200.0);
        assert!(r.hi < 3.0, "{r:?}");
    }

    #[test]
    fn non_finite_values_are_gaps() {
        let mut rows = rows(&[1.0, f64::INFINITY, 2.0, f64::NAN, 3.0]);
        rows.iter_mut().for_each(|r| r.val_loss = Some(r.loss));
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
