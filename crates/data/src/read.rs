//! Readers for bar files: CSV (plain or gzip, any of , ; tab |), JSONL and Parquet. They parse every
//! row into columnar bars per symbol and record each row they could not parse, with its line; they
//! decide nothing about data quality (that is `quality`'s job).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use quantpipe_core::{Bars, Symbol};

use crate::error::{DataError, Result};
use crate::layout::{detect, ColumnOverrides, Layout, TimestampColumns};
use crate::quality::{Example, ProblemTally};
use crate::timestamp::{looks_numeric, parse_datetime, parse_epoch, parse_time_of_day, EpochUnit, Zone};

/// Receives progress while a file is read. The CLI draws a bar; libraries and tests pass `NoProgress`.
pub trait Progress: Sync {
    fn start(&self, _label: &str, _total_bytes: u64) {}
    fn advance_to(&self, _bytes: u64) {}
    fn finish(&self) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    CsvGzip,
    Jsonl,
    JsonlGzip,
    Parquet,
}

impl FileFormat {
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Csv => "CSV",
            FileFormat::CsvGzip => "CSV (gzip)",
            FileFormat::Jsonl => "JSONL",
            FileFormat::JsonlGzip => "JSONL (gzip)",
            FileFormat::Parquet => "Parquet",
        }
    }
}

pub struct ReadOptions<'a> {
    /// The symbol of a single-symbol file; with a symbol column, keeps only that symbol's rows.
    pub symbol: Option<Symbol>,
    pub columns: ColumnOverrides,
    pub progress: &'a dyn Progress,
}

impl Default for ReadOptions<'_> {
    fn default() -> Self {
        ReadOptions { symbol: None, columns: ColumnOverrides::default(), progress: &NoProgress }
    }
}

/// One symbol's rows as read, in file order, with the line each came from.
#[derive(Debug, Clone)]
pub struct RawSeries {
    pub symbol: Symbol,
    pub bars: Bars,
    pub lines: Vec<u64>,
    /// Rows of this symbol whose values could not be parsed (not in `bars`).
    pub unparseable: ProblemTally,
    /// Rows of this symbol with NaN or infinite prices or volume (not in `bars`).
    pub non_finite: ProblemTally,
}

#[derive(Debug)]
pub struct ReadOutcome {
    pub format: FileFormat,
    pub layout: Layout,
    pub delimiter: Option<char>,
    /// Data rows read (excluding the header).
    pub rows: u64,
    pub series: Vec<RawSeries>,
    /// Rows that could not be attributed to a symbol (wrong field count, bad symbol).
    pub unparseable_rows: ProblemTally,
    pub rows_of_other_symbols: u64,
}

impl ReadOutcome {
    pub fn notes(&self) -> Vec<String> {
        let mut notes = self.layout.notes.clone();
        if let Some(d) = self.delimiter.filter(|&d| d != ',') {
            notes.push(format!("delimiter {:?}", d));
        }
        notes
    }
}

struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

const SNIFF_BYTES: usize = 8192;

/// A reader whose source is read on its own thread, in chunks passed through a bounded channel
/// (so memory stays bounded: at most `DEPTH` chunks in flight). Errors travel with the data.
struct ThreadedReader {
    chunks: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
}

impl ThreadedReader {
    const CHUNK: usize = 1 << 18;
    const DEPTH: usize = 4;

    fn spawn<R: Read + Send + 'static>(mut source: R) -> ThreadedReader {
        let (tx, rx) = std::sync::mpsc::sync_channel(Self::DEPTH);
        std::thread::spawn(move || loop {
            let mut buf = vec![0u8; Self::CHUNK];
            let mut filled = 0;
            let result = loop {
                match source.read(&mut buf[filled..]) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        filled += n;
                        if filled == buf.len() {
                            break Ok(());
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            buf.truncate(filled);
            let done = filled == 0;
            match result {
                Err(e) => {
                    if filled > 0 {
                        let _ = tx.send(Ok(buf));
                    }
                    let _ = tx.send(Err(e));
                    return;
                }
                Ok(()) if done => return,
                Ok(()) => {
                    if tx.send(Ok(buf)).is_err() {
                        return; // the reader was dropped
                    }
                }
            }
        });
        ThreadedReader { chunks: rx, current: Vec::new(), pos: 0 }
    }
}

impl Read for ThreadedReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.current.len() {
            match self.chunks.recv() {
                Ok(Ok(chunk)) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0), // the source ended
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Reads a bar file of any supported format.
pub fn read_bars(path: &Path, opts: &ReadOptions) -> Result<ReadOutcome> {
    let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let total = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    if total == 0 {
        return Err(DataError::Empty { path: path.into() });
    }
    let mut magic = [0u8; 4];
    let got = read_up_to(&mut file, &mut magic).map_err(|e| DataError::io(path, e))?;
    if got >= 4 && &magic == b"PAR1" {
        return crate::parquet_io::read_parquet_bars(path, opts);
    }
    refuse_misnamed_parquet(path, &magic[..got])?;
    let gzip = got >= 2 && magic[..2] == [0x1f, 0x8b];
    let count = Arc::new(AtomicU64::new(0));
    let whole = read_whole_text(path, gzip, total)?;
    let reader: Box<dyn Read + '_> = match &whole {
        Some(text) => {
            count.store(total, Ordering::Relaxed);
            Box::new(text.as_slice())
        }
        None => {
            let file = File::open(path).map_err(|e| DataError::io(path, e))?;
            let counting = CountingReader { inner: file, count: count.clone() };
            if gzip {
                // Inflate on a second thread so that decompression and parsing overlap.
                Box::new(ThreadedReader::spawn(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
                    1 << 16,
                    counting,
                ))))
            } else {
                Box::new(counting)
            }
        }
    };
    let mut buffered = BufReader::with_capacity(1 << 16, reader);
    let head = buffered.fill_buf().map_err(|e| text_read_error(path, gzip, 0, e))?.to_vec();
    let sniff = &head[..head.len().min(SNIFF_BYTES)];
    if sniff.is_empty() {
        return Err(DataError::Empty { path: path.into() });
    }
    if sniff.contains(&0) {
        return Err(DataError::Binary { path: path.into(), checked: sniff.len() });
    }
    let bom = sniff.starts_with(b"\xEF\xBB\xBF");
    if bom {
        buffered.consume(3);
    }
    let text = &sniff[if bom { 3 } else { 0 }..];
    if text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        let format = if gzip { FileFormat::JsonlGzip } else { FileFormat::Jsonl };
        return read_jsonl(path, format, buffered, opts, &count, total);
    }
    let first_line = text.split(|&b| b == b'\n').next().unwrap_or(text);
    let delimiter = sniff_delimiter(first_line);
    let format = if gzip { FileFormat::CsvGzip } else { FileFormat::Csv };
    let after_bom = whole.as_deref().map(|t| &t[if bom { 3 } else { 0 }..]);
    read_csv(path, format, delimiter, buffered, after_bom, opts, &count, total)
}

