//! The bar store: one Parquet file per symbol and timeframe under `$QUANTPIPE_HOME/bars/`, with a
//! `meta.json` that is the commit point.
//!
//! Layout of a series directory `bars/<symbol>/<timeframe>/`:
//! - `bars-<hash>.parquet`: the bars, named by the content hash of what they hold;
//! - `quality-<hash>.json`: the quality report of the stored series and of each ingest into it;
//! - `meta.json`: names the two files above, the hash, row count, range and lineage.
//!
//! A write puts the new Parquet and report files next to the old ones (temporary name, fsync,
//! rename), then renames a new `meta.json` over the old one. Until that rename readers see the old
//! state; after it, the new. A killed process leaves at most unreferenced files, removed by the
//! next write. Writers of one series are serialised by a lock file.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use quantpipe_core::time::format_iso;
use quantpipe_core::{Bars, MarketCalendar, Symbol, Timeframe};
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::parquet_io::{read_bars_file, write_bars};
use crate::quality::QualityReport;

pub const META_VERSION: u32 = 1;

/// Where a series came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRecord {
    pub file: String,
    pub ingested_at: String,
    pub rows_added: u64,
}

/// For series computed from another (resampling): the source and its hash at the time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Derivation {
    pub from_timeframe: String,
    pub from_content_hash: String,
    pub method: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesMeta {
    pub format_version: u32,
    pub symbol: Symbol,
    pub timeframe: String,
    pub calendar: MarketCalendar,
    pub rows: u64,
    pub first: Option<String>,
    pub last: Option<String>,
    /// blake3 of the column names and values: equal data, equal hash, whatever file it came from.
    pub content_hash: String,
    pub bars_file: String,
    pub quality_file: String,
    pub quality_score: f64,
    pub columns: Vec<String>,
    pub sources: Vec<SourceRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derived_from: Option<Derivation>,
    /// The last bar covers a period that had not ended in the source (resampled series).
    #[serde(default)]
    pub last_bar_incomplete: bool,
    pub updated_at: String,
}

/// The stored quality information of a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredQuality {
    /// The report of the data as stored now.
    pub series: QualityReport,
    /// The report of each ingest into the series, oldest first, with its source line numbers.
    pub ingests: Vec<IngestRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestRecord {
    pub file: String,
    pub ingested_at: String,
    pub report: QualityReport,
}

/// Where a commit's data came from: an ingest of a file, or a derivation of another series.
#[derive(Debug, Clone, Default)]
pub struct Lineage {
    pub ingest: Option<IngestRecord>,
    pub derived_from: Option<Derivation>,
    /// The last bar covers a period that had not ended in the source (resampled series).
    pub last_bar_incomplete: bool,
}

