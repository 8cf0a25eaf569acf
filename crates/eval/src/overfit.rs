//! Statistics that discount a backtest for how it was found: the probabilistic and deflated Sharpe
//! ratios (Bailey & López de Prado, 2012 and 2014) and the probability of backtest overfitting by
//! combinatorially symmetric cross-validation (Bailey, Borwein, López de Prado & Zhu, 2015).

use serde::Serialize;

use crate::split::combinations;
use crate::stats::{mean, normal_cdf, normal_ppf, skew_kurtosis, std_dev};
use crate::EvalError;

const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// Probability that the true Sharpe ratio exceeds `benchmark`, given an observed per-bar Sharpe `sharpe`
/// over `n` returns with skewness `skew` and (Pearson) kurtosis `kurtosis`. All Sharpe ratios per bar,
/// not annualised.
pub fn probabilistic_sharpe(sharpe: f64, benchmark: f64, n: usize, skew: f64, kurtosis: f64) -> f64 {
    let denominator = (1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe * sharpe).sqrt();
    normal_cdf((sharpe - benchmark) * ((n as f64) - 1.0).sqrt() / denominator)
}

/// The Sharpe ratio the best of `trials` unskilled strategies would show by luck: the expected maximum
/// of `trials` draws from N(0, variance of the trials' Sharpe ratios).
pub fn expected_max_sharpe(trials: usize, trial_sharpe_variance: f64) -> f64 {
    if trials < 2 {
        return 0.0;
    }
    let n = trials as f64;
    trial_sharpe_variance.sqrt()
        * ((1.0 - EULER_GAMMA) * normal_ppf(1.0 - 1.0 / n)
            + EULER_GAMMA * normal_ppf(1.0 - 1.0 / (n * std::f64::consts::E)))
}

/// Sharpe-ratio statistics of a selected strategy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SharpeStatistics {
    /// Per-bar Sharpe ratio of the selected returns.
    pub sharpe: f64,
    pub skew: f64,
    pub kurtosis: f64,
    pub observations: usize,
    /// PSR against a zero benchmark.
    pub probabilistic_sharpe: f64,
    /// Number of strategies that were tried before this one was selected.
    pub trials: usize,
    /// The luck benchmark the deflated Sharpe ratio is measured against.
    pub expected_max_sharpe: f64,
    /// PSR against the luck benchmark: the probability the selected strategy's skill is real.
    pub deflated_sharpe: f64,
}

/// PSR and DSR of `returns`, selected out of trials whose per-bar Sharpe ratios were `trial_sharpes`
/// (the selected one included).
pub fn sharpe_statistics(returns: &[f64], trial_sharpes: &[f64]) -> Result<SharpeStatistics, EvalError> {
    if returns.len() < 3 {
        return Err(EvalError::InvalidInput(format!("{} returns are too few for Sharpe statistics", returns.len())));
    }
    if trial_sharpes.is_empty() {
        return Err(EvalError::InvalidInput(
            "the deflated Sharpe ratio needs the trials' Sharpe ratios (at least the selected one)".into(),
        ));
    }
    let sharpe = mean(returns) / std_dev(returns);
    let (skew, kurtosis) = skew_kurtosis(returns);
    let variance = if trial_sharpes.len() > 1 { std_dev(trial_sharpes).powi(2) } else { 0.0 };
    let benchmark = expected_max_sharpe(trial_sharpes.len(), variance);
    Ok(SharpeStatistics {
        sharpe,
        skew,
        kurtosis,
        observations: returns.len(),
        probabilistic_sharpe: probabilistic_sharpe(sharpe, 0.0, returns.len(), skew, kurtosis),
        trials: trial_sharpes.len(),
        expected_max_sharpe: benchmark,
        deflated_sharpe: probabilistic_sharpe(sharpe, benchmark, returns.len(), skew, kurtosis),
    })
}

/// Probability of backtest overfitting by CSCV.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pbo {
    /// Share of in-sample/out-of-sample splits where the in-sample winner ranks in the bottom half out of sample.
    pub pbo: f64,
    pub splits: usize,
    /// Logit of the winner's relative out-of-sample rank, per split.
    pub logits: Vec<f64>,
}