/// Plain (uncompressed) files up to this size are read whole and their lines parsed on both cores;
/// longer ones, and gzip files, stream through a bounded buffer. (A gzip file is inflated on its own
/// thread while the lines are parsed; inflating it whole first, even with libdeflate, measured
/// slower than that overlap.)
const WHOLE_TEXT_BYTES: u64 = 256 << 20;

/// The whole text of a plain file small enough to hold, or None when it is to be streamed.
fn read_whole_text(path: &Path, gzip: bool, total: u64) -> Result<Option<Vec<u8>>> {
    if gzip || total > WHOLE_TEXT_BYTES {
        return Ok(None);
    }
    std::fs::read(path).map(Some).map_err(|e| DataError::io(path, e))
}

/// A file named `.parquet` or `.pq` (any letter case) that does not start with `PAR1` is refused:
/// read as text, it would fail on its "header" with a message about columns.
pub(crate) fn refuse_misnamed_parquet(path: &Path, head: &[u8]) -> Result<()> {
    let named = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq"));
    if !named || head.starts_with(b"PAR1") {
        return Ok(());
    }
    Err(DataError::Parquet {
        path: path.into(),
        message: format!(
            "the name says Parquet, but the file does not start with Parquet's magic bytes PAR1 (it starts with {:?}): \
             not a Parquet file, or a damaged one",
            String::from_utf8_lossy(&head[..head.len().min(4)])
        ),
    })
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

fn sniff_delimiter(line: &[u8]) -> u8 {
    let candidates = [b',', b';', b'\t', b'|'];
    let mut best = b',';
    let mut best_count = 0;
    for &c in &candidates {
        let n = line.iter().filter(|&&b| b == c).count();
        if n > best_count {
            best = c;
            best_count = n;
        }
    }
    best
}

fn text_read_error(path: &Path, gzip: bool, rows: u64, e: std::io::Error) -> DataError {
    if gzip {
        DataError::Gzip { path: path.into(), rows, reason: e.to_string() }
    } else if e.kind() == std::io::ErrorKind::InvalidData {
        DataError::Malformed { path: path.into(), line: rows + 1, message: format!("not valid text: {e}") }
    } else {
        DataError::io(path, e)
    }
}

/// `whole` is the file's text after any byte-order mark when it is held in memory; `reader` reads the
/// same text.
#[allow(clippy::too_many_arguments)]
fn read_csv<R: Read>(
    path: &Path,
    format: FileFormat,
    delimiter: u8,
    mut reader: BufReader<R>,
    whole: Option<&[u8]>,
    opts: &ReadOptions,
    count: &AtomicU64,
    total: u64,
) -> Result<ReadOutcome> {
    let gzip = format == FileFormat::CsvGzip;
    let io_err = |e: std::io::Error, rows: u64| text_read_error(path, gzip, rows, e);
    // The first line (a header, or the first record) decides the layout. When it is plain, the
    // splitter reads the lines after it; otherwise the CSV parser reads the whole file.
    let mut first_line = Vec::new();
    reader.read_until(b'\n', &mut first_line).map_err(|e| io_err(e, 0))?;
    let plain = is_plain_line(line_content(&first_line)) && first_line.ends_with(b"\n");
    let mut records = Records { path, gzip, delimiter, opts, count, rows: 0 };
    let mut record = csv::ByteRecord::new();
    let plain_first_record = plain
        && csv_reader(delimiter, std::io::Cursor::new(&first_line))
            .read_byte_record(&mut record)
            .map_err(|e| records.csv_error(e))?;
    if !plain_first_record {
        // A blank or quoted first line: the CSV parser reads the whole file.
        let mut csv = NumberedCsv::new(delimiter, std::io::Cursor::new(first_line).chain(reader), 0);
        let Some(line) = csv.next(&mut record).map_err(|e| records.csv_error(e))? else {
            return Err(DataError::Empty { path: path.into() });
        };
        let (layout, mut acc) = start_layout(path, delimiter, &record, opts)?;
        opts.progress.start(&path.display().to_string(), total);
        records.first(&layout, &mut acc, &record, line);
        records.with_csv_parser(&layout, &mut acc, &mut csv)?;
        return records.finish(acc, format);
    }
    let (layout, mut acc) = start_layout(path, delimiter, &record, opts)?;
    // Columns sized once from the file's size (gzip'd CSV is typically 3-5× smaller than its
    // text) instead of grown by doubling, which copies them with allocators that cannot remap.
    let text_bytes = if gzip { total.saturating_mul(4) } else { total };
    acc.expect_rows((text_bytes / first_line.len().max(16) as u64).min(1 << 26) as usize);
    opts.progress.start(&path.display().to_string(), total);
    records.first(&layout, &mut acc, &record, 1);
    match whole {
        Some(text) => records.plain_text(&layout, &mut acc, &text[first_line.len()..])?,
        None => records.plain_lines(&layout, &mut acc, reader)?,
    }
    records.finish(acc, format)
}

fn csv_reader<R: Read>(delimiter: u8, reader: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .buffer_capacity(1 << 16)
        .from_reader(reader)
}

/// The CSV parser with records numbered by physical line. The parser's own count goes wrong after
/// `\r\n` (a record's position then points at the `\n` of the line before, so it reports that
/// line) and after blank lines; instead, the bytes `\r` and `\n` are noted as they pass through,
/// and a record's line is 1 + the `\n`s before its first byte.
pub(crate) struct NumberedCsv<R: Read> {
    csv: csv::Reader<LineBreaks<R>>,
    breaks: Rc<RefCell<VecDeque<(u64, u8)>>>,
    /// `\n`s before the next record not yet resolved, plus the lines before the parser's input.
    lines: u64,
}

impl<R: Read> NumberedCsv<R> {
    pub(crate) fn new(delimiter: u8, source: R, lines_before: u64) -> Self {
        let breaks = Rc::new(RefCell::new(VecDeque::new()));
        let source = LineBreaks { inner: source, offset: 0, breaks: breaks.clone() };
        NumberedCsv { csv: csv_reader(delimiter, source), breaks, lines: lines_before }
    }

    /// The next record into `record` and its physical line, or None at the end.
    pub(crate) fn next(&mut self, record: &mut csv::ByteRecord) -> std::result::Result<Option<u64>, csv::Error> {
        if !self.csv.read_byte_record(record)? {
            return Ok(None);
        }
        let mut start = record.position().map_or(0, |p| p.byte());
        let mut breaks = self.breaks.borrow_mut();
        // Breaks before the record are counted; breaks at its start (the `\n` of a `\r\n`, blank
        // lines) are skipped over, and counted.
        while let Some(&(at, byte)) = breaks.front() {
            if at > start {
                break;
            }
            if at == start {
                start += 1;
            }
            self.lines += u64::from(byte == b'\n');
            breaks.pop_front();
        }
        Ok(Some(self.lines + 1))
    }
}

/// A reader noting the offsets of the `\r` and `\n` bytes it passes on.
struct LineBreaks<R> {
    inner: R,
    offset: u64,
    breaks: Rc<RefCell<VecDeque<(u64, u8)>>>,
}

impl<R: Read> Read for LineBreaks<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut breaks = self.breaks.borrow_mut();
        breaks.extend(memchr::memchr2_iter(b'\r', b'\n', &buf[..n]).map(|k| (self.offset + k as u64, buf[k])));
        self.offset += n as u64;
        Ok(n)
    }
}

