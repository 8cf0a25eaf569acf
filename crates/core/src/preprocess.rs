//! Feature preprocessing fitted on a training window only and applied identically to every later row:
//! imputation, winsorising at training quantiles, standardisation. It belongs to a fitted model, so a
//! model never sees statistics of the period it is tested on.

use serde::{Deserialize, Serialize};

/// What to do with a missing (NaN) feature value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Impute {
    /// The training median of the column.
    #[default]
    Median,
    Zero,
    /// Leave NaN (for models that handle missing values themselves, such as LightGBM).
    Keep,
}

/// Preprocessing steps, as written in a config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreprocessSpec {
    #[serde(default)]
    pub impute: Impute,
    /// Clip each column to its training [q, 1 − q] quantiles; 0 disables.
    #[serde(default)]
    pub winsorize: f64,
    #[serde(default)]
    pub standardize: bool,
}

impl Default for PreprocessSpec {
    fn default() -> Self {
        PreprocessSpec { impute: Impute::Median, winsorize: 0.0, standardize: false }
    }
}

impl PreprocessSpec {
    /// Leaves every value as it is (missing values stay NaN): what tree models that route missing
    /// values themselves use.
    pub fn identity() -> PreprocessSpec {
        PreprocessSpec { impute: Impute::Keep, winsorize: 0.0, standardize: false }
    }

    pub fn is_identity(&self) -> bool {
        self.impute == Impute::Keep && self.winsorize == 0.0 && !self.standardize
    }

    /// Checks the values a config may get wrong.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..0.5).contains(&self.winsorize) {
            return Err(format!("winsorize {}: expected 0 ≤ q < 0.5", self.winsorize));
        }
        Ok(())
    }
}

/// Fitted per-column parameters. In JSON, the non-finite values a fit produces (no clipping bound,
/// a kept NaN) are written as null and read back as what null means for that field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocessor {
    pub spec: PreprocessSpec,
    /// Replacement of a missing value (NaN with `Impute::Keep`).
    #[serde(serialize_with = "finite_or_null", deserialize_with = "null_as_nan")]
    pub fill: Vec<f64>,
    /// Clipping bounds (±∞ without winsorising).
    #[serde(serialize_with = "finite_or_null", deserialize_with = "null_as_neg_inf")]
    pub lower: Vec<f64>,
    #[serde(serialize_with = "finite_or_null", deserialize_with = "null_as_pos_inf")]
    pub upper: Vec<f64>,
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
}

fn finite_or_null<S: serde::Serializer>(values: &[f64], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(values.len()))?;
    for v in values {
        seq.serialize_element(&v.is_finite().then_some(*v))?;
    }
    seq.end()
}

fn null_as<'de, D: serde::Deserializer<'de>>(d: D, null: f64) -> Result<Vec<f64>, D::Error> {
    let values: Vec<Option<f64>> = Deserialize::deserialize(d)?;
    Ok(values.into_iter().map(|v| v.unwrap_or(null)).collect())
}

fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    null_as(d, f64::NAN)
}

fn null_as_neg_inf<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    null_as(d, f64::NEG_INFINITY)
}

fn null_as_pos_inf<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    null_as(d, f64::INFINITY)
}

/// Linear-interpolation quantile of sorted values (NumPy's default method).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

impl Preprocessor {
    /// Fits on `columns` (column-major: one Vec per feature), using only `rows` (the training window).
    pub fn fit(spec: &PreprocessSpec, columns: &[Vec<f64>], rows: &[usize]) -> Preprocessor {
        let width = columns.len();
        let mut p = Preprocessor {
            spec: spec.clone(),
            fill: vec![0.0; width],
            lower: vec![f64::NEG_INFINITY; width],
            upper: vec![f64::INFINITY; width],
            mean: vec![0.0; width],
            scale: vec![1.0; width],
        };
        for (c, column) in columns.iter().enumerate() {
            let mut values: Vec<f64> = rows.iter().map(|&r| column[r]).filter(|v| v.is_finite()).collect();
            values.sort_by(f64::total_cmp);
            p.fill[c] = match spec.impute {
                Impute::Median => quantile_sorted(&values, 0.5),
                Impute::Zero => 0.0,
                Impute::Keep => f64::NAN,
            };
            if spec.winsorize > 0.0 && !values.is_empty() {
                p.lower[c] = quantile_sorted(&values, spec.winsorize);
                p.upper[c] = quantile_sorted(&values, 1.0 - spec.winsorize);
            }
            if spec.standardize && !values.is_empty() {
                let clipped: Vec<f64> = values.iter().map(|v| v.clamp(p.lower[c], p.upper[c])).collect();
                let m = clipped.iter().sum::<f64>() / clipped.len() as f64;
                let var = clipped.iter().map(|v| (v - m).powi(2)).sum::<f64>() / clipped.len() as f64;
                p.mean[c] = m;
                p.scale[c] = if var > 0.0 { var.sqrt() } else { 1.0 };
            }
        }
        p
    }