/// How new bars relate to what is stored.
#[derive(Debug, Clone)]
pub struct MergePlan {
    pub merged: Bars,
    pub rows_added: u64,
    pub existing: Option<SeriesMeta>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommitOutcome {
    pub rows_added: u64,
    pub rows_total: u64,
    pub content_hash: String,
    pub unchanged: bool,
}

pub struct BarStore {
    root: PathBuf,
}

/// `QUANTPIPE_HOME`, or `./.quantpipe`.
pub fn default_home() -> PathBuf {
    std::env::var_os("QUANTPIPE_HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".quantpipe"))
}

pub fn now_iso() -> String {
    let ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    format_iso(ms)
}

impl BarStore {
    pub fn open(home: &Path) -> Result<BarStore> {
        let root = home.join("bars");
        fs::create_dir_all(&root).map_err(|e| DataError::io(&root, e))?;
        Ok(BarStore { root })
    }

    fn series_dir(&self, symbol: &Symbol, tf: Timeframe) -> PathBuf {
        self.root.join(symbol.path_component()).join(tf.to_string())
    }

    pub fn meta(&self, symbol: &Symbol, tf: Timeframe) -> Result<Option<SeriesMeta>> {
        let path = self.series_dir(symbol, tf).join("meta.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| DataError::Store(format!("{}: unreadable metadata: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(DataError::io(path, e)),
        }
    }

    fn require_meta(&self, symbol: &Symbol, tf: Timeframe) -> Result<SeriesMeta> {
        self.meta(symbol, tf)?
            .ok_or_else(|| DataError::NotFound { symbol: symbol.to_string(), timeframe: tf.to_string() })
    }

    /// Every stored series, sorted by symbol and timeframe length.
    pub fn list(&self) -> Result<Vec<SeriesMeta>> {
        let mut out = Vec::new();
        let symbols = fs::read_dir(&self.root).map_err(|e| DataError::io(&self.root, e))?;
        for sym_dir in symbols.flatten() {
            let Ok(tfs) = fs::read_dir(sym_dir.path()) else { continue };
            for tf_dir in tfs.flatten() {
                let meta_path = tf_dir.path().join("meta.json");
                if let Ok(bytes) = fs::read(&meta_path) {
                    let meta: SeriesMeta = serde_json::from_slice(&bytes)
                        .map_err(|e| DataError::Store(format!("{}: unreadable metadata: {e}", meta_path.display())))?;
                    out.push(meta);
                }
            }
        }
        out.sort_by_key(|m| (m.symbol.clone(), Timeframe::parse(&m.timeframe).map(|t| t.millis()).unwrap_or(0)));
        Ok(out)
    }

    pub fn load(&self, symbol: &Symbol, tf: Timeframe) -> Result<(SeriesMeta, Bars)> {
        let meta = self.require_meta(symbol, tf)?;
        let bars = read_bars_file(&self.series_dir(symbol, tf).join(&meta.bars_file))?;
        Ok((meta, bars))
    }

    pub fn quality(&self, symbol: &Symbol, tf: Timeframe) -> Result<StoredQuality> {
        let meta = self.require_meta(symbol, tf)?;
        let path = self.series_dir(symbol, tf).join(&meta.quality_file);
        let bytes = fs::read(&path).map_err(|e| DataError::io(&path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| DataError::Store(format!("{}: {e}", path.display())))
    }

    /// Merges `new` (sorted, unique timestamps) into what is stored. Timestamps already stored must
    /// hold identical values, or the merge is refused: stored data is never overwritten.
    pub fn plan_merge(&self, symbol: &Symbol, tf: Timeframe, new: Bars) -> Result<MergePlan> {
        let Some(meta) = self.meta(symbol, tf)? else {
            let rows_added = new.len() as u64;
            return Ok(MergePlan { merged: new, rows_added, existing: None });
        };
        let new = &new;
        let old = read_bars_file(&self.series_dir(symbol, tf).join(&meta.bars_file))?;
        if old.extra_layout() != new.extra_layout() {
            let names = |b: &Bars| b.extras.iter().map(|c| c.name.clone()).collect::<Vec<_>>().join(", ");
            return Err(DataError::Store(format!(
                "{symbol} {tf} is stored with extra columns [{}] but this file has [{}]; nothing was stored",
                names(&old),
                names(new)
            )));
        }
        let mut merged = Bars::with_capacity(old.len() + new.len(), &old.extra_layout());
        let (mut i, mut j) = (0, 0);
        let mut conflicts = 0usize;
        let mut first_conflict = None;
        let mut overlap = 0u64;
        // Compare rows of two different `Bars` by concatenating their values through a small view.
        while i < old.len() || j < new.len() {
            let take_old = j >= new.len() || (i < old.len() && old.ts[i] < new.ts[j]);
            let take_new = i >= old.len() || (j < new.len() && new.ts[j] < old.ts[i]);
            if take_old {
                merged.push_row_from(&old, i);
                i += 1;
            } else if take_new {
                merged.push_row_from(new, j);
                j += 1;
            } else {
                overlap += 1;
                if !same_row(&old, i, new, j) {
                    conflicts += 1;
                    first_conflict.get_or_insert(old.ts[i]);
                }
                merged.push_row_from(&old, i);
                i += 1;
                j += 1;
            }
        }
        if conflicts > 0 {
            return Err(DataError::StoreConflict {
                series: format!("{symbol} {tf}"),
                count: conflicts,
                first: first_conflict.map(format_iso).unwrap_or_default(),
            });
        }
        Ok(MergePlan { merged, rows_added: new.len() as u64 - overlap, existing: Some(meta) })
    }

    /// Writes a merge plan. `series_report` describes the merged data; `ingest` (if any) is appended
    /// to the series' ingest history.
    pub fn commit(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        plan: MergePlan,
        series_report: QualityReport,
        lineage: Lineage,
    ) -> Result<CommitOutcome> {
        let Lineage { ingest, derived_from, last_bar_incomplete } = lineage;
        let dir = self.series_dir(symbol, tf);
        fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
        let _lock = lock_series_dir(&dir)?;

        // Re-read under the lock: another writer may have committed since the plan was made.
        let current = self.meta(symbol, tf)?;
        if current.as_ref().map(|m| &m.content_hash) != plan.existing.as_ref().map(|m| &m.content_hash) {
            return Err(DataError::Store(format!("{symbol} {tf} changed while this ingest was running; run it again")));
        }
        let hash = content_hash(&plan.merged);
        if plan.rows_added == 0 && derived_from.is_none() {
            if let Some(meta) = &current {
                if meta.content_hash == hash {
                    return Ok(CommitOutcome {
                        rows_added: 0,
                        rows_total: meta.rows,
                        content_hash: hash,
                        unchanged: true,
                    });
                }
            }
        }
        let short = &hash[..16];
        let bars_file = format!("bars-{short}.parquet");
        let quality_file = format!("quality-{short}.json");
        let now = now_iso();

        let mut columns: Vec<String> =
            ["ts", "open", "high", "low", "close", "volume"].iter().map(|s| s.to_string()).collect();
        columns.extend(plan.merged.extras.iter().map(|c| c.name.clone()));
        let rows = plan.merged.len() as u64;
        let first = plan.merged.ts.first().map(|&t| format_iso(t));
        let last = plan.merged.ts.last().map(|&t| format_iso(t));
        let rows_added = plan.rows_added;

        let tmp = dir.join(format!(".{bars_file}.tmp-{}", std::process::id()));
        write_bars(&tmp, plan.merged)?;
        rename(&tmp, &dir.join(&bars_file))?;

        let mut ingests = match &current {
            Some(_) if derived_from.is_none() => self.quality(symbol, tf).map(|q| q.ingests).unwrap_or_default(),
            _ => Vec::new(),
        };
        let mut sources =
            current.as_ref().filter(|_| derived_from.is_none()).map(|m| m.sources.clone()).unwrap_or_default();
        if let Some(record) = ingest {
            sources.push(SourceRecord {
                file: record.file.clone(),
                ingested_at: record.ingested_at.clone(),
                rows_added,
            });
            ingests.push(record);
        }
        let score = series_report.score;
        let calendar = series_report.calendar;
        let quality = StoredQuality { series: series_report, ingests };
        write_json_atomic(&dir, &quality_file, &quality)?;

        let meta = SeriesMeta {
            format_version: META_VERSION,
            symbol: symbol.clone(),
            timeframe: tf.to_string(),
            calendar,
            rows,
            first,
            last,
            content_hash: hash.clone(),
            bars_file: bars_file.clone(),
            quality_file: quality_file.clone(),
            quality_score: score,
            columns,
            sources,
            derived_from,
            last_bar_incomplete,
            updated_at: now,
        };
        write_json_atomic(&dir, "meta.json", &meta)?;
        sync_dir(&dir);
        // Old versions and leftovers of killed writers are no longer referenced.
        if let Ok(entries) = fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let stale = (name.starts_with("bars-") || name.starts_with("quality-") || name.starts_with('.'))
                    && name != bars_file
                    && name != quality_file
                    && name != ".lock";
                if stale {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        Ok(CommitOutcome { rows_added, rows_total: meta.rows, content_hash: hash, unchanged: false })
    }

    /// Stores a series computed from another (resampled bars, bars from trades), replacing any
    /// earlier derivation of it: derived data is regenerated, never merged.
    pub fn store_derived(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        bars: Bars,
        report: QualityReport,
        derived_from: Derivation,
        last_bar_incomplete: bool,
    ) -> Result<CommitOutcome> {
        let plan = MergePlan { rows_added: bars.len() as u64, merged: bars, existing: self.meta(symbol, tf)? };
        let lineage = Lineage { ingest: None, derived_from: Some(derived_from), last_bar_incomplete };
        self.commit(symbol, tf, plan, report, lineage)
    }

    /// Deletes a stored series.
    pub fn remove(&self, symbol: &Symbol, tf: Timeframe) -> Result<SeriesMeta> {
        let meta = self.require_meta(symbol, tf)?;
        let dir = self.series_dir(symbol, tf);
        fs::remove_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
        Ok(meta)
    }
}

fn same_row(a: &Bars, i: usize, b: &Bars, j: usize) -> bool {
    let eq = |x: &[f64], y: &[f64]| x[i].to_bits() == y[j].to_bits();
    eq(&a.open, &b.open)
        && eq(&a.high, &b.high)
        && eq(&a.low, &b.low)
        && eq(&a.close, &b.close)
        && eq(&a.volume, &b.volume)
        && a.extras.iter().zip(&b.extras).all(|(x, y)| eq(&x.values, &y.values))
}

/// Takes the directory's writer lock (held until the returned file is dropped) and removes the
/// temporary files of writers that were killed: under the lock no live writer has any.
pub(crate) fn lock_series_dir(dir: &Path) -> Result<File> {
    let lock_path = dir.join(".lock");
    let lock = File::create(&lock_path).map_err(|e| DataError::io(&lock_path, e))?;
    lock.lock().map_err(|e| DataError::io(&lock_path, e))?;
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.contains(".tmp-") {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    Ok(lock)
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| DataError::io(to, e))
}

fn write_json_atomic<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| DataError::Store(e.to_string()))?;
    let mut f = File::create(&tmp).map_err(|e| DataError::io(&tmp, e))?;
    f.write_all(&bytes).map_err(|e| DataError::io(&tmp, e))?;
    f.sync_all().map_err(|e| DataError::io(&tmp, e))?;
    rename(&tmp, &dir.join(name))
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// blake3 of the column names and the little-endian bytes of every value.
pub fn content_hash(bars: &Bars) -> String {
    let mut columns: Vec<(&str, &[f64])> = vec![
        ("open", &bars.open),
        ("high", &bars.high),
        ("low", &bars.low),
        ("close", &bars.close),
        ("volume", &bars.volume),
    ];
    columns.extend(bars.extras.iter().map(|c| (c.name.as_str(), c.values.as_slice())));
    hash_columns(&bars.ts, &columns)
}

/// blake3 of a time column and named float columns: each name, a NUL, then the little-endian
/// bytes of its values.
pub fn hash_columns(ts: &[i64], columns: &[(&str, &[f64])]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"ts\0");
    update_le(&mut h, ts);
    for (name, values) in columns {
        h.update(name.as_bytes());
        h.update(&[0]);
        update_le(&mut h, values);
    }
    h.finalize().to_hex().to_string()
}

/// Feeds the little-endian bytes of `values` to `h`: on little-endian machines the values' own
/// memory, elsewhere a converted copy.
fn update_le<T: bytemuck::Pod + ToLeBytes>(h: &mut blake3::Hasher, values: &[T]) {
    if cfg!(target_endian = "little") {
        h.update(bytemuck::cast_slice(values));
    } else {
        for chunk in values.chunks(8192) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.le_bytes()).collect();
            h.update(&bytes);
        }
    }
}

trait ToLeBytes {
    fn le_bytes(&self) -> [u8; 8];
}

impl ToLeBytes for f64 {
    fn le_bytes(&self) -> [u8; 8] {
        self.to_le_bytes()
    }
}

impl ToLeBytes for i64 {
    fn le_bytes(&self) -> [u8; 8] {
        self.to_le_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_hash_is_blake3_of_names_and_little_endian_values() {
        let ts = [1_672_531_200_000i64, 1_672_531_260_000, -5];
        let open = [1.5, f64::MIN_POSITIVE, -0.0];
        let close = [2.25, 1e300, 7.0];
        let mut bytes = b"ts\0".to_vec();
        ts.iter().for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
        for (name, values) in [("open", &open), ("close", &close)] {
            bytes.extend_from_slice(name.as_bytes());
            bytes.push(0);
            values.iter().for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
        }
        let expected = blake3::hash(&bytes).to_hex().to_string();
        assert_eq!(hash_columns(&ts, &[("open", &open), ("close", &close)]), expected);
    }
}
