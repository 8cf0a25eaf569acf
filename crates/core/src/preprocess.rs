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

/// Fitted per-column parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessor {
    pub spec: PreprocessSpec,
    pub fill: Vec<f64>,
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
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
    fn winsorizes_at_training_quantiles() {
        let column: Vec<f64> = (0..101).map(f64::from).collect();
        let spec = PreprocessSpec { impute: Impute::Keep, winsorize: 0.05, standardize: false };
        let p = Preprocessor::fit(&spec, std::slice::from_ref(&column), &(0..101).collect::<Vec<_>>());
        assert_eq!(p.apply(0, -50.0), 5.0);
        assert_eq!(p.apply(0, 500.0), 95.0);
        assert!(p.apply(0, f64::NAN).is_nan());
    }
}