    /// Fits on row-major `rows` (`width` values per row), all of which are training rows.
    pub fn fit_rows(spec: &PreprocessSpec, rows: &[f64], width: usize) -> Preprocessor {
        let n = rows.len().checked_div(width).unwrap_or(0);
        let columns: Vec<Vec<f64>> = (0..width).map(|c| (0..n).map(|r| rows[r * width + c]).collect()).collect();
        let all: Vec<usize> = (0..n).collect();
        Preprocessor::fit(spec, &columns, &all)
    }

    pub fn width(&self) -> usize {
        self.fill.len()
    }

    /// Transforms one value of column `c`.
    pub fn apply(&self, c: usize, value: f64) -> f64 {
        let v = if value.is_finite() { value.clamp(self.lower[c], self.upper[c]) } else { self.fill[c] };
        if v.is_nan() {
            return v;
        }
        (v - self.mean[c]) / self.scale[c]
    }

    /// Transforms a row in place.
    pub fn apply_row(&self, row: &mut [f64]) {
        for (c, v) in row.iter_mut().enumerate() {
            *v = self.apply(c, *v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitted_on_training_rows_only() {
        let column = vec![1.0, 2.0, f64::NAN, 3.0, 1000.0];
        let spec = PreprocessSpec { impute: Impute::Median, winsorize: 0.0, standardize: true };
        // The outlier at row 4 is outside the training rows and must not move the statistics.
        let p = Preprocessor::fit(&spec, std::slice::from_ref(&column), &[0, 1, 2, 3]);
        assert_eq!(p.fill[0], 2.0);
        assert_eq!(p.mean[0], 2.0);
        assert!((p.scale[0] - (2.0f64 / 3.0).sqrt()).abs() < 1e-15);
        assert_eq!(p.apply(0, f64::NAN), 0.0);
        assert_eq!(quantile_sorted(&[1.0, 2.0, 3.0, 4.0], 0.25), 1.75);
    }

    #[test]
    fn round_trips_through_json_with_non_finite_parameters() {
        let rows = vec![1.0, f64::NAN, 2.0, 5.0, 3.0, 7.0];
        for spec in
            [PreprocessSpec::identity(), PreprocessSpec { impute: Impute::Median, winsorize: 0.1, standardize: true }]
        {
            let p = Preprocessor::fit_rows(&spec, &rows, 2);
            let json = serde_json::to_string(&p).unwrap();
            let back: Preprocessor = serde_json::from_str(&json).unwrap();
            for c in 0..2 {
                for v in [f64::NAN, -100.0, 2.5, 100.0] {
                    let (a, b) = (p.apply(c, v), back.apply(c, v));
                    assert!(a == b || (a.is_nan() && b.is_nan()), "{json}: column {c}, {v}: {a} vs {b}");
                }
            }
        }
        // The second column's median is 6 (5 and 7); the first column's missing-free median is 2.
        let p = Preprocessor::fit_rows(&PreprocessSpec::default(), &rows, 2);
        assert_eq!((p.fill[0], p.fill[1]), (2.0, 6.0));
    }

    #[test]
    fn winsorizes_at_training_quantiles() {
        let column: Vec<f64> = (0..101).map(f64::from).collect();
        let spec = PreprocessSpec { impute: Impute::Keep, winsorize: 0.05, standardize: false };
        let p = Preprocessor::fit(&spec, std::slice::from_ref(&column), &(0..101).collect::<Vec<_>>());
        assert_eq!(p.apply(0, -50.0), 5.0);
        assert_eq!(p.apply(0, 500.0), 95.0);
        assert!(p.apply(0, f64::NAN).is_nan());
    }
}
