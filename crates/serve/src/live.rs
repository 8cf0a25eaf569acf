//! Live features: bars pushed with `POST /bars` run through per-symbol streaming state built from
//! the same kernels as training (`quantpipe_features::FeatureState`), so a model sees live exactly
//! the numbers it was trained on. `POST /predict` with a `symbol` reads that symbol's latest row, and
//! for a model that reads a window of rows (an LSTM) the rows before it, kept per symbol up to
//! `live.history`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use quantpipe_features::kernels::Bar;
use quantpipe_features::{FeatureSet, FeatureState};

pub struct LiveFeatures {
    pub set_name: String,
    pub set_hash: String,
    columns: HashMap<String, usize>,
    symbols: Mutex<HashMap<String, Arc<Mutex<SymbolState>>>>,
    set: FeatureSet,
    max_symbols: usize,
    history: usize,
}

pub struct SymbolState {
    state: FeatureState,
    pub last_ts: Option<i64>,
    pub bars_seen: u64,
    pub row: Vec<f64>,
    /// The rows before `row`, most recent last (at most `live.history`), shared with snapshots.
    pub history: VecDeque<Arc<Vec<f64>>>,
    /// Per column: defined at least once for this symbol, i.e. past its warm-up. Undefined (NaN)
    /// after that is a value in its own right (no swing high above the price yet, say), the same
    /// missing value training saw.
    pub defined: Vec<bool>,
}

/// Why a push was refused (nothing of it was applied).
#[derive(Debug)]
pub struct BarError {
    pub index: usize,
    pub message: String,
}

impl LiveFeatures {
    pub fn new(set: FeatureSet, max_symbols: usize, history: usize) -> LiveFeatures {
        let columns = set.columns().into_iter().enumerate().map(|(i, c)| (c, i)).collect();
        LiveFeatures {
            set_name: set.name.clone(),
            set_hash: set.hash(),
            columns,
            symbols: Mutex::new(HashMap::new()),
            set,
            max_symbols,
            history,
        }
    }

    /// Rows kept per symbol besides the latest.
    pub fn history(&self) -> usize {
        self.history
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.get(name).copied()
    }

    pub fn width(&self) -> usize {
        self.columns.len()
    }

    pub fn symbol(&self, symbol: &str) -> Option<Arc<Mutex<SymbolState>>> {
        self.symbols.lock().unwrap_or_else(|e| e.into_inner()).get(symbol).cloned()
    }

    pub fn symbols(&self) -> usize {
        self.symbols.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Checks every bar first (values, and time strictly after the symbol's last bar), then feeds
    /// them all: a refused push changes nothing.
    pub fn push(&self, symbol: &str, bars: &[Bar]) -> Result<(u64, i64), BarError> {
        let state = {
            let mut symbols = self.symbols.lock().unwrap_or_else(|e| e.into_inner());
            if !symbols.contains_key(symbol) && symbols.len() >= self.max_symbols {
                return Err(BarError {
                    index: 0,
                    message: format!("{} symbols are tracked already (live.max_symbols)", self.max_symbols),
                });
            }
            symbols
                .entry(symbol.to_string())
                .or_insert_with(|| {
                    Arc::new(Mutex::new(SymbolState {
                        state: FeatureState::new(&self.set),
                        last_ts: None,
                        bars_seen: 0,
                        row: vec![f64::NAN; self.columns.len()],
                        history: VecDeque::new(),
                        defined: vec![false; self.columns.len()],
                    }))
                })
                .clone()
        };
        let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
        let s = &mut *guard;
        let mut previous = s.last_ts;
        for (index, bar) in bars.iter().enumerate() {
            check_bar(bar).map_err(|message| BarError { index, message })?;
            if let Some(p) = previous {
                if bar.ts <= p {
                    return Err(BarError {
                        index,
                        message: format!(
                            "ts {} is not after the previous bar's {p} for {symbol}: bars must arrive in time order, once each",
                            bar.ts
                        ),
                    });
                }
            }
            previous = Some(bar.ts);
        }
        for bar in bars {
            if self.history > 0 && s.bars_seen > 0 {
                if s.history.len() == self.history {
                    s.history.pop_front();
                }
                s.history.push_back(Arc::new(s.row.clone()));
            }
            s.row.copy_from_slice(s.state.update(bar));
            for (defined, v) in s.defined.iter_mut().zip(&s.row) {
                *defined |= v.is_finite();
            }
            s.bars_seen += 1;
            s.last_ts = Some(bar.ts);
        }
        Ok((s.bars_seen, s.last_ts.unwrap_or_default()))
    }
}

fn check_bar(bar: &Bar) -> Result<(), String> {
    for (field, v) in [("open", bar.open), ("high", bar.high), ("low", bar.low), ("close", bar.close)] {
        if !(v.is_finite() && v > 0.0) {
            return Err(format!("{field} is {v}: prices must be finite and positive"));
        }
    }
    if !(bar.volume.is_finite() && bar.volume >= 0.0) {
        return Err(format!("volume is {}: it must be finite and ≥ 0", bar.volume));
    }
    if bar.high < bar.low {
        return Err(format!("high {} is below low {}", bar.high, bar.low));
    }
    if bar.high < bar.open.max(bar.close) || bar.low > bar.open.min(bar.close) {
        return Err(format!("open {} / close {} lie outside low {} … high {}", bar.open, bar.close, bar.low, bar.high));
    }
    Ok(())
}
