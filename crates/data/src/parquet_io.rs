//! Parquet: the bar store's file format, and bar files given as input.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Float32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, Float64Array, TimestampMillisecondArray};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnChunk, ArrowColumnWriter};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use quantpipe_core::parallel::{map_balanced, workers_for};
use quantpipe_core::time::{format_date, format_iso, MS_PER_DAY};
use quantpipe_core::{Aggregation, Bars, ExtraColumn};

use crate::error::{DataError, Result};
use crate::layout::detect;
use crate::read::{resolve_symbol, Accumulator, FileFormat, ReadOptions, ReadOutcome};

const AGGREGATION_KEY: &str = "quantpipe.aggregation";

fn parquet_err(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::Parquet { path: path.into(), message: e.to_string() }
}

fn bars_schema(bars: &Bars) -> Schema {
    let mut fields = vec![
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        Field::new("open", DataType::Float64, false),
        Field::new("high", DataType::Float64, false),
        Field::new("low", DataType::Float64, false),
        Field::new("close", DataType::Float64, false),
        Field::new("volume", DataType::Float64, false),
    ];
    for c in &bars.extras {
        let agg =
            serde_json::to_value(c.aggregation).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        fields.push(
            Field::new(&c.name, DataType::Float64, true)
                .with_metadata(HashMap::from([(AGGREGATION_KEY.to_string(), agg)])),
        );
    }
    Schema::new(fields)
}

/// Writes bars to a Parquet file (zstd, one row group per million rows). Takes the bars by value so
/// their columns become Arrow buffers without a copy.
pub fn write_bars(path: &Path, bars: Bars) -> Result<()> {
    let schema = Arc::new(bars_schema(&bars));
    let f = |v: Vec<f64>| Arc::new(Float64Array::new(ScalarBuffer::from(v), None)) as ArrayRef;
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::new(ScalarBuffer::from(bars.ts), None).with_timezone("UTC")),
        f(bars.open),
        f(bars.high),
        f(bars.low),
        f(bars.close),
        f(bars.volume),
    ];
    columns.extend(bars.extras.into_iter().map(|c| f(c.values)));
    write_row_groups(path, schema, &columns, 1 << 20)
}

/// Writes `columns` (one per field of `schema`) to a new file at `path` as zstd Parquet in row
/// groups of `group_rows`, then syncs it. The columns of a row group are encoded on all cores at
/// once: compression is most of the cost of writing, and columns compress independently.
fn write_row_groups(path: &Path, schema: Arc<Schema>, columns: &[ArrayRef], group_rows: usize) -> Result<()> {
    /// Below this many rows a second thread costs more than it saves.
    const PARALLEL_ROWS: usize = 16_384;
    let err = |e: parquet::errors::ParquetError| parquet_err(path, e);
    let file = File::create(path).map_err(|e| DataError::io(path, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).map_err(err)?))
        .set_max_row_group_row_count(Some(group_rows))
        // Prices and volumes rarely repeat enough for dictionaries to pay; zstd does the work.
        .set_dictionary_enabled(false)
        .set_column_encoding(ColumnPath::from("ts"), Encoding::DELTA_BINARY_PACKED)
        .build();
    // The high-level writer sets up the file (Arrow schema in the footer); its parts then let the
    // columns of each row group be encoded separately.
    let (mut file_writer, row_groups) = ArrowWriter::try_new(file, schema.clone(), Some(props))
        .and_then(ArrowWriter::into_serialized_writer)
        .map_err(err)?;
    let rows = columns.first().map_or(0, |c| c.len());
    let mut start = 0;
    let mut group = 0;
    while start < rows {
        let len = group_rows.min(rows - start);
        let jobs: Vec<Mutex<Option<(ArrowColumnWriter, ArrayRef)>>> = row_groups
            .create_column_writers(group)
            .map_err(err)?
            .into_iter()
            .zip(columns)
            .map(|(writer, column)| Mutex::new(Some((writer, column.slice(start, len)))))
            .collect();
        let workers = if len < PARALLEL_ROWS { 1 } else { workers_for(jobs.len()) };
        let chunks = map_balanced(
            &jobs,
            workers,
            |_| 1,
            |k, job| -> parquet::errors::Result<ArrowColumnChunk> {
                let (mut writer, column) =
                    job.lock().unwrap_or_else(|e| e.into_inner()).take().expect("each column is encoded once");
                for leaf in compute_leaves(schema.field(k), &column)? {
                    writer.write(&leaf)?;
                }
                writer.close()
            },
        );
        let mut row_group = file_writer.next_row_group().map_err(err)?;
        for chunk in chunks {
            chunk.and_then(|c| c.append_to_row_group(&mut row_group)).map_err(err)?;
        }
        row_group.close().map_err(err)?;
        start += len;
        group += 1;
    }
    let file = file_writer.into_inner().map_err(err)?;
    file.sync_all().map_err(|e| DataError::io(path, e))
}