/// A line without its terminator (`\n` or `\r\n`).
fn line_content(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A line the plain splitter reads exactly as the CSV parser would: no quotes, no stray `\r`.
fn is_plain_line(content: &[u8]) -> bool {
    memchr::memchr2(b'"', b'\r', content).is_none()
}

fn start_layout(
    path: &Path,
    delimiter: u8,
    record: &csv::ByteRecord,
    opts: &ReadOptions,
) -> Result<(Layout, Accumulator)> {
    let first: Vec<String> = record.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect();
    let header_text = first.join(&(delimiter as char).to_string());
    let layout = detect(&first, &opts.columns).map_err(|message| DataError::Layout {
        path: path.into(),
        message,
        header: header_text.clone(),
    })?;
    let fixed_symbol = resolve_symbol(path, &layout, opts)?;
    let acc = Accumulator::new(&layout, fixed_symbol, opts.symbol.is_some());
    Ok((layout, acc))
}

/// The records of a CSV file after its first line, counted as they go into the accumulator.
struct Records<'a> {
    path: &'a Path,
    gzip: bool,
    delimiter: u8,
    opts: &'a ReadOptions<'a>,
    count: &'a AtomicU64,
    /// Records read so far (blank lines not counted).
    rows: u64,
}

impl Records<'_> {
    fn csv_error(&self, e: csv::Error) -> DataError {
        match e.into_kind() {
            csv::ErrorKind::Io(io) => text_read_error(self.path, self.gzip, self.rows, io),
            other => {
                DataError::Malformed { path: self.path.into(), line: self.rows + 1, message: format!("{other:?}") }
            }
        }
    }

    /// The first record is data when the layout found no header.
    fn first(&mut self, layout: &Layout, acc: &mut Accumulator, record: &csv::ByteRecord, line: u64) {
        if !layout.has_header {
            self.rows += 1;
            acc.push(line, |i| record.get(i));
        }
    }

    /// One record's fields (`field(i)` for i < `width`) into the accumulator, or the reason it was skipped.
    fn record<'f>(
        &mut self,
        layout: &Layout,
        acc: &mut Accumulator,
        line: u64,
        width: usize,
        field: impl Fn(usize) -> Option<&'f [u8]> + Copy,
    ) {
        self.rows += 1;
        if width == 1 && field(0).is_some_and(|f| f.iter().all(u8::is_ascii_whitespace)) {
            self.rows -= 1; // a blank line
            return;
        }
        if width != layout.width {
            let hint =
                if width == 1 && self.delimiter == b',' { " (is the delimiter something other than ','?)" } else { "" };
            acc.file_problems.add(Example::at_line(line, format!("{width} fields, expected {}{hint}", layout.width)));
            return;
        }
        acc.push(line, field);
        if self.rows.is_multiple_of(131_072) {
            self.opts.progress.advance_to(self.count.load(Ordering::Relaxed));
        }
    }

    /// Reads the remaining records with the CSV parser.
    fn with_csv_parser<R: Read>(
        &mut self,
        layout: &Layout,
        acc: &mut Accumulator,
        csv: &mut NumberedCsv<R>,
    ) -> Result<()> {
        let mut record = csv::ByteRecord::new();
        loop {
            match csv.next(&mut record) {
                Ok(Some(line)) => self.record(layout, acc, line, record.len(), |i| record.get(i)),
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.opts.progress.finish();
                    return Err(self.csv_error(e));
                }
            }
        }
    }

    /// Reads the remaining lines by splitting at the delimiter — several times faster than the
    /// general CSV parser — for as long as lines hold no quote and no stray `\r`; from the first
    /// line that does, the CSV parser reads the rest, so every file is read as the parser reads it.
    fn plain_lines<R: Read>(&mut self, layout: &Layout, acc: &mut Accumulator, mut reader: BufReader<R>) -> Result<()> {
        const CHUNK: usize = 1 << 20;
        let mut buf: Vec<u8> = Vec::with_capacity(CHUNK * 2);
        let mut line = 1u64; // the first line was read before
        let mut at_end = false;
        loop {
            if !at_end {
                // Appends into the spare capacity without zeroing it first.
                let n = (&mut reader).take(CHUNK as u64).read_to_end(&mut buf).map_err(|e| {
                    self.opts.progress.finish();
                    text_read_error(self.path, self.gzip, self.rows, e)
                })?;
                at_end = n == 0;
            }
            // Complete lines only, unless the input has ended.
            let complete = if at_end { buf.len() } else { memchr::memrchr(b'\n', &buf).map_or(0, |k| k + 1) };
            if let Some(start) = self.plain_slice(layout, acc, &buf[..complete], &mut line) {
                let rest = std::io::Cursor::new(buf[start..].to_vec()).chain(reader);
                let mut csv = NumberedCsv::new(self.delimiter, rest, line);
                return self.with_csv_parser(layout, acc, &mut csv);
            }
            buf.drain(..complete);
            if at_end {
                return Ok(());
            }
        }
    }

    /// Reads the plain lines of `text` (whole lines, or the file's end) into `acc`, counting them in
    /// `line`; returns the offset of the first line that is not plain, with `line` then counting
    /// the lines before it.
    fn plain_slice(&mut self, layout: &Layout, acc: &mut Accumulator, text: &[u8], line: &mut u64) -> Option<usize> {
        crate::split::plain_lines(text, self.delimiter, |content, ends| {
            *line += 1;
            if content.is_empty() {
                return; // the CSV parser skips empty lines without a record
            }
            self.record(layout, acc, *line, ends.len(), |i| {
                let end = *ends.get(i)?;
                let begin = if i == 0 { 0 } else { ends[i - 1] + 1 };
                Some(&content[begin..end])
            });
        })
    }

    /// Reads `text`, which follows `line` lines, in order: split while lines are plain, then the
    /// CSV parser from the first that is not.
    fn in_order(&mut self, layout: &Layout, acc: &mut Accumulator, text: &[u8], mut line: u64) -> Result<()> {
        match self.plain_slice(layout, acc, text, &mut line) {
            None => Ok(()),
            Some(start) => {
                let mut csv = NumberedCsv::new(self.delimiter, std::io::Cursor::new(&text[start..]), line);
                self.with_csv_parser(layout, acc, &mut csv)
            }
        }
    }

    /// Reads the lines after the first of a text held in memory, on two threads: this one reads
    /// the first half into `acc`, a second one the other half into an accumulator of its own,
    /// appended after. That equals reading in order: the halves meet at a line end, the second
    /// starts from the state the first had (timestamp unit, time zone) and is read again, in
    /// order, if the first half changed that state; and from a first half's line that is not
    /// plain, everything after is read in order by the CSV parser, as `plain_lines` does.
    fn plain_text(&mut self, layout: &Layout, acc: &mut Accumulator, text: &[u8]) -> Result<()> {
        /// Lines read first, in order, so that the state the halves start from is settled.
        const SETTLE_BYTES: usize = 1 << 16;
        /// Below this much text a second thread costs more than it saves.
        const PARALLEL_BYTES: usize = 1 << 20;
        let mut line = 1u64; // the first line was read before
        let settled = line_end_at_or_after(text, SETTLE_BYTES);
        if let Some(start) = self.plain_slice(layout, acc, &text[..settled], &mut line) {
            return self.in_order(layout, acc, &text[start..], line);
        }
        let rest = &text[settled..];
        if rest.len() < PARALLEL_BYTES {
            return self.in_order(layout, acc, rest, line);
        }
        let (first, second) = rest.split_at(line_end_at_or_after(rest, rest.len() / 2));
        let state = acc.state();
        let bytes_per_line = (settled / (line as usize).max(1)).max(8);
        let mut second_acc = acc.fork(second.len() / bytes_per_line + 1);
        let (path, gzip, delimiter, opts, count) = (self.path, self.gzip, self.delimiter, self.opts, self.count);
        let lines_before_second = line + memchr::memchr_iter(b'\n', first).count() as u64;
        let (first_stop, second_read) = std::thread::scope(|scope| {
            let second_half = scope.spawn(move || {
                let mut records = Records { path, gzip, delimiter, opts, count, rows: 0 };
                let mut line = lines_before_second;
                let plain = records.plain_slice(layout, &mut second_acc, second, &mut line).is_none();
                plain.then_some((second_acc, records.rows))
            });
            let first_stop = self.plain_slice(layout, acc, first, &mut line);
            (first_stop, second_half.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
        });
        if let Some(start) = first_stop {
            return self.in_order(layout, acc, &rest[start..], line);
        }
        match second_read {
            Some((second_acc, rows)) if acc.state() == state => {
                acc.append(second_acc);
                self.rows += rows;
                Ok(())
            }
            _ => self.in_order(layout, acc, second, lines_before_second),
        }
    }

    fn finish(&self, acc: Accumulator, format: FileFormat) -> Result<ReadOutcome> {
        self.opts.progress.finish();
        if self.rows == 0 {
            return Err(DataError::HeaderOnly { path: self.path.into() });
        }
        acc.into_outcome(format, Some(self.delimiter as char), self.rows)
    }
}

