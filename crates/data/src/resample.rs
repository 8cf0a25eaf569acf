//! Aggregation of bars into a longer timeframe, aligned to UTC boundaries.

use quantpipe_core::{Aggregation, Bars, Timeframe};

use crate::error::{DataError, Result};

#[derive(Debug, Clone)]
pub struct Resampled {
    pub bars: Bars,
    /// Number of source bars in each output bar.
    pub source_bars: Vec<u32>,
    /// Output bars built from fewer source bars than the period holds (gaps or closures inside).
    pub partial: u64,
    /// The source ends before the last output bar's period does.
    pub last_bar_incomplete: bool,
}

/// Open = first open, high = max, low = min, close = last close, volume = sum; extra columns by
/// their own aggregation. Each output bar starts at `to.floor(ts)` (00:00 UTC for days, Monday for weeks).
pub fn resample(bars: &Bars, from: Timeframe, to: Timeframe) -> Result<Resampled> {
    if to.millis() <= from.millis() || to.millis() % from.millis() != 0 {
        return Err(DataError::Invalid(format!(
            "cannot resample {from} bars to {to}: the target must be a whole multiple of the source timeframe"
        )));
    }
    let per_bucket = (to.millis() / from.millis()) as u32;
    let mut out = Bars::with_capacity(bars.len() / per_bucket as usize + 1, &bars.extra_layout());
    let mut counts: Vec<u32> = Vec::new();
    let mut i = 0;
    while i < bars.len() {
        let bucket = to.floor(bars.ts[i]);
        let end = bucket + to.millis();
        let start = i;
        while i < bars.len() && bars.ts[i] < end {
            i += 1;
        }
        let r = start..i;
        out.ts.push(bucket);
        out.open.push(bars.open[start]);
        out.high.push(bars.high[r.clone()].iter().copied().fold(f64::NEG_INFINITY, f64::max));
        out.low.push(bars.low[r.clone()].iter().copied().fold(f64::INFINITY, f64::min));
        out.close.push(bars.close[i - 1]);
        out.volume.push(bars.volume[r.clone()].iter().sum());
        for (o, c) in out.extras.iter_mut().zip(&bars.extras) {
            let v = &c.values[r.clone()];
            o.values.push(match c.aggregation {
                Aggregation::Sum => v.iter().sum(),
                Aggregation::First => v[0],
                Aggregation::Last => v[v.len() - 1],
                Aggregation::Max => v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                Aggregation::Min => v.iter().copied().fold(f64::INFINITY, f64::min),
            });
        }
        counts.push((i - start) as u32);
    }
    let last_bar_incomplete = match (bars.ts.last(), out.ts.last()) {
        (Some(&last_src), Some(&last_out)) => last_src + from.millis() < last_out + to.millis(),
        _ => false,
    };
    let partial = counts.iter().filter(|&&c| c < per_bucket).count() as u64;
    Ok(Resampled { bars: out, source_bars: counts, partial, last_bar_incomplete })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantpipe_core::ExtraColumn;

    #[test]
    fn hourly_from_minutes_with_incomplete_last_bar() {
        let m = 60_000;
        let h = 3_600_000;
        // 90 one-minute bars starting 23:30: buckets 23:00 (30 bars), 00:00 (60 bars, complete).
        // Then 15 more: 01:00 (15 bars, incomplete).
        let start = 10 * 24 * h - 30 * m;
        let n = 105;
        let mut b = Bars::with_capacity(n, &[]);
        for k in 0..n {
            b.ts.push(start + k as i64 * m);
            let p = 100.0 + k as f64;
            b.open.push(p);
            b.high.push(p + 0.5);
            b.low.push(p - 0.5);
            b.close.push(p + 0.25);
            b.volume.push(1.0);
        }
        b.extras.push(ExtraColumn { name: "trades".into(), aggregation: Aggregation::Sum, values: vec![2.0; n] });
        let r = resample(&b, Timeframe::MINUTE, Timeframe::HOUR).unwrap();
        assert_eq!(r.bars.ts, vec![10 * 24 * h - h, 10 * 24 * h, 10 * 24 * h + h]);
        assert_eq!(r.source_bars, vec![30, 60, 15]);
        assert_eq!(r.bars.open, vec![100.0, 130.0, 190.0]);
        assert_eq!(r.bars.high, vec![129.5, 189.5, 204.5]);
        assert_eq!(r.bars.low, vec![99.5, 129.5, 189.5]);
        assert_eq!(r.bars.close, vec![129.25, 189.25, 204.25]);
        assert_eq!(r.bars.volume, vec![30.0, 60.0, 15.0]);
        assert_eq!(r.bars.extras[0].values, vec![60.0, 120.0, 30.0]);
        assert!(r.last_bar_incomplete);
        assert_eq!(r.partial, 2);
        assert!(resample(&b, Timeframe::HOUR, Timeframe::MINUTE).is_err());
        assert!(resample(&b, Timeframe::parse("7m").unwrap(), Timeframe::HOUR).is_err());
    }
}
