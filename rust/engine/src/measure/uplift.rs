//! The uplift table: per segment with a conversion spec, treatment against
//! holdout over the entries of a period whose windows have closed, with the
//! Wald interval of the difference of rates and the pooled two-proportion
//! z-test (docs/measure.md gives the formulas and their caveats).

use std::sync::Arc;

use arrow_array::builder::{Decimal128Builder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::state::conversions::{DayCounts, DAY_MS};

/// z of the two-sided 95% normal interval.
const Z95: f64 = 1.959_963_984_540_054;

/// Extra decimal digits of the per-entry money columns, beyond the currency's.
pub const AVERAGE_EXTRA_DIGITS: u32 = 2;

/// Schema of the uplift table for a currency scale (digits).
pub fn uplift_schema(scale: u32) -> SchemaRef {
    let total = DataType::Decimal128(38, scale as i8);
    let average = DataType::Decimal128(38, (scale + AVERAGE_EXTRA_DIGITS) as i8);
    let int = |n: &str| Field::new(n, DataType::Int64, false);
    let float = |n: &str| Field::new(n, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        Field::new("segment", DataType::Utf8, false),
        int("treatment_entries"),
        int("holdout_entries"),
        int("treatment_conversions"),
        int("holdout_conversions"),
        float("treatment_rate"),
        float("holdout_rate"),
        float("lift"),
        float("relative_lift"),
        float("lift_ci_low"),
        float("lift_ci_high"),
        float("p_value"),
        Field::new("treatment_revenue", total.clone(), false),
        Field::new("holdout_revenue", total, false),
        Field::new("revenue_per_treated", average.clone(), true),
        Field::new("revenue_per_holdout", average.clone(), true),
        Field::new("incremental_revenue", average, true),
        float("treatment_backlash_rate"),
        float("holdout_backlash_rate"),
        int("immature_entries"),
    ]))
}

/// The statistics of one segment's two groups.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// Conversion rate of the treatment group (None without entries).
    pub treatment_rate: Option<f64>,
    /// Conversion rate of the holdout group.
    pub holdout_rate: Option<f64>,
    /// Treatment rate minus holdout rate.
    pub lift: Option<f64>,
    /// Lift over the holdout rate (None when that is 0).
    pub relative_lift: Option<f64>,
    /// The 95% Wald interval of the lift.
    pub ci: Option<(f64, f64)>,
    /// Two-sided p-value of the pooled two-proportion z-test (None when
    /// the pooled rate is 0 or 1: the test is undefined).
    pub p_value: Option<f64>,
}

/// Rates, lift, interval and p-value for `x` conversions of `n` entries per group.
pub fn compare(xt: u64, nt: u64, xh: u64, nh: u64) -> Comparison {
    let rate = |x: u64, n: u64| (n > 0).then(|| x as f64 / n as f64);
    let (pt, ph) = (rate(xt, nt), rate(xh, nh));
    let both = pt.zip(ph);
    let lift = both.map(|(a, b)| a - b);
    let relative_lift = both.and_then(|(a, b)| (b > 0.0).then(|| (a - b) / b));
    let ci = both.map(|(a, b)| {
        let se = (a * (1.0 - a) / nt as f64 + b * (1.0 - b) / nh as f64).sqrt();
        (a - b - Z95 * se, a - b + Z95 * se)
    });
    let p_value = both.and_then(|(a, b)| {
        let pooled = (xt + xh) as f64 / (nt + nh) as f64;
        let se = (pooled * (1.0 - pooled) * (1.0 / nt as f64 + 1.0 / nh as f64)).sqrt();
        (se > 0.0).then(|| libm::erfc(((a - b) / se).abs() / std::f64::consts::SQRT_2))
    });
    Comparison {
        treatment_rate: pt,
        holdout_rate: ph,
        lift,
        relative_lift,
        ci,
        p_value,
    }
}

/// `num / den` rounded half away from zero.
fn div_round(num: i128, den: i128) -> i128 {
    let q = num / den;
    let r = num % den;
    if 2 * r.abs() >= den.abs() {
        q + num.signum() * den.signum()
    } else {
        q
    }
}

/// One row per segment with a conversion spec over the entries made in
/// `[start, end)` (UTC midnights, epoch ms) whose windows closed by the
/// engine clock; entries still open are counted in `immature_entries`.
pub fn uplift_batch(engine: &Engine, start: i64, end: i64) -> Result<RecordBatch> {
    uplift_of(&[engine], start, end)
}