fn read_jsonl<R: Read>(
    path: &Path,
    format: FileFormat,
    reader: BufReader<R>,
    opts: &ReadOptions,
    count: &AtomicU64,
    total: u64,
) -> Result<ReadOutcome> {
    let gzip = format == FileFormat::JsonlGzip;
    let mut lines = reader.lines();
    let mut line_no = 0u64;
    let mut next_object = |line_no: &mut u64| -> Result<Option<serde_json::Map<String, serde_json::Value>>> {
        for line in lines.by_ref() {
            *line_no += 1;
            let line = line.map_err(|e| text_read_error(path, gzip, *line_no - 1, e))?;
            if line.trim().is_empty() {
                continue;
            }
            return match serde_json::from_str::<serde_json::Value>(&line) {
                Ok(serde_json::Value::Object(map)) => Ok(Some(map)),
                Ok(_) => Err(DataError::Malformed {
                    path: path.into(),
                    line: *line_no,
                    message: "expected a JSON object per line".into(),
                }),
                Err(e) => {
                    Err(DataError::Malformed { path: path.into(), line: *line_no, message: format!("bad JSON: {e}") })
                }
            };
        }
        Ok(None)
    };
    let Some(first) = next_object(&mut line_no)? else {
        return Err(DataError::Empty { path: path.into() });
    };
    let keys: Vec<String> = first.keys().cloned().collect();
    let layout = detect(&keys, &opts.columns).map_err(|message| DataError::Layout {
        path: path.into(),
        message,
        header: keys.join(","),
    })?;
    let fixed_symbol = resolve_symbol(path, &layout, opts)?;
    let mut acc = Accumulator::new(&layout, fixed_symbol, opts.symbol.is_some());
    opts.progress.start(&path.display().to_string(), total);
    let to_fields = |map: &serde_json::Map<String, serde_json::Value>| -> Vec<String> {
        keys.iter()
            .map(|k| match map.get(k) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Null) | None => String::new(),
                Some(v) => v.to_string(),
            })
            .collect()
    };
    let mut rows = 0u64;
    let mut object = Some(first);
    while let Some(map) = object {
        rows += 1;
        if let Some(extra) = map.keys().find(|k| !keys.contains(k)) {
            acc.file_problems
                .add(Example::at_line(line_no, format!("unexpected field {extra:?} (not in the first line)")));
        } else {
            let fields = to_fields(&map);
            acc.push(line_no, |i| fields.get(i).map(|s| s.as_bytes()));
        }
        if rows.is_multiple_of(65_536) {
            opts.progress.advance_to(count.load(Ordering::Relaxed));
        }
        object = next_object(&mut line_no)?;
    }
    opts.progress.finish();
    acc.into_outcome(format, None, rows)
}

