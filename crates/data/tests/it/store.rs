//! Store semantics: re-ingest adds nothing, overlaps merge, conflicting overlaps are refused, and
//! Parquet round-trips are exact.

use crate::common::{corpus, ingest, options};
use quantpipe_core::{Symbol, Timeframe};
use quantpipe_data::parquet_io::{read_bars_file, write_bars};
use quantpipe_data::{BarStore, DataError};

fn write(dir: &std::path::Path, name: &str, rows: &[(i64, f64, f64)]) -> std::path::PathBuf {
    let mut text = String::from("timestamp,open,high,low,close,volume\n");
    for (ts, close, volume) in rows {
        text.push_str(&format!("{},", 1_675_209_600_000 + ts));
        text.push_str(&format!("{close},{},{},{close},{volume}\n", close + 1.0, close - 1.0));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn reingest_overlap_and_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let store = BarStore::open(&dir.path().join("home")).unwrap();
    let sym = Symbol::new("X").unwrap();
    let m = 60_000;
    let a = write(dir.path(), "a.csv", &[(0, 10.0, 1.0), (m, 11.0, 2.0), (2 * m, 12.0, 3.0)]);
    let b = write(dir.path(), "b.csv", &[(2 * m, 12.0, 3.0), (3 * m, 13.0, 4.0)]);
    let c = write(dir.path(), "c.csv", &[(3 * m, 13.5, 4.0), (4 * m, 14.0, 5.0)]);

    let first = ingest(&store, &a, &options(Some("X"))).unwrap();
    assert_eq!(first.series[0].stored.as_ref().unwrap().rows_added, 3);
    let again = ingest(&store, &a, &options(Some("X"))).unwrap();
    let outcome = again.series[0].stored.as_ref().unwrap();
    assert!(outcome.unchanged && outcome.rows_added == 0);

    let merged = ingest(&store, &b, &options(Some("X"))).unwrap();
    assert_eq!(merged.series[0].stored.as_ref().unwrap().rows_added, 1);
    let meta_before = store.meta(&sym, Timeframe::MINUTE).unwrap().unwrap();
    assert_eq!(meta_before.rows, 4);
    assert_eq!(meta_before.sources.len(), 2);

    let err = ingest(&store, &c, &options(Some("X"))).unwrap_err();
    assert!(matches!(err, DataError::StoreConflict { count: 1, .. }), "{err}");
    assert!(err.to_string().contains("2023-02-01T00:03:00Z"), "{err}");
    let meta_after = store.meta(&sym, Timeframe::MINUTE).unwrap().unwrap();
    assert_eq!(meta_after, meta_before, "a refused ingest must not touch the store");
    let (_, bars) = store.load(&sym, Timeframe::MINUTE).unwrap();
    assert_eq!(bars.close, vec![10.0, 11.0, 12.0, 13.0]);
    let quality = store.quality(&sym, Timeframe::MINUTE).unwrap();
    assert_eq!(quality.ingests.len(), 2);
    assert_eq!(quality.series.rows_kept, 4);
}

/// A writer killed mid-write leaves a temporary file; the next write of the series removes it,
/// also when that write finds nothing to change (the case a killed-ingest CI run caught).
#[test]
fn killed_writers_leftovers_are_removed_by_the_next_write_even_when_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let store = BarStore::open(&home).unwrap();
    let a = write(dir.path(), "a.csv", &[(0, 10.0, 1.0), (60_000, 11.0, 2.0)]);
    ingest(&store, &a, &options(Some("X"))).unwrap();
    let series_dir = home.join("bars/X/1m");
    let leftover = series_dir.join(".bars-0123456789abcdef.parquet.tmp-99999");
    std::fs::write(&leftover, b"half a parquet file").unwrap();
    let again = ingest(&store, &a, &options(Some("X"))).unwrap();
    assert!(again.series[0].stored.as_ref().unwrap().unchanged);
    assert!(!leftover.exists(), "leftover of a killed writer survived an unchanged re-ingest");
    assert!(series_dir.join("meta.json").exists() && series_dir.join(".lock").exists());
}

#[test]
fn content_hash_depends_on_values_not_on_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = BarStore::open(dir.path()).unwrap();
    ingest(&store, &corpus("good.csv"), &options(Some("A"))).unwrap();
    ingest(&store, &corpus("good.jsonl"), &options(Some("B"))).unwrap();
    ingest(&store, &corpus("unsorted.csv"), &options(Some("C"))).unwrap();
    let hash = |s: &str| store.meta(&Symbol::new(s).unwrap(), Timeframe::MINUTE).unwrap().unwrap().content_hash;
    assert_eq!(hash("A"), hash("B"));
    assert_ne!(hash("A"), hash("C"));
}

#[test]
fn parquet_round_trip_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let store = BarStore::open(dir.path()).unwrap();
    ingest(&store, &corpus("binance_no_header.csv"), &options(Some("FIL"))).unwrap();
    let (_, mut bars) = store.load(&Symbol::new("FIL").unwrap(), Timeframe::MINUTE).unwrap();
    bars.extras[0].values[1] = f64::NAN;
    bars.close[0] = 0.1 + 0.2;
    let path = dir.path().join("x.parquet");
    write_bars(&path, bars.clone()).unwrap();
    let back = read_bars_file(&path).unwrap();
    assert_eq!(back.close[0].to_bits(), (0.1f64 + 0.2).to_bits());
    assert!(back.extras[0].values[1].is_nan());
    assert_eq!(back.ts, bars.ts);
    assert_eq!(back.extra_layout(), bars.extra_layout());
    // And Parquet is accepted as an input file, with the same layout detection.
    let r = ingest(&store, &path, &options(Some("FIL2"))).unwrap();
    assert_eq!(r.format, "Parquet");
    let (_, again) = store.load(&Symbol::new("FIL2").unwrap(), Timeframe::MINUTE).unwrap();
    assert_eq!(again.close, bars.close);
}
