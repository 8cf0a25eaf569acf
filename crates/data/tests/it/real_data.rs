//! The quality report on the real files of `../shared/data/` finds what that folder's README
//! documents (counts checked by hand there).

use crate::common::{ingest, options, shared};
use quantpipe_core::{MarketCalendar, Symbol, Timeframe};
use quantpipe_data::quality::{CheckKind, ConflictRule, Policy, QualityReport};
use quantpipe_data::{BarStore, IngestOptions};

fn single(path: &str, symbol: &str) -> QualityReport {
    let dir = tempfile::tempdir().unwrap();
    let store = BarStore::open(dir.path()).unwrap();
    let mut r = ingest(&store, &shared(path), &options(Some(symbol))).unwrap();
    assert_eq!(r.series.len(), 1);
    r.series.remove(0).report
}

#[test]
fn filusdt_two_missing_months_are_the_only_gaps() {
    let r = single("filusdt_perp_1m_2023.csv.gz", "FILUSDT");
    assert_eq!(
        (r.rows_read, r.rows_kept, r.timeframe.as_str(), r.calendar),
        (347_040, 347_040, "1m", MarketCalendar::Crypto)
    );
    assert_eq!(r.gaps.gaps, 2);
    assert_eq!(r.gaps.missing_bars, 2 * 31 * 1440, "March and July");
    assert_eq!(r.gaps.largest[0].ts.as_deref(), Some("2023-03-01T00:00:00Z"));
    assert_eq!(r.gaps.largest[1].ts.as_deref(), Some("2023-07-01T00:00:00Z"));
    assert_eq!(r.count(CheckKind::ZeroVolume), 86);
    // As pandas finds them (bench/ingest_bench.py): robust z > 30 and runs of ≥ 10 flat bars.
    assert_eq!((r.count(CheckKind::ExtremeReturns), r.count(CheckKind::StaleRuns)), (56, 1));
    for kind in [
        CheckKind::OhlcInconsistent,
        CheckKind::ExactDuplicates,
        CheckKind::ConflictingDuplicates,
        CheckKind::UnsortedRows,
    ] {
        assert_eq!(r.count(kind), 0, "{kind:?}");
    }
    assert!(r.score > 90.0 && r.score < 100.0, "{}", r.score);
}

/// The uncompressed file is read whole and parsed on two threads; the gzip file streams through one
/// parser. Both must store the same bars.
#[test]
fn filusdt_uncompressed_read_on_two_threads_stores_what_the_streamed_gzip_stores() {
    use std::io::Read;
    let gz = shared("filusdt_perp_1m_2023.csv.gz");
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("filusdt_perp_1m_2023.csv");
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&gz).unwrap()).read_to_end(&mut text).unwrap();
    std::fs::write(&plain, &text).unwrap();
    let hash = |path: &std::path::Path| {
        let store =
            BarStore::open(&dir.path().join(format!("store-{}", path.extension().unwrap().to_string_lossy()))).unwrap();
        let r = ingest(&store, path, &options(Some("FILUSDT"))).unwrap();
        assert_eq!(r.rows, 347_040);
        r.series[0].stored.as_ref().unwrap().content_hash.clone()
    };
    assert_eq!(hash(&plain), hash(&gz));
}

#[test]
fn nearusdt_missing_march_june_and_july() {
    let r = single("nearusdt_perp_1m_2023.csv.gz", "NEARUSDT");
    assert_eq!(r.rows_kept, 260_640);
    assert_eq!(r.gaps.gaps, 2);
    assert_eq!(r.gaps.missing_bars, (31 + 30 + 31) * 1440);
    assert_eq!(r.count(CheckKind::ZeroVolume), 292);
    assert_eq!(r.count(CheckKind::OhlcInconsistent), 0);
}

#[test]
fn btc_january_is_clean() {
    let r = single("btc_perp_1m_2022-01.csv.gz", "BTCUSDT");
    assert_eq!(r.rows_kept, 45_031);
    assert_eq!(r.first.as_deref(), Some("2021-12-31T23:01:00Z"));
    assert_eq!((r.gaps.gaps, r.count(CheckKind::OhlcInconsistent), r.count(CheckKind::ZeroVolume)), (0, 0, 0));
}

#[test]
fn eurusd_gaps_are_weekend_and_holiday_closures() {
    let r = single("eurusd_1h.csv.gz", "EURUSD");
    assert_eq!((r.rows_kept, r.timeframe.as_str(), r.calendar), (45_779, "1h", MarketCalendar::Fx));
    // 390 absences longer than an hour: 384 weekends, 4 Christmas / New Year closures, Boxing Day
    // 2016, and one missing hour on an ordinary Thursday (2021-01-21 17:00), which is reported.
    assert_eq!(r.gaps.closures, 389);
    assert_eq!((r.gaps.gaps, r.gaps.missing_bars), (1, 1));
    assert_eq!(r.gaps.largest[0].ts.as_deref(), Some("2021-01-21T17:00:00Z"));
    for kind in
        [CheckKind::OhlcInconsistent, CheckKind::ExactDuplicates, CheckKind::UnsortedRows, CheckKind::ZeroVolume]
    {
        assert_eq!(r.count(kind), 0, "{kind:?}");
    }
    // As crypto (24/7) the weekends are gaps.
    let dir = tempfile::tempdir().unwrap();
    let store = BarStore::open(dir.path()).unwrap();
    let opts = IngestOptions { calendar: Some(MarketCalendar::Crypto), dry_run: true, ..options(Some("EURUSD")) };
    let crypto = ingest(&store, &shared("eurusd_1h.csv.gz"), &opts).unwrap();
    assert_eq!(crypto.series[0].report.gaps.gaps, 390);
}