/// The symbol for rows of a file without a symbol column: `--symbol`, else a Binance-style file name
/// (`FILUSDT-1m-2023-02.csv`).
pub(crate) fn resolve_symbol(path: &Path, layout: &Layout, opts: &ReadOptions) -> Result<Option<Symbol>> {
    if let Some(s) = &opts.symbol {
        return Ok(Some(s.clone()));
    }
    if layout.symbol.is_some() {
        return Ok(None);
    }
    let stem = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let mut parts = stem.split('-');
    if let (Some(sym), Some(tf)) = (parts.next(), parts.next()) {
        if sym.len() >= 3
            && sym.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            && quantpipe_core::Timeframe::parse(tf).is_ok()
        {
            return Ok(Some(Symbol::new(sym)?));
        }
    }
    Err(DataError::Invalid(format!(
        "{}: the file has no symbol column; name the symbol with --symbol (e.g. --symbol FILUSDT)",
        path.display()
    )))
}

/// Builds per-symbol columns from rows given as byte fields.
pub(crate) struct Accumulator {
    layout: Layout,
    fixed_symbol: Option<Symbol>,
    filter_to_fixed: bool,
    epoch_unit: Option<EpochUnit>,
    zone: Option<Zone>,
    series: Vec<RawSeries>,
    index: HashMap<Vec<u8>, usize>,
    last_symbol: Option<(Vec<u8>, usize)>,
    file_problems: ProblemTally,
    rows_of_other_symbols: u64,
    extra_values: Vec<f64>,
}

