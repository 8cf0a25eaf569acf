//! The bad-input corpus: every malformed file gives an error naming the file and, where there is
//! one, the line and column; nothing already stored is touched; nothing panics.

use crate::common::{corpus, ingest, options};
use quantpipe_core::{Symbol, Timeframe};
use quantpipe_data::quality::{Action, CheckKind, ConflictRule, Policy};
use quantpipe_data::BarStore;

fn store_with_good_series() -> (tempfile::TempDir, BarStore, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = BarStore::open(dir.path()).unwrap();
    ingest(&store, &corpus("good.csv"), &options(Some("TEST"))).unwrap();
    let hash = store.meta(&Symbol::new("TEST").unwrap(), Timeframe::MINUTE).unwrap().unwrap().content_hash;
    (dir, store, hash)
}

#[test]
fn fatal_files_name_file_line_and_column_and_store_nothing() {
    let cases: &[(&str, &[&str])] = &[
        ("empty.csv", &["empty.csv", "the file is empty"]),
        ("header_only.csv", &["header_only.csv", "header but no data rows"]),
        ("truncated.csv", &["truncated.csv", "line 32", "2 fields, expected 6"]),
        ("wrong_delimiter.csv", &["wrong_delimiter.csv", "line 2", "delimiter"]),
        (
            "text_in_numeric.csv",
            &["text_in_numeric.csv", "line 8", "column low", "\"abc\" is not a number", "--repair"],
        ),
        ("nan_inf.csv", &["nan_inf.csv", "line 5", "column high", "line 9", "column close", "not finite"]),
        (
            "duplicates_conflicting.csv",
            &["duplicates_conflicting.csv", "lines 5, 6", "differ in volume", "--on-conflict"],
        ),
        ("mixed_timezones.csv", &["mixed_timezones.csv", "line 3", "mixed time zones"]),
        ("cut.csv.gz", &["cut.csv.gz", "gzip stream is corrupt or cut short"]),
        ("binary.csv", &["binary.csv", "binary file"]),
        (
            "missing_column.csv",
            &[
                "missing_column.csv",
                "missing required column \"close\"",
                "header: timestamp,open,high,low,volume",
                "--columns",
            ],
        ),
        ("bad_json.jsonl", &["bad_json.jsonl", "line 2", "bad JSON"]),
        ("renamed_csv.parquet", &["renamed_csv.parquet", "does not start with Parquet's magic bytes PAR1"]),
        ("wrong_type.jsonl", &["wrong_type.jsonl", "line 2", "column open", "\"five\" is not a number"]),
    ];
    let (_dir, store, hash) = store_with_good_series();
    for (file, fragments) in cases {
        let err = ingest(&store, &corpus(file), &options(Some("TEST"))).expect_err(file).to_string();
        for fragment in *fragments {
            assert!(err.contains(fragment), "{file}: error lacks {fragment:?}:\n{err}");
        }
        let meta = store.meta(&Symbol::new("TEST").unwrap(), Timeframe::MINUTE).unwrap().unwrap();
        assert_eq!(meta.content_hash, hash, "{file} changed the stored series");
        let (_, bars) = store.load(&Symbol::new("TEST").unwrap(), Timeframe::MINUTE).unwrap();
        assert_eq!(bars.len(), 30);
    }
}

#[test]
fn strict_makes_flagged_problems_fatal() {
    let (_dir, store, _) = store_with_good_series();
    let mut opts = options(Some("NEG"));
    opts.policy = Policy { strict: true, ..Policy::default() };
    let err = ingest(&store, &corpus("negative_prices.csv"), &opts).unwrap_err().to_string();
    assert!(err.contains("non-positive prices: 1") && err.contains("line 6") && err.contains("--strict"), "{err}");
    assert!(store.meta(&Symbol::new("NEG").unwrap(), Timeframe::MINUTE).unwrap().is_none());
}

