//! Trades and order books from the real samples in `shared/data/orderbook_ticks/`, checked
//! against values read off the files by hand.

use crate::common::shared;
use quantpipe_core::{Symbol, Timeframe};
use quantpipe_data::ticks::{bars_from_trades, finish, read_ticks, sniff, TickData, TickFormat, TradeBarRule};

fn read(name: &str, symbol: Option<&str>, depth: usize) -> (TickFormat, Symbol, TickData) {
    let path = shared(&format!("orderbook_ticks/{name}"));
    let format = sniff(&path).unwrap_or_else(|| panic!("{name} not recognised as ticks"));
    let sym = symbol.map(|s| Symbol::new(s).unwrap());
    let (symbol, mut data, notes) = read_ticks(&path, format, sym.as_ref(), depth).unwrap();
    finish(&path, format, symbol.clone(), &mut data, notes);
    (format, symbol, data)
}

#[test]
fn binance_trades_and_their_bars() {
    let (format, _, data) = read("binance_btcusdt_trades.parquet", Some("BTCUSDT"), 10);
    assert_eq!(format, TickFormat::Trades);
    let TickData::Trades(t) = data else { panic!("not trades") };
    assert_eq!(t.ts.len(), 2001);
    assert_eq!((t.ts[0], t.price[0], t.qty[0]), (1_610_064_000_278, 39432.48, 0.000263));
    // buyer_maker = True: the seller took liquidity.
    assert_eq!((t.side[0], t.side[1]), (-1.0, 1.0));
    let bars = bars_from_trades(&t, TradeBarRule::Time(Timeframe::parse("1s").unwrap()));
    assert_eq!(bars.ts[0], 1_610_064_000_000);
    assert_eq!(bars.extras[0].values.iter().sum::<f64>(), 2001.0);
    let total: f64 = t.qty.iter().sum();
    assert!((bars.volume.iter().sum::<f64>() - total).abs() < 1e-9);
    let vol = bars_from_trades(&t, TradeBarRule::Volume(1.0));
    assert!(vol.volume[..vol.len() - 1].iter().all(|&v| v >= 1.0));
}

#[test]
fn tardis_trades_and_book_snapshots() {
    let (_, sym, data) = read("bitmex_xbtusd_trades.csv", None, 10);
    assert_eq!(sym.as_str(), "XBTUSD");
    let TickData::Trades(t) = data else { panic!() };
    assert_eq!((t.ts.len(), t.ts[0], t.price[0], t.qty[0], t.side[0]), (10, 1_583_020_803_145, 8531.5, 2152.0, -1.0));

    let (format, _, data) = read("binance_futures_btcusdt_book_snapshot_25_2020-09-01.csv", None, 25);
    assert_eq!(format, TickFormat::TardisBook);
    let TickData::Book(b) = data else { panic!() };
    assert_eq!((b.ts.len(), b.depth), (10, 25));
    assert_eq!((b.bid_px[0], b.bid_sz[0], b.ask_px[0], b.ask_sz[0]), (11657.07, 10.896, 11657.08, 1.714));
    assert_eq!((b.bid_px[24], b.ask_px[24]), (11653.25, 11659.34));
}

#[test]
fn diff_books_are_replayed() {
    let (format, sym, data) = read("bybit_xrpusdt_ob500_2024-12-01.jsonl", None, 5);
    assert_eq!((format, sym.as_str()), (TickFormat::BybitBook, "XRPUSDT"));
    let TickData::Book(b) = data else { panic!() };
    assert_eq!(b.ts.len(), 50);
    // Snapshot: best bid 1.9531 × 6203; the first delta sets it to 6198.
    assert_eq!((b.bid_px[0], b.bid_sz[0]), (1.9531, 6203.0));
    assert_eq!((b.bid_px[5], b.bid_sz[5]), (1.9531, 6198.0));
    assert!((0..50).all(|i| b.bid_px[i * 5] < b.ask_px[i * 5]));

    let (format, _, data) = read("binance_btcusdt_perp_depth_snapshot_2022-11-01.csv", None, 3);
    assert_eq!(format, TickFormat::BinanceDepth);
    let TickData::Book(b) = data else { panic!() };
    assert_eq!((b.ts, b.bid_px[..2].to_vec(), b.bid_sz[0]), (vec![1_667_346_579_146], vec![20377.0, 20376.9], 1.77));
    assert!(b.ask_px[0].is_nan(), "the sample holds bids only");
}