/// Reads bars written by [`write_bars`].
pub fn read_bars_file(path: &Path) -> Result<Bars> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_err(path, e))?;
    let schema = builder.schema().clone();
    let reader = builder.with_batch_size(1 << 16).build().map_err(|e| parquet_err(path, e))?;
    let extras_layout: Vec<(String, Aggregation)> = schema.fields()[6..]
        .iter()
        .map(|f| {
            let agg = f
                .metadata()
                .get(AGGREGATION_KEY)
                .and_then(|a| serde_json::from_value(serde_json::Value::String(a.clone())).ok())
                .unwrap_or(Aggregation::Last);
            (f.name().clone(), agg)
        })
        .collect();
    let mut bars = Bars::with_capacity(0, &extras_layout);
    for batch in reader {
        let batch = batch.map_err(|e| parquet_err(path, e))?;
        let ts = batch
            .column(0)
            .as_primitive_opt::<TimestampMillisecondType>()
            .ok_or_else(|| parquet_err(path, "column ts is not a millisecond timestamp"))?;
        bars.ts.extend_from_slice(ts.values());
        let f64col = |i: usize| -> Result<&[f64]> {
            Ok(batch
                .column(i)
                .as_primitive_opt::<Float64Type>()
                .ok_or_else(|| parquet_err(path, format!("column {} is not float64", schema.field(i).name())))?
                .values())
        };
        bars.open.extend_from_slice(f64col(1)?);
        bars.high.extend_from_slice(f64col(2)?);
        bars.low.extend_from_slice(f64col(3)?);
        bars.close.extend_from_slice(f64col(4)?);
        bars.volume.extend_from_slice(f64col(5)?);
        for (k, c) in bars.extras.iter_mut().enumerate() {
            let col = batch.column(6 + k).as_primitive_opt::<Float64Type>();
            let col = col.ok_or_else(|| parquet_err(path, format!("column {} is not float64", c.name)))?;
            c.values.extend(col.iter().map(|v| v.unwrap_or(f64::NAN)));
        }
    }
    Ok(bars)
}

/// Writes bars as CSV with an ISO timestamp column (for `--output x.csv`).
pub fn write_bars_csv(path: &Path, bars: &Bars) -> Result<()> {
    let file = File::create(path).map_err(|e| DataError::io(path, e))?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::new(file));
    let io = |e: csv::Error| DataError::Invalid(format!("{}: {e}", path.display()));
    let mut header =
        vec!["ts".to_string(), "open".into(), "high".into(), "low".into(), "close".into(), "volume".into()];
    header.extend(bars.extras.iter().map(|c| c.name.clone()));
    w.write_record(&header).map_err(io)?;
    let mut row: Vec<String> = Vec::with_capacity(header.len());
    for i in 0..bars.len() {
        row.clear();
        row.push(format_iso(bars.ts[i]));
        for col in [&bars.open, &bars.high, &bars.low, &bars.close, &bars.volume] {
            row.push(col[i].to_string());
        }
        row.extend(bars.extras.iter().map(|c: &ExtraColumn| c.values[i].to_string()));
        w.write_record(&row).map_err(io)?;
    }
    w.flush().map_err(|e| DataError::io(path, e))?;
    Ok(())
}