/// `returns[strategy][bar]`: the per-bar returns of every strategy tried, over the same bars. The bars
/// are cut into `blocks` (even) contiguous blocks; every half of them in turn is "in sample", the rest
/// "out of sample"; strategies are ranked by Sharpe ratio.
pub fn probability_of_backtest_overfitting(returns: &[Vec<f64>], blocks: usize) -> Result<Pbo, EvalError> {
    let strategies = returns.len();
    if strategies < 2 {
        return Err(EvalError::InvalidInput("PBO needs at least two strategies".into()));
    }
    let bars = returns[0].len();
    if returns.iter().any(|r| r.len() != bars) {
        return Err(EvalError::InvalidInput("PBO needs every strategy's returns over the same bars".into()));
    }
    if blocks < 2 || !blocks.is_multiple_of(2) || blocks > 16 || bars < 2 * blocks {
        return Err(EvalError::InvalidInput(format!(
            "PBO blocks = {blocks}: expected an even number from 2 to 16, with at least 2 bars per block ({bars} bars)"
        )));
    }
    let bounds: Vec<usize> = (0..=blocks).map(|b| bars * b / blocks).collect();
    let sharpe_over = |r: &[f64], chosen: &[usize]| {
        let picked: Vec<f64> = chosen.iter().flat_map(|&b| r[bounds[b]..bounds[b + 1]].iter().copied()).collect();
        let sd = std_dev(&picked);
        if sd > 0.0 {
            mean(&picked) / sd
        } else {
            0.0
        }
    };
    let mut logits = Vec::new();
    for in_sample in combinations(blocks, blocks / 2) {
        let out_sample: Vec<usize> = (0..blocks).filter(|b| !in_sample.contains(b)).collect();
        let is: Vec<f64> = returns.iter().map(|r| sharpe_over(r, &in_sample)).collect();
        let oos: Vec<f64> = returns.iter().map(|r| sharpe_over(r, &out_sample)).collect();
        let best = (0..strategies).max_by(|&a, &b| is[a].total_cmp(&is[b])).expect("≥ 2 strategies");
        // Relative rank of the in-sample winner out of sample, in (0, 1).
        let rank = 1 + oos.iter().filter(|&&v| v < oos[best]).count();
        let omega = rank as f64 / (strategies as f64 + 1.0);
        logits.push((omega / (1.0 - omega)).ln());
    }
    let overfit = logits.iter().filter(|&&l| l <= 0.0).count();
    Ok(Pbo { pbo: overfit as f64 / logits.len() as f64, splits: logits.len(), logits })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_max_sharpe_grows_with_trials() {
        let a = expected_max_sharpe(10, 1.0);
        let b = expected_max_sharpe(1000, 1.0);
        // (1−γ)·Φ⁻¹(1−1/N) + γ·Φ⁻¹(1−1/(N·e)) evaluated with scipy.stats.norm.ppf.
        assert!((a - 1.57459830134575).abs() < 1e-9, "{a}");
        assert!((b - 3.255121513652723).abs() < 1e-9, "{b}");
    }

    #[test]
    fn selecting_among_pure_noise_is_overfit_about_half_the_time() {
        // 30 strategies of independent noise (SplitMix64 → uniform − ½): the in-sample winner is a
        // random pick out of sample, so its rank falls in the bottom half in about half the splits.
        let mut state = 11_u64;
        let mut next = || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let returns: Vec<Vec<f64>> = (0..30).map(|_| (0..2000).map(|_| 0.01 * next()).collect()).collect();
        let pbo = probability_of_backtest_overfitting(&returns, 10).unwrap();
        assert_eq!(pbo.splits, 252);
        assert!(pbo.pbo > 0.3 && pbo.pbo < 0.7, "{}", pbo.pbo);
    }

    #[test]
    fn a_clear_winner_is_not_overfit() {
        // Strategy 0 earns steadily; the others are noise around zero.
        let mut returns = vec![(0..400).map(|i| 0.01 + 0.001 * ((i * 7) % 5) as f64).collect::<Vec<f64>>()];
        for s in 1..6 {
            returns.push((0..400).map(|i| 0.01 * (((i * (s + 3) * 13) % 17) as f64 - 8.0) / 8.0).collect());
        }
        let pbo = probability_of_backtest_overfitting(&returns, 8).unwrap();
        assert_eq!(pbo.splits, 70);
        assert_eq!(pbo.pbo, 0.0);
    }
}
