//! Most CSV lines are read by splitting at the delimiter, not by the general CSV parser; a file must
//! read the same either way. A quoted header sends a whole file through the CSV parser, so each body
//! below is read twice — after a plain header and after a quoted one — and the outcomes (values,
//! line numbers, skipped rows and their reasons) must be identical.

use std::io::Write;

use quantpipe_core::Symbol;
use quantpipe_data::read::{read_bars, ReadOptions};

/// What a reading found, as text: the series (values, line numbers, problems), the skipped rows
/// and the row count.
fn outcome(path: &std::path::Path) -> String {
    let opts = ReadOptions { symbol: Some(Symbol::new("TEST").unwrap()), ..Default::default() };
    let outcome = read_bars(path, &opts).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    format!("{:?} {:?} {} {:?}", outcome.series, outcome.unparseable_rows, outcome.rows, outcome.layout.header)
}

fn read(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    outcome(&path)
}

fn gzip(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    let mut encoder = flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), flate2::Compression::fast());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap();
    outcome(&path)
}

fn bar(k: usize) -> String {
    let t = 1_672_531_200_000u64 + 60_000 * k as u64;
    format!("{t},{}.25,{}.5,{}.125,{}.375,{}.0", 100 + k % 7, 101 + k % 7, 99 + k % 7, 100 + k % 5, k % 11)
}

#[test]
fn split_lines_read_exactly_as_the_csv_parser_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let plain_header = "ts,open,high,low,close,volume\n";
    let quoted_header = "\"ts\",open,high,low,close,volume\n";
    let bodies: Vec<(&str, String)> = vec![
        ("plain", (0..50).map(|k| bar(k) + "\n").collect()),
        ("crlf", (0..50).map(|k| bar(k) + "\r\n").collect()),
        ("no final newline", (0..5).map(bar).collect::<Vec<_>>().join("\n")),
        ("blank and whitespace lines", format!("{}\n\n{}\n   \n\r\n{}\n", bar(0), bar(1), bar(2))),
        (
            "wrong field counts",
            format!("{}\n1672531500000,1,2\n{}\n{},9\nsingle\n{}\n", bar(0), bar(1), bar(2), bar(3)),
        ),
        ("bad values", format!("{}\n1672531500000,x,2,1,1,1\n{}\n1672531620000,1,2,,1,1\n", bar(0), bar(1))),
        ("a stray carriage return", format!("{}\n{}\r{}\n{}\n", bar(0), bar(1), bar(2), bar(3))),
        (
            "a quoted field mid-file",
            format!("{}\n{}\n1672531320000,\"100.5\",101,99,100,1\n{}\n", bar(0), bar(1), bar(4)),
        ),
        ("a quoted newline", format!("{}\n1672531260000,\"100\n.5\",101,99,100,1\n{}\n{}\n", bar(0), bar(2), bar(3))),
        (
            "a quote past the first megabyte",
            (0..40_000).map(|k| if k == 30_000 { "1,\"2\",3,4,5,6\n".to_string() } else { bar(k) + "\n" }).collect(),
        ),
        ("a long file", (0..60_000).map(|k| bar(k) + if k % 3 == 0 { "\r\n" } else { "\n" }).collect()),
    ];
    for (name, body) in &bodies {
        let split = read(&dir, "split.csv", &format!("{plain_header}{body}"));
        let parsed = read(&dir, "parsed.csv", &format!("{quoted_header}{body}"));
        assert_eq!(split, parsed, "{name}: splitting and parsing disagree");
        let split_gz = gzip(&dir, "split.csv.gz", &format!("{plain_header}{body}"));
        assert_eq!(split_gz, parsed, "{name} (gzip): splitting and parsing disagree");
    }
    // The comparison has teeth: the bodies do produce rows, skipped rows and line numbers.
    let skipped = read(&dir, "skipped.csv", &format!("{plain_header}{}", bodies[4].1));
    assert!(skipped.contains("line: Some(3)"), "{skipped}");
}

#[test]
fn rows_are_numbered_by_physical_line_whatever_the_line_ends() {
    // The CSV parser's own numbering is one short after \r\n and skips blank lines; both readers
    // number by physical line.
    let dir = tempfile::tempdir().unwrap();
    let body =
        format!("{}\r\n{}\r\n\r\n\n{}\r\n1672531380000,\"1\r\n5\",2,3,4,5\r\n{}\r\n", bar(0), bar(1), bar(2), bar(4));
    for (name, header) in
        [("split", "ts,open,high,low,close,volume\r\n"), ("parsed", "\"ts\",open,high,low,close,volume\r\n")]
    {
        let path = dir.path().join(format!("{name}.csv"));
        std::fs::write(&path, format!("{header}{body}")).unwrap();
        let opts = ReadOptions { symbol: Some(Symbol::new("TEST").unwrap()), ..Default::default() };
        let outcome = read_bars(&path, &opts).unwrap();
        assert_eq!(outcome.series[0].lines, vec![2, 3, 6, 9], "{name}");
        // The row with a quoted line break in a price starts on line 7 and is refused there.
        let refused = &outcome.series[0].unparseable.examples[0];
        assert_eq!(refused.line, Some(7), "{name}: {refused:?}");
    }
}