/// Reads a Parquet file of bars in any column layout (names detected like a CSV header). Values go
/// through the same row checks as text files; row numbers stand in for line numbers.
pub fn read_parquet_bars(path: &Path, opts: &ReadOptions) -> Result<ReadOutcome> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_err(path, e))?;
    let names: Vec<String> = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
    let total_rows = builder.metadata().file_metadata().num_rows();
    let layout = detect(&names, &opts.columns).map_err(|message| DataError::Layout {
        path: path.into(),
        message,
        header: names.join(","),
    })?;
    let fixed_symbol = resolve_symbol(path, &layout, opts)?;
    let mut acc = Accumulator::new(&layout, fixed_symbol, opts.symbol.is_some());
    let reader = builder.with_batch_size(1 << 16).build().map_err(|e| parquet_err(path, e))?;
    opts.progress.start(&path.display().to_string(), total_rows.max(0) as u64);
    let mut row = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| parquet_err(path, e))?;
        let columns: Vec<Vec<Option<String>>> = batch
            .columns()
            .iter()
            .enumerate()
            .map(|(i, c)| {
                column_as_text(c.as_ref()).map_err(|m| parquet_err(path, format!("column {}: {m}", names[i])))
            })
            .collect::<Result<_>>()?;
        for r in 0..batch.num_rows() {
            row += 1;
            acc.push(row, |i| columns.get(i).and_then(|c| c[r].as_deref()).map(str::as_bytes));
        }
        opts.progress.advance_to(row);
    }
    opts.progress.finish();
    if row == 0 {
        return Err(DataError::HeaderOnly { path: path.into() });
    }
    acc.into_outcome(FileFormat::Parquet, None, row)
}

/// A column as text the row parser understands: numbers in shortest round-trip form, timestamps
/// and dates as ISO-8601 with an explicit UTC zone.
fn column_as_text(array: &dyn Array) -> std::result::Result<Vec<Option<String>>, String> {
    fn collect<T: ToString>(it: impl Iterator<Item = Option<T>>) -> Vec<Option<String>> {
        it.map(|v| v.map(|x| x.to_string())).collect()
    }
    let ts = |it: &mut dyn Iterator<Item = Option<i64>>| -> Vec<Option<String>> {
        it.map(|v| v.map(|ms| format_iso(ms).replace('Z', "+00:00"))).collect()
    };
    Ok(match array.data_type() {
        DataType::Float64 => collect(array.as_primitive::<Float64Type>().iter()),
        DataType::Float32 => collect(array.as_primitive::<Float32Type>().iter()),
        DataType::Int64 => collect(array.as_primitive::<Int64Type>().iter()),
        DataType::Int32 => collect(array.as_primitive::<Int32Type>().iter()),
        DataType::UInt64 => collect(array.as_primitive::<UInt64Type>().iter()),
        DataType::UInt32 => collect(array.as_primitive::<UInt32Type>().iter()),
        DataType::Boolean => collect(array.as_boolean().iter().map(|b| b.map(u8::from))),
        DataType::Utf8 => collect(array.as_string::<i32>().iter()),
        DataType::LargeUtf8 => collect(array.as_string::<i64>().iter()),
        DataType::Utf8View => collect(array.as_string_view().iter()),
        DataType::Date32 => {
            array.as_primitive::<Date32Type>().iter().map(|d| d.map(|d| format_date(d as i64))).collect()
        }
        DataType::Date64 => {
            ts(&mut array.as_primitive::<Date64Type>().iter().map(|d| d.map(|ms| ms - ms % MS_PER_DAY)))
        }
        DataType::Timestamp(TimeUnit::Second, _) => {
            ts(&mut array.as_primitive::<TimestampSecondType>().iter().map(|v| v.map(|s| s * 1000)))
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            ts(&mut array.as_primitive::<TimestampMillisecondType>().iter())
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            ts(&mut array.as_primitive::<TimestampMicrosecondType>().iter().map(|v| v.map(|u| u.div_euclid(1000))))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            ts(&mut array.as_primitive::<TimestampNanosecondType>().iter().map(|v| v.map(|n| n.div_euclid(1_000_000))))
        }
        other => return Err(format!("unsupported type {other}")),
    })
}