/// Digits only (1 to 18 of them, so no overflow), as an integer.
fn plain_integer(raw: &[u8]) -> Option<i64> {
    if raw.is_empty() || raw.len() > 18 {
        return None;
    }
    raw.iter().try_fold(0i64, |v, &b| b.is_ascii_digit().then(|| v * 10 + i64::from(b - b'0')))
}

fn parse_number(field: Option<&[u8]>) -> std::result::Result<f64, String> {
    let raw = field.ok_or("missing")?;
    if let Some(v) = crate::decimal::parse_plain_decimal(raw) {
        return Ok(v);
    }
    let s = std::str::from_utf8(raw).map_err(|_| "not valid UTF-8 text".to_string())?;
    let t = match s.as_bytes() {
        [first, .., last] if !first.is_ascii_whitespace() && !last.is_ascii_whitespace() => s,
        _ => s.trim(),
    };
    if t.is_empty() {
        return Err("empty value".into());
    }
    t.parse::<f64>().map_err(|_| format!("{t:?} is not a number"))
}

impl Accumulator {
    pub(crate) fn new(layout: &Layout, fixed_symbol: Option<Symbol>, filter_to_fixed: bool) -> Self {
        let series = match (&fixed_symbol, layout.symbol) {
            (Some(sym), None) => vec![new_series(sym.clone(), layout)],
            _ => Vec::new(),
        };
        Accumulator {
            layout: layout.clone(),
            fixed_symbol,
            filter_to_fixed,
            epoch_unit: None,
            zone: None,
            series,
            index: HashMap::new(),
            last_symbol: None,
            file_problems: ProblemTally::default(),
            rows_of_other_symbols: 0,
            extra_values: Vec::with_capacity(layout.extras.len()),
        }
    }

    /// Sizes a single series' columns for about `rows` rows before any arrive.
    fn expect_rows(&mut self, rows: usize) {
        if let [series] = self.series.as_mut_slice() {
            if series.bars.is_empty() {
                series.bars = Bars::with_capacity(rows, &self.layout.extra_layout());
                series.lines = Vec::with_capacity(rows);
            }
        }
    }

    /// What decides how later rows are read: the epoch unit and time zone of the rows so far.
    fn state(&self) -> (Option<EpochUnit>, Option<Zone>) {
        (self.epoch_unit, self.zone)
    }

    /// An empty accumulator that reads rows as this one would from here on, sized for `rows`.
    fn fork(&self, rows: usize) -> Accumulator {
        let mut fork = Accumulator::new(&self.layout, self.fixed_symbol.clone(), self.filter_to_fixed);
        (fork.epoch_unit, fork.zone) = self.state();
        fork.expect_rows(rows);
        fork
    }

    /// Appends the rows of `later`, read from the lines after this one's.
    fn append(&mut self, later: Accumulator) {
        // Where each of `later`'s series went, by its index there.
        let mut remap = Vec::with_capacity(later.series.len());
        for series in later.series {
            let at = match self.series.iter().position(|s| s.symbol == series.symbol) {
                Some(i) => {
                    self.series[i].append(series);
                    i
                }
                None => {
                    self.series.push(series);
                    self.series.len() - 1
                }
            };
            remap.push(at);
        }
        for (raw, k) in later.index {
            self.index.entry(raw).or_insert(remap[k]);
        }
        self.last_symbol = None;
        self.file_problems.append(later.file_problems);
        self.rows_of_other_symbols += later.rows_of_other_symbols;
    }

    fn series_index(&mut self, raw: &[u8], line: u64) -> Option<usize> {
        if let Some((name, i)) = &self.last_symbol {
            if name.as_slice() == raw {
                return Some(*i);
            }
        }
        let i = match self.index.get(raw) {
            Some(&i) => i,
            None => {
                let text = String::from_utf8_lossy(raw);
                let symbol = match Symbol::new(text.trim()) {
                    Ok(s) => s,
                    Err(e) => {
                        self.file_problems.add(Example::at_line(line, e.to_string()));
                        return None;
                    }
                };
                let i = self.series.len();
                self.series.push(new_series(symbol, &self.layout));
                self.index.insert(raw.to_vec(), i);
                i
            }
        };
        self.last_symbol = Some((raw.to_vec(), i));
        Some(i)
    }

