//! Classification and regression metrics with scikit-learn's definitions (checked against it in
//! `tests/it/reference.rs`), and the information coefficient per date for cross-sectional data.

use serde::Serialize;

use crate::stats::{average_ranks, mean, pearson, std_dev};
use crate::EvalError;

/// Binary classification scores for labels in {0, 1} and predicted probabilities of class 1. A row is
/// predicted positive when its probability exceeds `threshold`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BinaryScores {
    pub rows: usize,
    pub positives: usize,
    pub accuracy: f64,
    /// 0 when nothing is predicted positive (scikit-learn's `zero_division=0`).
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// NaN when only one class is present.
    pub roc_auc: f64,
    pub log_loss: f64,
    pub brier: f64,
    /// `[[true negatives, false positives], [false negatives, true positives]]`, as scikit-learn.
    pub confusion: [[usize; 2]; 2],
}

fn check_lengths(what: &str, a: usize, b: usize) -> Result<(), EvalError> {
    if a != b {
        return Err(EvalError::LengthMismatch { what: what.to_string(), left: a, right: b });
    }
    if a == 0 {
        return Err(EvalError::Empty(what.to_string()));
    }
    Ok(())
}

fn check_binary_inputs(y: &[f64], p: &[f64]) -> Result<(), EvalError> {
    check_lengths("labels and probabilities", y.len(), p.len())?;
    if let Some(i) = y.iter().position(|&v| v != 0.0 && v != 1.0) {
        return Err(EvalError::InvalidInput(format!("label at row {i} is {}: binary labels must be 0 or 1", y[i])));
    }
    if let Some(i) = p.iter().position(|v| !(0.0..=1.0).contains(v)) {
        return Err(EvalError::InvalidInput(format!("probability at row {i} is {}: expected a value in [0, 1]", p[i])));
    }
    Ok(())
}

pub fn binary_scores(y: &[f64], p: &[f64], threshold: f64) -> Result<BinaryScores, EvalError> {
    check_binary_inputs(y, p)?;
    let mut confusion = [[0usize; 2]; 2];
    for (&t, &q) in y.iter().zip(p) {
        confusion[t as usize][usize::from(q > threshold)] += 1;
    }
    let [[tn, fp], [fn_, tp]] = confusion;
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fn_);
    let f1 = ratio(2 * tp, 2 * tp + fp + fn_);
    Ok(BinaryScores {
        rows: y.len(),
        positives: tp + fn_,
        accuracy: ratio(tp + tn, y.len()),
        precision,
        recall,
        f1,
        roc_auc: roc_auc(y, p)?,
        log_loss: log_loss(y, p)?,
        brier: y.iter().zip(p).map(|(t, q)| (q - t).powi(2)).sum::<f64>() / y.len() as f64,
        confusion,
    })
}

