//! Higher-timeframe features on 1-minute bars equal the same features computed on resampled
//! hourly bars, taken from the last hour that had closed by each minute's close (bit for bit).

use crate::common::load;
use quantpipe_core::Timeframe;
use quantpipe_data::resample::resample;
use quantpipe_features::{compute, FeatureSet, Indicator};

#[test]
fn hourly_features_on_minutes_are_as_of_the_last_closed_hour() {
    let all = load("filusdt_perp_1m_2023.csv.gz", "FILUSDT");
    // 40 days, and a few rows cut out of the middle so that an hour closes across a gap.
    let mut keep: Vec<usize> = (0..40 * 1440).collect();
    keep.retain(|&i| !(10_000..10_090).contains(&i));
    let minutes = all.select(&keep);

    let inner = vec![Indicator::Rsi { period: 14 }, Indicator::Atr { period: 14 }, Indicator::LogReturn { lag: 1 }];
    let set = FeatureSet {
        name: "mtf".into(),
        features: vec![Indicator::Htf { timeframe: "1h".into(), feature: inner.clone() }],
    };
    let on_minutes = compute(&set, &minutes);
    assert_eq!(on_minutes.names, vec!["htf_1h_rsi_14", "htf_1h_atr_14", "htf_1h_log_return_1"]);

    let hours = resample(&minutes, Timeframe::MINUTE, Timeframe::HOUR).unwrap().bars;
    let on_hours = compute(&FeatureSet { name: "h".into(), features: inner }, &hours);

    let hour = 3_600_000;
    let mut checked = 0;
    for (i, &t) in minutes.ts.iter().enumerate() {
        // Hours closed by this minute's close: those ending at or before t + 1 minute, plus any hour
        // left behind by a gap (a later minute has arrived).
        let closed = hours.ts.iter().rposition(|&h| h + hour <= t + 60_000 || h + hour <= t - t.rem_euclid(hour));
        for k in 0..3 {
            let got = on_minutes.columns[k][i];
            match closed {
                None => assert!(got.is_nan(), "bar {i}: no hour closed yet"),
                Some(h) => {
                    let want = on_hours.columns[k][h];
                    assert!(
                        got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                        "bar {i} col {k}: {got} vs {want}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100_000);
    // The value changes only at hour boundaries: never mid-hour.
    let changes = (1..minutes.len())
        .filter(|&i| on_minutes.columns[0][i].to_bits() != on_minutes.columns[0][i - 1].to_bits())
        .filter(|&i| (minutes.ts[i] + 60_000) % hour != 0 && minutes.ts[i] - minutes.ts[i - 1] == 60_000)
        .count();
    assert_eq!(changes, 0);
}