    fn parse_ts<'f>(&mut self, field: impl Fn(usize) -> Option<&'f [u8]>) -> std::result::Result<i64, String> {
        let text = |i: usize| -> std::result::Result<&'f str, String> {
            let raw = field(i).ok_or("missing timestamp")?;
            std::str::from_utf8(raw).map(str::trim).map_err(|_| "timestamp is not valid text".to_string())
        };
        // The common case first: an epoch integer in the unit of the rows before, no text checks.
        if let (TimestampColumns::Single(i), Some(unit), Some(Zone::Explicit)) =
            (&self.layout.ts, self.epoch_unit, self.zone)
        {
            if let Some(v) = field(*i).and_then(plain_integer) {
                if EpochUnit::from_magnitude(v as f64) == unit {
                    return Ok(unit.to_millis(v));
                }
            }
        }
        let (ms, zone) = match &self.layout.ts {
            TimestampColumns::Single(i) => {
                let s = text(*i)?;
                if s.is_empty() {
                    return Err("empty timestamp".into());
                }
                if looks_numeric(s) {
                    let unit = match self.epoch_unit {
                        Some(u) => u,
                        None => {
                            let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a timestamp"))?;
                            *self.epoch_unit.insert(EpochUnit::from_magnitude(v))
                        }
                    };
                    (parse_epoch(s, unit)?, Zone::Explicit)
                } else {
                    parse_datetime(s)?
                }
            }
            TimestampColumns::DateAndTime { date, time } => {
                let (day, zone) = parse_datetime(text(*date)?)?;
                (day + parse_time_of_day(text(*time)?)?, zone)
            }
        };
        match self.zone {
            None => self.zone = Some(zone),
            Some(z) if z != zone => {
                return Err(
                    "mixed time zones: this timestamp is naive but earlier ones carry a zone, or the reverse".into()
                )
            }
            _ => {}
        }
        Ok(ms)
    }

    pub(crate) fn push<'f>(&mut self, line: u64, field: impl Fn(usize) -> Option<&'f [u8]> + Copy) {
        let si = match (self.layout.symbol, &self.fixed_symbol) {
            (Some(col), fixed) => {
                let raw = field(col).unwrap_or(b"");
                if self.filter_to_fixed {
                    let fixed = fixed.as_ref().map(|s| s.as_str().as_bytes()).unwrap_or(b"");
                    if raw.trim_ascii() != fixed {
                        self.rows_of_other_symbols += 1;
                        return;
                    }
                }
                match self.series_index(raw.trim_ascii(), line) {
                    Some(i) => i,
                    None => return,
                }
            }
            (None, _) => 0,
        };
        let ts = match self.parse_ts(field) {
            Ok(ts) => ts,
            Err(msg) => {
                let example = Example::at_line(line, format!("{}: {msg}", self.ts_column_name()));
                self.series[si].unparseable.add(example);
                return;
            }
        };
        let l = &self.layout;
        let mut values = [0f64; 5];
        for (k, col) in [l.open, l.high, l.low, l.close, l.volume].into_iter().enumerate() {
            match parse_number(field(col)) {
                Ok(v) => values[k] = v,
                Err(msg) => {
                    let example = Example::at_line(line, format!("column {}: {msg}", l.header[col])).with_ts(ts);
                    self.series[si].unparseable.add(example);
                    return;
                }
            }
        }
        if let Some(k) = values.iter().position(|v| !v.is_finite()) {
            let col = [l.open, l.high, l.low, l.close, l.volume][k];
            let example =
                Example::at_line(line, format!("column {}: {} is not finite", l.header[col], values[k])).with_ts(ts);
            self.series[si].non_finite.add(example);
            return;
        }
        self.extra_values.clear();
        for (col, _, _) in &l.extras {
            self.extra_values.push(parse_number(field(*col)).unwrap_or(f64::NAN));
        }
        let s = &mut self.series[si];
        s.bars.ts.push(ts);
        s.bars.open.push(values[0]);
        s.bars.high.push(values[1]);
        s.bars.low.push(values[2]);
        s.bars.close.push(values[3]);
        s.bars.volume.push(values[4]);
        for (c, v) in s.bars.extras.iter_mut().zip(&self.extra_values) {
            c.values.push(*v);
        }
        s.lines.push(line);
    }

    fn ts_column_name(&self) -> String {
        match &self.layout.ts {
            TimestampColumns::Single(i) => format!("column {}", self.layout.header[*i]),
            TimestampColumns::DateAndTime { date, time } => {
                format!("columns {} + {}", self.layout.header[*date], self.layout.header[*time])
            }
        }
    }

    pub(crate) fn into_outcome(self, format: FileFormat, delimiter: Option<char>, rows: u64) -> Result<ReadOutcome> {
        Ok(ReadOutcome {
            format,
            layout: self.layout,
            delimiter,
            rows,
            series: self.series,
            unparseable_rows: self.file_problems,
            rows_of_other_symbols: self.rows_of_other_symbols,
        })
    }
}

