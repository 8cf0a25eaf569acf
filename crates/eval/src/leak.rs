//! A guard against the plainest leak: a feature that *is* the label (or nearly), e.g. a forward return
//! computed by mistake in feature code. No honest market feature separates next-period direction with
//! an AUC near 1; one that does has seen the future, and purging cannot help because the leak is in
//! the row itself.

use serde::Serialize;

use crate::metrics::roc_auc;
use crate::stats::{average_ranks, pearson};

/// A feature that predicts the target too well to be causal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuspectFeature {
    pub feature: String,
    /// Single-feature ROC AUC (classification) or |rank IC| (regression).
    pub score: f64,
    pub measure: &'static str,
}

/// Default bounds: |AUC − 0.5| ≥ 0.45 or |rank IC| ≥ 0.95.
pub const AUC_MARGIN: f64 = 0.45;
pub const RANK_IC_LIMIT: f64 = 0.95;

/// Scores every feature alone against the target, on the rows where both are finite.
/// `classification`: binary 0/1 target (AUC); otherwise a value (rank IC).
pub fn scan(features: &[(String, Vec<f64>)], target: &[f64], classification: bool) -> Vec<SuspectFeature> {
    let mut suspects = Vec::new();
    for (name, column) in features {
        let (x, y): (Vec<f64>, Vec<f64>) =
            column.iter().zip(target).filter(|(a, b)| a.is_finite() && b.is_finite()).map(|(a, b)| (*a, *b)).unzip();
        if x.len() < 30 {
            continue;
        }
        if classification {
            if let Ok(auc) = roc_auc(&y, &x) {
                if (auc - 0.5).abs() >= AUC_MARGIN {
                    suspects.push(SuspectFeature { feature: name.clone(), score: auc, measure: "auc" });
                }
            }
        } else {
            let ic = pearson(&average_ranks(&x), &average_ranks(&y));
            if ic.abs() >= RANK_IC_LIMIT {
                suspects.push(SuspectFeature { feature: name.clone(), score: ic, measure: "rank_ic" });
            }
        }
    }
    suspects
}