/// Area under the ROC curve, by the Mann–Whitney statistic with tied scores counted half (equal to
/// scikit-learn's trapezoidal `roc_auc_score`). NaN when one class is absent.
pub fn roc_auc(y: &[f64], p: &[f64]) -> Result<f64, EvalError> {
    check_lengths("labels and scores", y.len(), p.len())?;
    let ranks = average_ranks(p);
    let positives = y.iter().filter(|&&v| v == 1.0).count() as f64;
    let negatives = y.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return Ok(f64::NAN);
    }
    let rank_sum: f64 = ranks.iter().zip(y).filter(|(_, &t)| t == 1.0).map(|(r, _)| r).sum();
    Ok((rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}

/// Mean binary cross-entropy; probabilities are clipped to [ε, 1 − ε] with ε the f64 machine epsilon,
/// as scikit-learn does.
pub fn log_loss(y: &[f64], p: &[f64]) -> Result<f64, EvalError> {
    check_binary_inputs(y, p)?;
    let eps = f64::EPSILON;
    let total: f64 = y
        .iter()
        .zip(p)
        .map(|(&t, &q)| {
            let q = q.clamp(eps, 1.0 - eps);
            -(t * q.ln() + (1.0 - t) * (1.0 - q).ln())
        })
        .sum();
    Ok(total / y.len() as f64)
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibrationBin {
    pub lower: f64,
    pub upper: f64,
    pub count: usize,
    pub mean_predicted: f64,
    pub fraction_positive: f64,
}

/// Calibration table with `bins` equal-width bins over [0, 1]; empty bins are left out (scikit-learn's
/// `calibration_curve(strategy="uniform")`, including its rule that a probability on an inner edge
/// belongs to the lower bin).
pub fn calibration_table(y: &[f64], p: &[f64], bins: usize) -> Result<Vec<CalibrationBin>, EvalError> {
    check_binary_inputs(y, p)?;
    if bins == 0 {
        return Err(EvalError::InvalidInput("calibration needs at least one bin".into()));
    }
    let step = 1.0 / bins as f64;
    let edges: Vec<f64> = (0..=bins).map(|i| if i == bins { 1.0 } else { i as f64 * step }).collect();
    let mut count = vec![0usize; bins];
    let mut sum_p = vec![0.0; bins];
    let mut sum_y = vec![0.0; bins];
    for (&t, &q) in y.iter().zip(p) {
        let b = edges[1..bins].partition_point(|&e| e < q);
        count[b] += 1;
        sum_p[b] += q;
        sum_y[b] += t;
    }
    Ok((0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| CalibrationBin {
            lower: edges[b],
            upper: edges[b + 1],
            count: count[b],
            mean_predicted: sum_p[b] / count[b] as f64,
            fraction_positive: sum_y[b] / count[b] as f64,
        })
        .collect())
}

/// Multiclass confusion matrix: `matrix[true][predicted]` over classes 0..classes.
pub fn confusion_matrix(y: &[f64], predicted: &[f64], classes: usize) -> Result<Vec<Vec<usize>>, EvalError> {
    check_lengths("labels and predictions", y.len(), predicted.len())?;
    let mut m = vec![vec![0usize; classes]; classes];
    for (i, (&t, &q)) in y.iter().zip(predicted).enumerate() {
        let valid = |v: f64| v >= 0.0 && v.fract() == 0.0 && (v as usize) < classes;
        if !valid(t) || !valid(q) {
            return Err(EvalError::InvalidInput(format!(
                "row {i}: classes must be integers 0..{classes}, got label {t} and prediction {q}"
            )));
        }
        m[t as usize][q as usize] += 1;
    }
    Ok(m)
}

/// Regression scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegressionScores {
    pub rows: usize,
    pub rmse: f64,
    pub mae: f64,
    /// scikit-learn's `r2_score` (1 for a perfect fit of a constant target, 0 for an imperfect one).
    pub r2: f64,
    /// Pearson correlation of prediction and target.
    pub ic: f64,
    /// Spearman correlation (Pearson of average ranks).
    pub rank_ic: f64,
}

pub fn regression_scores(y: &[f64], prediction: &[f64]) -> Result<RegressionScores, EvalError> {
    check_lengths("targets and predictions", y.len(), prediction.len())?;
    if let Some(i) = y.iter().chain(prediction).position(|v| !v.is_finite()) {
        let (side, row) = if i < y.len() { ("target", i) } else { ("prediction", i - y.len()) };
        return Err(EvalError::InvalidInput(format!("{side} at row {row} is not finite")));
    }
    let n = y.len() as f64;
    let ss_res: f64 = y.iter().zip(prediction).map(|(t, q)| (t - q).powi(2)).sum();
    let mae = y.iter().zip(prediction).map(|(t, q)| (t - q).abs()).sum::<f64>() / n;
    let my = mean(y);
    let ss_tot: f64 = y.iter().map(|t| (t - my).powi(2)).sum();
    let r2 = if ss_tot != 0.0 {
        1.0 - ss_res / ss_tot
    } else if ss_res == 0.0 {
        1.0
    } else {
        0.0
    };
    Ok(RegressionScores {
        rows: y.len(),
        rmse: (ss_res / n).sqrt(),
        mae,
        r2,
        ic: pearson(y, prediction),
        rank_ic: pearson(&average_ranks(y), &average_ranks(prediction)),
    })
}

/// Information coefficients computed per date (cross-sectional) and summarised over dates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatedIc {
    pub dates: usize,
    pub mean_ic: f64,
    pub mean_rank_ic: f64,
    /// Mean / standard deviation of the per-date IC (the "ICIR"), not annualised.
    pub ic_ir: f64,
    pub rank_ic_ir: f64,
    /// (date, IC, rank IC) for every date with at least `min_names` rows and variation on both sides.
    pub per_date: Vec<(i64, f64, f64)>,
}

/// Per-date IC and rank IC. `dates` groups the rows (any order); dates with fewer than `min_names`
/// rows, or a constant target or prediction, are left out.
pub fn ic_by_date(dates: &[i64], y: &[f64], prediction: &[f64], min_names: usize) -> Result<DatedIc, EvalError> {
    check_lengths("dates and targets", dates.len(), y.len())?;
    check_lengths("targets and predictions", y.len(), prediction.len())?;
    let mut order: Vec<usize> = (0..dates.len()).collect();
    order.sort_by_key(|&i| dates[i]);
    let mut per_date = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end < order.len() && dates[order[end]] == dates[order[start]] {
            end += 1;
        }
        let rows = &order[start..end];
        if rows.len() >= min_names.max(2) {
            let ys: Vec<f64> = rows.iter().map(|&i| y[i]).collect();
            let ps: Vec<f64> = rows.iter().map(|&i| prediction[i]).collect();
            let ic = pearson(&ys, &ps);
            if ic.is_finite() {
                let rank_ic = pearson(&average_ranks(&ys), &average_ranks(&ps));
                per_date.push((dates[rows[0]], ic, rank_ic));
            }
        }
        start = end;
    }
    let ics: Vec<f64> = per_date.iter().map(|d| d.1).collect();
    let rank_ics: Vec<f64> = per_date.iter().map(|d| d.2).collect();
    let ir = |v: &[f64]| if v.len() > 1 { mean(v) / std_dev(v) } else { f64::NAN };
    Ok(DatedIc {
        dates: per_date.len(),
        mean_ic: if ics.is_empty() { f64::NAN } else { mean(&ics) },
        mean_rank_ic: if rank_ics.is_empty() { f64::NAN } else { mean(&rank_ics) },
        ic_ir: ir(&ics),
        rank_ic_ir: ir(&rank_ics),
        per_date,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_binary_case() {
        let y = [0.0, 0.0, 1.0, 1.0];
        let p = [0.1, 0.4, 0.35, 0.8];
        let s = binary_scores(&y, &p, 0.5).unwrap();
        assert_eq!(s.roc_auc, 0.75); // the textbook example
        assert_eq!(s.confusion, [[2, 0], [1, 1]]);
        assert_eq!(s.precision, 1.0);
        assert_eq!(s.recall, 0.5);
        assert!(binary_scores(&[0.0, 2.0], &[0.1, 0.2], 0.5).is_err());
    }
}