impl RawSeries {
    /// Appends the rows of `later`, the same symbol's rows from later lines.
    fn append(&mut self, mut later: RawSeries) {
        let (bars, more) = (&mut self.bars, &mut later.bars);
        bars.ts.append(&mut more.ts);
        for (column, more) in [
            (&mut bars.open, &mut more.open),
            (&mut bars.high, &mut more.high),
            (&mut bars.low, &mut more.low),
            (&mut bars.close, &mut more.close),
            (&mut bars.volume, &mut more.volume),
        ] {
            column.append(more);
        }
        for (column, more) in bars.extras.iter_mut().zip(&mut more.extras) {
            column.values.append(&mut more.values);
        }
        self.lines.append(&mut later.lines);
        self.unparseable.append(later.unparseable);
        self.non_finite.append(later.non_finite);
    }
}

/// The offset just after the first `\n` at or after `at`, or the text's length.
fn line_end_at_or_after(text: &[u8], at: usize) -> usize {
    let at = at.min(text.len());
    memchr::memchr(b'\n', &text[at..]).map_or(text.len(), |k| at + k + 1)
}

fn new_series(symbol: Symbol, layout: &Layout) -> RawSeries {
    RawSeries {
        symbol,
        bars: Bars::with_capacity(1024, &layout.extra_layout()),
        lines: Vec::with_capacity(1024),
        unparseable: ProblemTally::default(),
        non_finite: ProblemTally::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The outcome of reading `text` as a plain CSV file streamed, and held whole (two threads).
    fn streamed_and_whole(text: &[u8]) -> (String, String) {
        let opts = ReadOptions::default();
        let count = AtomicU64::new(0);
        let path = Path::new("in-memory.csv");
        let total = text.len() as u64;
        let read = |whole| {
            let outcome = read_csv(path, FileFormat::Csv, b',', BufReader::new(text), whole, &opts, &count, total);
            format!("{outcome:#?}")
        };
        (read(None), read(Some(text)))
    }

    /// A multi-symbol file of `rows` rows after its header, with a problem of each kind that the
    /// reader tallies (wrong field count, bad symbol, unparseable and NaN values, blank lines) spread
    /// over it, a symbol first seen near the end, and `line(i)` able to replace any row.
    fn multi_symbol_text(rows: usize, line: impl Fn(usize) -> Option<String>) -> Vec<u8> {
        let mut text = String::from("ts,symbol,open,high,low,close,volume\n");
        for i in 0..rows {
            if let Some(l) = line(i) {
                text.push_str(&l);
                continue;
            }
            let symbol = if i > rows * 9 / 10 && i % 3 == 0 { "LATE" } else { ["AAA", "BBB"][i % 2] };
            let ts = 1_600_000_000_000u64 + (i as u64 / 2) * 60_000;
            let p = 100.0 + (i % 97) as f64 * 0.25;
            match i % 50_021 {
                7 => text.push_str(&format!("{ts},{symbol},{p}\n")),
                11 => text.push_str(&format!("{ts},bad symbol!,{p},{p},{p},{p},1\n")),
                13 => text.push_str(&format!("{ts},{symbol},{p},x{p},{p},{p},1\n")),
                17 => text.push_str(&format!("{ts},{symbol},{p},NaN,{p},{p},1\n")),
                19 => text.push('\n'),
                _ => text.push_str(&format!("{ts},{symbol},{p},{},{},{p},{}.5\n", p + 0.5, p - 0.5, i % 13)),
            }
        }
        text.into_bytes()
    }

    #[test]
    fn a_whole_text_read_on_two_threads_equals_the_streamed_read() {
        let text = multi_symbol_text(120_000, |_| None);
        assert!(text.len() > 4 << 20, "large enough for two threads");
        let (streamed, whole) = streamed_and_whole(&text);
        assert!(streamed.contains("LATE") && streamed.contains("unparseable") && streamed.contains("NaN"));
        assert_eq!(streamed, whole);
    }

    #[test]
    fn a_quoted_line_in_either_half_sends_the_rest_to_the_csv_parser_as_when_streamed() {
        for at in [30_000, 100_000] {
            let text = multi_symbol_text(120_000, |i| {
                (i == at).then(|| "1600000000000,\"AAA\",1,\"2\",0.5,1,\"1,5\"\n".to_string())
            });
            let (streamed, whole) = streamed_and_whole(&text);
            assert_eq!(streamed, whole, "quoted line at row {at}");
        }
    }

    #[test]
    fn a_first_half_that_settles_the_epoch_unit_late_makes_the_second_half_read_again() {
        // ISO timestamps, then from row 40,000 (past the lines read to settle the state, in the
        // first half) a few epoch integers in milliseconds, then in seconds: the first integer sets
        // the unit for all that follow. The second half alone would take its own first integer
        // for seconds; read in order, it is taken in milliseconds.
        let text = multi_symbol_text(120_000, |i| {
            let minute = i / 2;
            match i {
                _ if i < 40_000 => Some(format!(
                    "2020-01-{:02}T{:02}:{:02}:00Z,{},1,2,0.5,1,1\n",
                    1 + minute / 1440,
                    minute / 60 % 24,
                    minute % 60,
                    ["AAA", "BBB"][i % 2]
                )),
                _ if i < 40_010 => {
                    Some(format!("{},{},1,2,0.5,1,1\n", 1_600_000_000_000u64 + minute as u64, ["AAA", "BBB"][i % 2]))
                }
                _ => Some(format!("{},{},1,2,0.5,1,1\n", 1_600_000_000u64 + minute as u64, ["AAA", "BBB"][i % 2])),
            }
        });
        let (streamed, whole) = streamed_and_whole(&text);
        assert_eq!(streamed, whole);
    }
}