#[test]
fn sp500_refused_for_conflicting_duplicates_then_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let store = BarStore::open(dir.path()).unwrap();
    let path = shared("sp500_daily_5yr.csv.gz");
    let err = ingest(&store, &path, &options(None)).unwrap_err().to_string();
    for fragment in [
        "3 fatal problem(s); nothing was stored",
        "CBS: conflicting duplicate timestamps: 1",
        "(2019-12-04T00:00:00Z): lines 97024, 97025",
        "STI: conflicting duplicate timestamps: 1",
        "VIAB: conflicting duplicate timestamps: 1",
        "--repair --on-conflict",
    ] {
        assert!(err.contains(fragment), "missing {fragment:?} in:\n{err}");
    }
    assert!(store.list().unwrap().is_empty(), "a refused file stores nothing");

    let repaired = IngestOptions {
        policy: Policy { repair: true, on_conflict: Some(ConflictRule::KeepFirst), ..Policy::default() },
        ..options(None)
    };
    let r = ingest(&store, &path, &repaired).unwrap();
    assert_eq!(r.series.len(), 482);
    // One timeframe for the file: SNI's two bars, 60 days apart, are daily bars with a gap, not a
    // series of 60-day bars.
    assert!(r.series.iter().all(|s| s.report.timeframe == "1d"), "every series is daily");
    let sni = r.series.iter().find(|s| s.report.symbol.as_str() == "SNI").unwrap();
    assert_eq!((sni.report.rows_kept, sni.report.gaps.gaps), (2, 1));
    assert_eq!(r.series.iter().map(|s| s.report.rows_kept).sum::<u64>(), 592_358 - 3);
    let total = |kind| r.series.iter().map(|s| s.report.count(kind)).sum::<u64>();
    assert_eq!(total(CheckKind::ConflictingDuplicates), 3);
    let mut ohlc: Vec<(String, String)> = r
        .series
        .iter()
        .flat_map(|s| {
            let sym = s.report.symbol.to_string();
            s.report
                .check(CheckKind::OhlcInconsistent)
                .unwrap()
                .examples
                .iter()
                .map(move |e| (sym.clone(), e.ts.clone().unwrap()))
        })
        .collect();
    ohlc.sort();
    assert_eq!(
        ohlc,
        vec![
            ("CBOE".into(), "2020-01-10T00:00:00Z".into()),
            ("DIS".into(), "2020-01-10T00:00:00Z".into()),
            ("DXC".into(), "2018-06-01T00:00:00Z".into())
        ]
    );
    // Keep-first keeps CBS's first 2019-12-04 row; the all-zero second row is dropped.
    let cbs = store.load(&Symbol::new("CBS").unwrap(), Timeframe::DAY).unwrap().1;
    assert!(cbs.close.iter().all(|&c| c > 0.0));
    assert_eq!(total(CheckKind::ZeroVolume), 435 - 1);
    assert!(r.series.iter().all(|s| s.report.calendar == MarketCalendar::Equity));
    // The equity calendar: no gaps for a full-history symbol (weekends and NYSE holidays are closures).
    let aapl = r.series.iter().find(|s| s.report.symbol.as_str() == "AAPL").unwrap();
    assert_eq!((aapl.report.rows_kept, aapl.report.gaps.gaps), (1259, 0));

    // Keep-last keeps the zero row instead, which is then flagged as a non-positive price.
    let last = IngestOptions {
        policy: Policy { repair: true, on_conflict: Some(ConflictRule::KeepLast), ..Policy::default() },
        dry_run: true,
        ..options(Some("CBS"))
    };
    let r = ingest(&store, &path, &last).unwrap();
    assert_eq!(r.series[0].report.count(CheckKind::NonPositivePrices), 1);
}

#[test]
fn bundled_sample_is_sorted_from_descending_order() {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/sample/bitfinex_btcusd_1h.csv.gz");
    let dir = tempfile::tempdir().unwrap();
    let store = BarStore::open(dir.path()).unwrap();
    let r = ingest(&store, &path, &options(None)).unwrap();
    let report = &r.series[0].report;
    assert_eq!((report.symbol.as_str(), report.timeframe.as_str(), report.rows_kept), ("BTCUSD", "1h", 17_583));
    assert!(report.count(CheckKind::UnsortedRows) > 17_000);
    let bars = store.load(&Symbol::new("BTCUSD").unwrap(), Timeframe::HOUR).unwrap().1;
    assert!(bars.ts.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(report.first.as_deref(), Some("2017-07-01T11:00:00Z"));
}