#[test]
fn accepted_layouts_parse_to_the_right_values() {
    let dir = tempfile::tempdir().unwrap();
    let store = BarStore::open(dir.path()).unwrap();
    let load = |symbol: &str, tf: Timeframe| store.load(&Symbol::new(symbol).unwrap(), tf).unwrap().1;

    // BOM and CRLF: same bars as the plain file (the BOM is not part of the first column name, and
    // no value keeps a carriage return).
    ingest(&store, &corpus("good.csv"), &options(Some("PLAIN"))).unwrap();
    ingest(&store, &corpus("bom.csv"), &options(Some("BOM"))).unwrap();
    ingest(&store, &corpus("crlf.csv"), &options(Some("CRLF"))).unwrap();
    let plain = load("PLAIN", Timeframe::MINUTE);
    assert_eq!(plain.ts[0], 1_675_209_600_000);
    assert_eq!(plain.volume[29], 129.0);
    assert_eq!(load("BOM", Timeframe::MINUTE), plain);
    assert_eq!(load("CRLF", Timeframe::MINUTE), plain);

    let r = ingest(&store, &corpus("metatrader.csv"), &options(Some("EURUSD"))).unwrap();
    assert_eq!(r.series[0].report.timeframe, "1h");
    let mt = load("EURUSD", Timeframe::HOUR);
    assert_eq!(mt.ts[0], 1_425_909_600_000); // 2015-03-09T14:00:00Z
    assert_eq!((mt.close[0], mt.volume[0]), (1.08578, 4992.0));
    assert_eq!(mt.extra("spread").unwrap().values, vec![10.0, 11.0, 12.0]);

    let r = ingest(&store, &corpus("binance_no_header.csv"), &options(Some("FIL"))).unwrap();
    assert!(r.layout.starts_with("binance-kline (no header)"), "{}", r.layout);
    let fil = load("FIL", Timeframe::MINUTE);
    assert_eq!((fil.open[2], fil.extra("trades").unwrap().values[0]), (5.232, 403.0));

    let r = ingest(&store, &corpus("index_column.csv"), &options(Some("IDX"))).unwrap();
    assert!(r.notes.iter().any(|n| n.contains("index column")));
    let idx = load("IDX", Timeframe::DAY);
    assert_eq!((idx.close[1], idx.extra("adj_close").unwrap().values[1]), (11.0, 10.9));

    let r = ingest(&store, &corpus("semicolon.csv"), &options(Some("SEMI"))).unwrap();
    assert!(r.notes.iter().any(|n| n.contains("';'")));
    assert_eq!(load("SEMI", Timeframe::DAY).volume, vec![1000.0, 1200.0, 900.0]);

    // +01:00 offsets are converted to UTC.
    ingest(&store, &corpus("epoch_seconds_iso_zone.csv"), &options(Some("TZ"))).unwrap();
    assert_eq!(load("TZ", Timeframe::MINUTE).ts[0], 1_675_209_600_000 - 3_600_000);

    ingest(&store, &corpus("good.jsonl"), &options(Some("JSON"))).unwrap();
    assert_eq!(load("JSON", Timeframe::MINUTE), plain);
}

#[test]
fn repairs_follow_their_stated_rule_and_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = BarStore::open(dir.path()).unwrap();
    let sym = |s: &str| Symbol::new(s).unwrap();
    let with = |symbol: &str, repair: bool, rule: Option<ConflictRule>| {
        let mut o = options(Some(symbol));
        o.policy = Policy { repair, on_conflict: rule, ..Policy::default() };
        o
    };

    let r = ingest(&store, &corpus("text_in_numeric.csv"), &with("DROP", true, None)).unwrap();
    let check = r.series[0].report.check(CheckKind::UnparseableValues).unwrap();
    assert_eq!((check.count, &check.action), (1, &Action::Repaired { rule: "rows dropped".into() }));
    assert_eq!(r.series[0].report.rows_kept, 9);

    for (symbol, rule, rows, volume_at_3m) in [
        ("FIRST", ConflictRule::KeepFirst, 10, Some(103.0)),
        ("LAST", ConflictRule::KeepLast, 10, Some(999.0)),
        ("NONE", ConflictRule::Drop, 9, None),
    ] {
        ingest(&store, &corpus("duplicates_conflicting.csv"), &with(symbol, true, Some(rule))).unwrap();
        let (_, bars) = store.load(&sym(symbol), Timeframe::MINUTE).unwrap();
        assert_eq!(bars.len(), rows, "{symbol}");
        let at = bars.ts.iter().position(|&t| t == 1_675_209_780_000);
        assert_eq!(at.map(|i| bars.volume[i]), volume_at_3m, "{symbol}");
    }

    let r = ingest(&store, &corpus("duplicates_exact.csv"), &with("EXACT", false, None)).unwrap();
    assert_eq!(r.series[0].report.count(CheckKind::ExactDuplicates), 1);
    assert_eq!(store.load(&sym("EXACT"), Timeframe::MINUTE).unwrap().1.len(), 10);

    let r = ingest(&store, &corpus("unsorted.csv"), &with("SORT", false, None)).unwrap();
    let unsorted = r.series[0].report.check(CheckKind::UnsortedRows).unwrap();
    assert_eq!(unsorted.count, 2);
    assert_eq!(unsorted.examples[0].line, Some(5));
    let bars = store.load(&sym("SORT"), Timeframe::MINUTE).unwrap().1;
    assert!(bars.ts.windows(2).all(|w| w[1] - w[0] == 60_000));

    let r = ingest(&store, &corpus("negative_prices.csv"), &with("NEG", false, None)).unwrap();
    let rep = &r.series[0].report;
    assert_eq!((rep.count(CheckKind::NonPositivePrices), rep.count(CheckKind::OhlcInconsistent)), (1, 1));
    assert_eq!(rep.check(CheckKind::NonPositivePrices).unwrap().examples[0].line, Some(6));
    assert_eq!(rep.score, 60.0);
}