/// `uplift_batch` over engines that run the same rules on disjoint
/// customers (a service's partitions): their counters add up, each entry
/// judged mature by its own engine's clock.
pub fn uplift_of(engines: &[&Engine], start: i64, end: i64) -> Result<RecordBatch> {
    let Some(engine) = engines.first() else {
        return Err(EngineError::Invalid("uplift: no engine given".into()));
    };
    if engines
        .iter()
        .any(|e| e.rules.fingerprint != engine.rules.fingerprint)
    {
        return Err(EngineError::Invalid(
            "uplift: the engines run different rules".into(),
        ));
    }
    for (what, t) in [("start", start), ("end", end)] {
        if t.rem_euclid(DAY_MS) != 0 {
            return Err(EngineError::Invalid(format!(
                "uplift: {what} must be a UTC midnight (the counters are kept per day of entry), got {}",
                crate::time::calendar::format_ts(t)
            )));
        }
    }
    if start > end {
        return Err(EngineError::Invalid(format!(
            "uplift: start {} is after end {}",
            crate::time::calendar::format_ts(start),
            crate::time::calendar::format_ts(end)
        )));
    }
    let conv = &engine.state.conversions;
    let scale = engine.rules.spec.currency_scale;
    let avg_factor = 10i128.pow(AVERAGE_EXTRA_DIGITS);
    let n = conv.tracked.len();
    let mut segment = StringBuilder::new();
    let mut ints: Vec<Int64Builder> = (0..5).map(|_| Int64Builder::with_capacity(n)).collect();
    let mut floats: Vec<Float64Builder> =
        (0..9).map(|_| Float64Builder::with_capacity(n)).collect();
    let total_type = DataType::Decimal128(38, scale as i8);
    let avg_type = DataType::Decimal128(38, (scale + AVERAGE_EXTRA_DIGITS) as i8);
    let mut money: Vec<Decimal128Builder> = (0..5)
        .map(|i| {
            Decimal128Builder::with_capacity(n).with_data_type(if i < 2 {
                total_type.clone()
            } else {
                avg_type.clone()
            })
        })
        .collect();
    for (spec, t) in conv.tracked.iter().enumerate() {
        let (mut tr, mut ho, mut immature) = (DayCounts::default(), DayCounts::default(), 0);
        for e in engines {
            let ([t, h], open): ([DayCounts; 2], u64) = e.state.conversions.totals(
                spec as u16,
                start.div_euclid(DAY_MS),
                end.div_euclid(DAY_MS),
                e.clock.unwrap_or(i64::MIN),
            );
            tr.add(&t);
            ho.add(&h);
            immature += open;
        }
        segment.append_value(&t.name);
        let c = compare(tr.conversions, tr.entries, ho.conversions, ho.entries);
        for (b, v) in ints
            .iter_mut()
            .zip([tr.entries, ho.entries, tr.conversions, ho.conversions])
        {
            b.append_value(v as i64);
        }
        let backlash =
            |d: &DayCounts| (d.entries > 0).then(|| d.backlash as f64 / d.entries as f64);
        for (b, v) in floats.iter_mut().zip([
            c.treatment_rate,
            c.holdout_rate,
            c.lift,
            c.relative_lift,
            c.ci.map(|x| x.0),
            c.ci.map(|x| x.1),
            c.p_value,
            backlash(&tr),
            backlash(&ho),
        ]) {
            b.append_option(v);
        }
        let (rt, rh) = (tr.revenue as i128, ho.revenue as i128);
        let (nt, nh) = (tr.entries as i128, ho.entries as i128);
        let per = |r: i128, n: i128| (n > 0).then(|| div_round(r * avg_factor, n));
        // (rt/nt - rh/nh) * nt = rt - rh * nt / nh, rounded once.
        let incremental =
            (nt > 0 && nh > 0).then(|| div_round((rt * nh - rh * nt) * avg_factor, nh));
        money[0].append_value(rt);
        money[1].append_value(rh);
        money[2].append_option(per(rt, nt));
        money[3].append_option(per(rh, nh));
        money[4].append_option(incremental);
        ints[4].append_value(immature as i64);
    }
    let mut cols: Vec<ArrayRef> = vec![Arc::new(segment.finish())];
    let mut ints = ints.into_iter();
    let mut floats = floats.into_iter();
    let mut money = money.into_iter();
    let mut int = || Arc::new(ints.next().expect("five").finish()) as ArrayRef;
    let mut float = || Arc::new(floats.next().expect("nine").finish()) as ArrayRef;
    let mut dec = || Arc::new(money.next().expect("five").finish()) as ArrayRef;
    cols.extend([int(), int(), int(), int()]);
    cols.extend((0..7).map(|_| float()));
    cols.extend((0..5).map(|_| dec()));
    cols.extend([float(), float()]);
    cols.push(int());
    RecordBatch::try_new(uplift_schema(scale), cols)
        .map_err(|e| EngineError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(div_round(5, 2), 3);
        assert_eq!(div_round(-5, 2), -3);
        assert_eq!(div_round(4, 3), 1);
        assert_eq!(div_round(-4, 3), -1);
        assert_eq!(div_round(7, 7), 1);
    }

    #[test]
    fn known_two_proportion_test() {
        // 30/100 against 20/100: pooled 0.25, se0 = sqrt(0.25*0.75*0.02), z = 1.633.
        let c = compare(30, 100, 20, 100);
        assert!((c.lift.unwrap() - 0.1).abs() < 1e-12);
        assert!((c.relative_lift.unwrap() - 0.5).abs() < 1e-12);
        assert!((c.p_value.unwrap() - 0.102_470_9).abs() < 1e-6);
        let se = (0.3f64 * 0.7 / 100.0 + 0.2 * 0.8 / 100.0).sqrt();
        assert!((c.ci.unwrap().0 - (0.1 - Z95 * se)).abs() < 1e-12);
        // No holdout entries: nothing to compare.
        let none = compare(3, 10, 0, 0);
        assert_eq!((none.lift, none.p_value, none.ci), (None, None, None));
        // Everyone converted in both groups: the test is undefined.
        assert_eq!(compare(5, 5, 3, 3).p_value, None);
    }
}