#[test]
fn quotes_are_depth_one_books() {
    let (_, _, data) = read("truefx_usdjpy_quote_ticks_2013-01.csv", Some("USDJPY"), 10);
    let TickData::Book(b) = data else { panic!() };
    assert_eq!((b.ts.len(), b.depth, b.bid_px[0], b.ask_px[0]), (1000, 1, 86.655, 86.728));
    assert!(b.bid_sz[0].is_nan());
    let (_, sym, data) = read("binance_btcusdt_quotes.parquet", None, 10);
    assert_eq!(sym.as_str(), "BTCUSDT");
    let TickData::Book(b) = data else { panic!() };
    assert_eq!((b.ts.len(), b.bid_px[0], b.bid_sz[0], b.ask_px[0]), (451, 39432.99, 0.0031, 39433.62));
}

#[test]
fn bar_files_are_not_ticks() {
    assert_eq!(sniff(&shared("btc_perp_1m_2022-01.csv.gz")), None);
    assert_eq!(sniff(&shared("eurusd_1h.csv.gz")), None);
}

#[test]
fn trade_files_name_the_physical_line_of_a_bad_row() {
    // CRLF line ends and a blank line: the CSV parser's own numbering would say line 4 for both.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trades.csv");
    let write = |text: &str| std::fs::write(&path, text).unwrap();
    let read = || read_ticks(&path, TickFormat::Trades, Some(&Symbol::new("BTCUSDT").unwrap()), 10);
    write("time,price,qty\r\n1610064000278,39432.48,0.1\r\n\r\n1610064000300,39432.5,0.2\r\n1610064000400,abc,0.3\r\n");
    let err = read().unwrap_err().to_string();
    assert!(err.contains("line 5") && err.contains("price"), "{err}");
    write("time,price,qty\r\n1610064000278,39432.48,0.1\r\n\r\n1610064000300,39432.5\r\n");
    let err = read().unwrap_err().to_string();
    assert!(err.contains("line 4") && err.contains("2 fields, but the header has 3"), "{err}");
    write("time,price,qty\r\n1610064000278,39432.48,0.1\r\n\r\n1610064000300,39432.5,0.2\r\n");
    let (_, data, _) = read().unwrap();
    let TickData::Trades(t) = data else { panic!("not trades") };
    assert_eq!(t.price, vec![39432.48, 39432.5]);
    // Bytes that are not UTF-8 are refused at their line, also when two fields' bytes would make
    // a valid character only together (a lead byte ending one field, its continuation starting
    // the next).
    for bad in [&b"1610064000300,\xff9432.5,0.2"[..], &b"1610064000300,39432.5\xc3,\xa90.2"[..]] {
        let mut text = b"time,price,qty\n1610064000278,39432.48, 0.1\n".to_vec();
        text.extend_from_slice(bad);
        text.push(b'\n');
        std::fs::write(&path, text).unwrap();
        let err = read().unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("not valid UTF-8"), "{err}");
    }
}

/// A tick ingest killed mid-write leaves a temporary file; storing the same series again (a no-op)
/// removes it under the series' lock, and the stored series is untouched.
#[test]
fn a_killed_tick_writers_leftover_is_removed_by_the_next_store() {
    use quantpipe_data::ticks::{ingest_ticks, tick_dir, tick_meta};
    let home = tempfile::tempdir().unwrap();
    let path = shared("orderbook_ticks/binance_btcusdt_trades.parquet");
    let sym = Symbol::new("BTCUSDT").unwrap();
    ingest_ticks(home.path(), &path, TickFormat::Trades, Some(&sym), 10, false).unwrap();
    let before = tick_meta(home.path(), &sym, "trades").unwrap();
    let leftover = tick_dir(home.path(), &sym, "trades").join(".trades-0123456789abcdef.parquet.tmp-99999");
    std::fs::write(&leftover, b"half a file").unwrap();
    ingest_ticks(home.path(), &path, TickFormat::Trades, Some(&sym), 10, false).unwrap();
    assert!(!leftover.exists(), "leftover of a killed tick writer survived");
    let after = tick_meta(home.path(), &sym, "trades").unwrap();
    assert_eq!(
        (after.rows, &after.content_hash, &after.data_file),
        (before.rows, &before.content_hash, &before.data_file)
    );
    assert_eq!(after.rows, 2001);
}
