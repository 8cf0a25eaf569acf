//! Columnar OHLCV bars of one symbol and timeframe.

use crate::time::Timestamp;

/// How an extra column combines when bars are aggregated into a longer timeframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    Sum,
    First,
    Last,
    Max,
    Min,
}

/// A numeric column beyond OHLCV that a source carries (Binance quote volume and trade count,
/// Yahoo's adjusted close, MetaTrader's spread), kept so later features can use it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtraColumn {
    pub name: String,
    pub aggregation: Aggregation,
    pub values: Vec<f64>,
}

/// Bars in columns: `ts[i]` is the bar's open time (UTC ms) and the other columns hold row `i`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bars {
    pub ts: Vec<Timestamp>,
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub volume: Vec<f64>,
    pub extras: Vec<ExtraColumn>,
}

impl Bars {
    pub fn with_capacity(rows: usize, extras: &[(String, Aggregation)]) -> Bars {
        Bars {
            ts: Vec::with_capacity(rows),
            open: Vec::with_capacity(rows),
            high: Vec::with_capacity(rows),
            low: Vec::with_capacity(rows),
            close: Vec::with_capacity(rows),
            volume: Vec::with_capacity(rows),
            extras: extras
                .iter()
                .map(|(name, aggregation)| ExtraColumn {
                    name: name.clone(),
                    aggregation: *aggregation,
                    values: Vec::with_capacity(rows),
                })
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    pub fn extra(&self, name: &str) -> Option<&ExtraColumn> {
        self.extras.iter().find(|c| c.name == name)
    }

    /// Appends row `i` of `other`, which must have the same extra columns in the same order.
    pub fn push_row_from(&mut self, other: &Bars, i: usize) {
        self.ts.push(other.ts[i]);
        self.open.push(other.open[i]);
        self.high.push(other.high[i]);
        self.low.push(other.low[i]);
        self.close.push(other.close[i]);
        self.volume.push(other.volume[i]);
        for (mine, theirs) in self.extras.iter_mut().zip(&other.extras) {
            mine.values.push(theirs.values[i]);
        }
    }

    /// The rows at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Bars {
        let pick = |col: &[f64]| indices.iter().map(|&i| col[i]).collect::<Vec<_>>();
        Bars {
            ts: indices.iter().map(|&i| self.ts[i]).collect(),
            open: pick(&self.open),
            high: pick(&self.high),
            low: pick(&self.low),
            close: pick(&self.close),
            volume: pick(&self.volume),
            extras: self
                .extras
                .iter()
                .map(|c| ExtraColumn { name: c.name.clone(), aggregation: c.aggregation, values: pick(&c.values) })
                .collect(),
        }
    }

    /// True when rows `i` and `j` hold the same values in every column (bitwise, so NaN equals NaN).
    pub fn rows_identical(&self, i: usize, j: usize) -> bool {
        let same = |col: &[f64]| col[i].to_bits() == col[j].to_bits();
        self.ts[i] == self.ts[j]
            && same(&self.open)
            && same(&self.high)
            && same(&self.low)
            && same(&self.close)
            && same(&self.volume)
            && self.extras.iter().all(|c| same(&c.values))
    }

    /// The names of the columns in which rows `i` and `j` differ.
    pub fn differing_columns(&self, i: usize, j: usize) -> Vec<String> {
        let mut out = Vec::new();
        for (name, col) in [
            ("open", &self.open),
            ("high", &self.high),
            ("low", &self.low),
            ("close", &self.close),
            ("volume", &self.volume),
        ] {
            if col[i].to_bits() != col[j].to_bits() {
                out.push(name.to_string());
            }
        }
        for c in &self.extras {
            if c.values[i].to_bits() != c.values[j].to_bits() {
                out.push(c.name.clone());
            }
        }
        out
    }

    /// The extra-column layout, to build a compatible `Bars`.
    pub fn extra_layout(&self) -> Vec<(String, Aggregation)> {
        self.extras.iter().map(|c| (c.name.clone(), c.aggregation)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bars {
        let mut b = Bars::with_capacity(3, &[("trades".into(), Aggregation::Sum)]);
        for (t, px) in [(0, 1.0), (60_000, 2.0), (120_000, f64::NAN)] {
            b.ts.push(t);
            b.open.push(px);
            b.high.push(px);
            b.low.push(px);
            b.close.push(px);
            b.volume.push(1.0);
            b.extras[0].values.push(3.0);
        }
        b
    }

    #[test]
    fn select_reorders_every_column() {
        let b = sample().select(&[1, 0]);
        assert_eq!(b.ts, vec![60_000, 0]);
        assert_eq!(b.close, vec![2.0, 1.0]);
        assert_eq!(b.extras[0].values, vec![3.0, 3.0]);
    }

    #[test]
    fn identical_rows_compare_nan_bitwise() {
        let b = sample().select(&[2, 2, 0]);
        assert!(b.rows_identical(0, 1));
        assert!(!b.rows_identical(0, 2));
        assert_eq!(b.differing_columns(0, 2), vec!["open", "high", "low", "close"]);
    }
}