/// Column names of a Parquet file.
pub fn parquet_column_names(path: &Path) -> Result<Vec<String>> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_err(path, e))?;
    Ok(builder.schema().fields().iter().map(|f| f.name().clone()).collect())
}

/// A whole Parquet file as text columns (for the small tick tables).
/// Column names and, per column, each row's value as text (`None` for null).
pub type TextColumns = (Vec<String>, Vec<Vec<Option<String>>>);
/// A millisecond time column and named float columns.
pub type TimedColumns = (Vec<i64>, Vec<(String, Vec<f64>)>);

pub fn read_parquet_text(path: &Path) -> Result<TextColumns> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_err(path, e))?;
    let names: Vec<String> = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
    let mut columns: Vec<Vec<Option<String>>> = vec![Vec::new(); names.len()];
    for batch in builder.build().map_err(|e| parquet_err(path, e))? {
        let batch = batch.map_err(|e| parquet_err(path, e))?;
        for (i, c) in batch.columns().iter().enumerate() {
            let text =
                column_as_text(c.as_ref()).map_err(|m| parquet_err(path, format!("column {}: {m}", names[i])))?;
            columns[i].extend(text);
        }
    }
    Ok((names, columns))
}

/// Writes a millisecond time column and named float columns (tick series, feature frames), in
/// row groups of 128k rows so the encoder's buffers stay small for wide frames.
pub fn write_columns(path: &Path, ts: Vec<i64>, columns: Vec<(String, Vec<f64>)>) -> Result<()> {
    const GROUP: usize = 1 << 17;
    let mut fields = vec![Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false)];
    fields.extend(columns.iter().map(|(n, _)| Field::new(n, DataType::Float64, true)));
    let schema = Arc::new(Schema::new(fields));
    let mut arrays: Vec<ArrayRef> =
        vec![Arc::new(TimestampMillisecondArray::new(ScalarBuffer::from(ts), None).with_timezone("UTC"))];
    arrays
        .extend(columns.into_iter().map(|(_, v)| Arc::new(Float64Array::new(ScalarBuffer::from(v), None)) as ArrayRef));
    write_row_groups(path, schema, &arrays, GROUP)
}

/// Reads what [`write_columns`] wrote.
pub fn read_columns(path: &Path) -> Result<TimedColumns> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_err(path, e))?;
    let names: Vec<String> = builder.schema().fields().iter().skip(1).map(|f| f.name().clone()).collect();
    let mut ts = Vec::new();
    let mut cols: Vec<(String, Vec<f64>)> = names.into_iter().map(|n| (n, Vec::new())).collect();
    for batch in builder.build().map_err(|e| parquet_err(path, e))? {
        let batch = batch.map_err(|e| parquet_err(path, e))?;
        let t = batch
            .column(0)
            .as_primitive_opt::<TimestampMillisecondType>()
            .ok_or_else(|| parquet_err(path, "column ts is not a millisecond timestamp"))?;
        ts.extend_from_slice(t.values());
        for (k, (name, values)) in cols.iter_mut().enumerate() {
            let c = batch.column(k + 1).as_primitive_opt::<Float64Type>();
            let c = c.ok_or_else(|| parquet_err(path, format!("column {name} is not float64")))?;
            values.extend(c.iter().map(|v| v.unwrap_or(f64::NAN)));
        }
    }
    Ok((ts, cols))
}
