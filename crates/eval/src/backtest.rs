//! From out-of-sample predictions to positions, trades, equity and performance statistics, with costs.
//!
//! Accounting is by units and cash, the way a broker books it (and the way vectorbt's
//! `Portfolio.from_orders(size_type="targetpercent")` does, which `tests/it/reference.rs` checks):
//! the position for bar t is decided from the prediction made at the close of bar t and traded at that
//! close; a trade pays `fee_bps` of its value and fills `slippage_bps` worse than the close; buying never
//! borrows cash (a buy larger than the cash left is cut to what the cash pays for, fees included);
//! between changes of the target position the units are held, not rebalanced.

use serde::{Deserialize, Serialize};

use crate::stats::{mean, std_dev};
use crate::EvalError;

/// How predictions become target positions (fractions of equity, −1 … +1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositionRule {
    /// Go long when the probability of "up" is above this.
    pub long_above: f64,
    /// Go short when it is below this (`None`: long/flat only).
    pub short_below: Option<f64>,
    /// Scale the position by confidence: |2p − 1| instead of a full unit.
    #[serde(default)]
    pub size_by_confidence: bool,
}

impl Default for PositionRule {
    fn default() -> Self {
        PositionRule { long_above: 0.5, short_below: None, size_by_confidence: false }
    }
}

impl PositionRule {
    pub fn validate(&self) -> Result<(), EvalError> {
        let ok = |v: f64| (0.0..=1.0).contains(&v);
        if !ok(self.long_above) || self.short_below.is_some_and(|s| !ok(s) || s > self.long_above) {
            return Err(EvalError::InvalidInput(format!(
                "position thresholds long_above = {}, short_below = {:?}: expected 0 ≤ short_below ≤ long_above ≤ 1",
                self.long_above, self.short_below
            )));
        }
        Ok(())
    }

    /// Target position for one probability; NaN (no prediction) means flat.
    pub fn position(&self, p: f64) -> f64 {
        let size = if self.size_by_confidence { (2.0 * p - 1.0).abs().min(1.0) } else { 1.0 };
        if p > self.long_above {
            size
        } else if self.short_below.is_some_and(|s| p < s) {
            -size
        } else {
            0.0
        }
    }

    /// Target positions for a series. With `candidates` (the side a primary strategy proposes at each bar:
    /// +1, −1, or 0/NaN for none), the model is a gate: a candidate is taken, on its own side, when the
    /// probability is above `long_above`. Returns the positions and the approval rate (NaN without
    /// candidates).
    pub fn positions(&self, probabilities: &[f64], candidates: Option<&[f64]>) -> Result<(Vec<f64>, f64), EvalError> {
        self.validate()?;
        match candidates {
            None => Ok((probabilities.iter().map(|&p| self.position(p)).collect(), f64::NAN)),
            Some(sides) => {
                if sides.len() != probabilities.len() {
                    return Err(EvalError::LengthMismatch {
                        what: "candidate sides and probabilities".into(),
                        left: sides.len(),
                        right: probabilities.len(),
                    });
                }
                let (mut offered, mut approved) = (0usize, 0usize);
                let positions = sides
                    .iter()
                    .zip(probabilities)
                    .map(|(&side, &p)| {
                        if !(side.is_finite() && side != 0.0) {
                            return 0.0;
                        }
                        offered += 1;
                        if p > self.long_above {
                            approved += 1;
                            let size = if self.size_by_confidence { (2.0 * p - 1.0).abs().min(1.0) } else { 1.0 };
                            side.signum() * size
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let rate = if offered == 0 { f64::NAN } else { approved as f64 / offered as f64 };
                Ok((positions, rate))
            }
        }
    }
}

/// Trading costs, in basis points of traded value.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Costs {
    #[serde(default)]
    pub fee_bps: f64,
    #[serde(default)]
    pub slippage_bps: f64,
}

/// A simulated run: per-bar equity and returns, and the trades.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backtest {
    /// Equity at each bar's close after its trade (starting equity 1).
    pub equity: Vec<f64>,
    /// Return of each bar: equity change since the previous close (the first bar against 1).
    pub returns: Vec<f64>,
    /// Units held after each bar's trade, as a fraction of that bar's equity.
    pub exposure: Vec<f64>,
    pub trades: Vec<Trade>,
    /// Σ |traded value| / equity before the trade.
    pub turnover: f64,
    pub fees_paid: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trade {
    pub entry_row: usize,
    /// Row where the position was closed or reversed (`None`: still open at the end).
    pub exit_row: Option<usize>,
    pub side: f64,
    /// Equity change from before the entry to after the exit (or the last bar), costs included.
    pub pnl: f64,
}

/// Simulates holding `target` (fractions of equity) through the bars' `close` prices.
pub fn simulate(close: &[f64], target: &[f64], costs: Costs) -> Result<Backtest, EvalError> {
    if close.len() != target.len() {
        return Err(EvalError::LengthMismatch {
            what: "prices and positions".into(),
            left: close.len(),
            right: target.len(),
        });
    }
    if let Some(i) = close.iter().position(|c| !(c.is_finite() && *c > 0.0)) {
        return Err(EvalError::InvalidInput(format!("price at row {i} is {}: expected a positive number", close[i])));
    }
    if let Some(i) = target.iter().position(|t| !t.is_finite() || t.abs() > 1.0) {
        return Err(EvalError::InvalidInput(format!("position at row {i} is {}: expected −1 … 1", target[i])));
    }
    if !(costs.fee_bps >= 0.0 && costs.slippage_bps >= 0.0) {
        return Err(EvalError::InvalidInput("costs must be ≥ 0 basis points".into()));
    }
    let fee = costs.fee_bps * 1e-4;
    let slip = costs.slippage_bps * 1e-4;
    let n = close.len();
    let (mut cash, mut units) = (1.0_f64, 0.0_f64);
    let mut equity = Vec::with_capacity(n);
    let mut returns = Vec::with_capacity(n);
    let mut exposure = Vec::with_capacity(n);
    let mut trades: Vec<Trade> = Vec::new();
    let mut open: Option<(usize, f64, f64)> = None; // entry row, side, equity before entry
    let (mut turnover, mut fees_paid) = (0.0, 0.0);
    let mut previous_target = 0.0;
    let mut previous_equity = 1.0;
    for i in 0..n {
        let c = close[i];
        let before = cash + units * c;
        if target[i] != previous_target {
            let mut delta = target[i] * before / c - units;
            if delta > 0.0 {
                let price = c * (1.0 + slip);
                let needed = delta * price * (1.0 + fee);
                if needed > cash * (1.0 + 1e-12) {
                    delta = (cash / (1.0 + fee) / price).max(0.0);
                }
                let value = delta * price;
                cash -= value * (1.0 + fee);
                fees_paid += value * fee;
                turnover += value / before;
                units += delta;
            } else if delta < 0.0 {
                let price = c * (1.0 - slip);
                let value = -delta * price;
                cash += value * (1.0 - fee);
                fees_paid += value * fee;
                turnover += value / before;
                units += delta;
            }
            previous_target = target[i];
        }
        let now = cash + units * c;
        let side = if units > 0.0 {
            1.0
        } else if units < 0.0 {
            -1.0
        } else {
            0.0
        };
        // Trades: a run of holdings on one side.
        if let Some((entry, open_side, start_equity)) = open {
            if side != open_side {
                trades.push(Trade { entry_row: entry, exit_row: Some(i), side: open_side, pnl: now - start_equity });
                open = None;
            }
        }
        if open.is_none() && side != 0.0 {
            // A reversal's entry shares the exit's bar: count it from the equity after that bar.
            let start = if trades.last().is_some_and(|t| t.exit_row == Some(i)) { now } else { before };
            open = Some((i, side, start));
        }
        equity.push(now);
        returns.push(now / previous_equity - 1.0);
        exposure.push(units * c / now);
        previous_equity = now;
    }
    if let Some((entry, side, start)) = open {
        trades.push(Trade { entry_row: entry, exit_row: None, side, pnl: equity[n - 1] - start });
    }
    Ok(Backtest { equity, returns, exposure, trades, turnover, fees_paid })
}

/// Performance statistics of a return series, with vectorbt's conventions: Sharpe and Sortino use the
/// per-bar mean over the sample standard deviation (Sortino: root-mean-square of the negative returns,
/// all bars counted), scaled by √(bars per year); drawdowns are measured from a starting equity of 1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Performance {
    pub bars: usize,
    pub total_return: f64,
    pub annualized_return: f64,
    pub annualized_volatility: f64,
    pub sharpe: f64,
    pub sortino: f64,
    /// Largest fall from a peak, as a positive fraction (0.25 = 25 %).
    pub max_drawdown: f64,
    pub calmar: f64,
    pub trades: usize,
    /// Share of closed and open trades with a positive result.
    pub win_rate: f64,
    /// Gains of winning trades over losses of losing ones.
    pub profit_factor: f64,
    /// Traded value over equity, per year.
    pub turnover_per_year: f64,
    /// Share of bars holding a position.
    pub exposure: f64,
    pub fees_paid: f64,
    /// Share of candidate signals the model let through (gating), when there were candidates.
    pub approval_rate: Option<f64>,
}

pub fn performance(returns: &[f64], periods_per_year: f64) -> Performance {
    let n = returns.len();
    let mut growth = 1.0;
    let mut peak = 1.0_f64;
    let mut max_drawdown = 0.0_f64;
    for r in returns {
        growth *= 1.0 + r;
        peak = peak.max(growth);
        max_drawdown = max_drawdown.max(1.0 - growth / peak);
    }
    let m = mean(returns);
    let sd = std_dev(returns);
    let downside = (returns.iter().map(|r| r.min(0.0).powi(2)).sum::<f64>() / n as f64).sqrt();
    let annualized_return = growth.powf(periods_per_year / n as f64) - 1.0;
    Performance {
        bars: n,
        total_return: growth - 1.0,
        annualized_return,
        annualized_volatility: sd * periods_per_year.sqrt(),
        sharpe: m / sd * periods_per_year.sqrt(),
        sortino: m / downside * periods_per_year.sqrt(),
        max_drawdown,
        calmar: annualized_return / max_drawdown,
        trades: 0,
        win_rate: f64::NAN,
        profit_factor: f64::NAN,
        turnover_per_year: f64::NAN,
        exposure: f64::NAN,
        fees_paid: 0.0,
        approval_rate: None,
    }
}

impl Backtest {
    pub fn performance(&self, periods_per_year: f64) -> Performance {
        let mut p = performance(&self.returns, periods_per_year);
        let wins: Vec<f64> = self.trades.iter().map(|t| t.pnl).filter(|&x| x > 0.0).collect();
        let losses: f64 = self.trades.iter().map(|t| t.pnl).filter(|&x| x < 0.0).sum();
        p.trades = self.trades.len();
        p.win_rate = if self.trades.is_empty() { f64::NAN } else { wins.len() as f64 / self.trades.len() as f64 };
        // `0.0 +` because an empty float sum is −0.0.
        p.profit_factor = (0.0 + wins.iter().sum::<f64>()) / -losses;
        let years = self.returns.len() as f64 / periods_per_year;
        p.turnover_per_year = self.turnover / years;
        p.exposure = self.exposure.iter().filter(|&&x| x != 0.0).count() as f64 / self.exposure.len().max(1) as f64;
        p.fees_paid = self.fees_paid;
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_round_trip_with_costs() {
        // Buy at 100 with 10 bp fee, hold through 110, sell at 121.
        let close = [100.0, 110.0, 121.0];
        let bt = simulate(&close, &[1.0, 1.0, 0.0], Costs { fee_bps: 10.0, slippage_bps: 0.0 }).unwrap();
        let units = 1.0 / 1.001 / 100.0;
        let after_sell = units * 121.0 * 0.999;
        assert!((bt.equity[2] - after_sell).abs() < 1e-15);
        assert!((bt.equity[1] - units * 110.0).abs() < 1e-15);
        assert_eq!(bt.trades.len(), 1);
        assert!((bt.trades[0].pnl - (after_sell - 1.0)).abs() < 1e-15);
        let perf = bt.performance(252.0);
        assert_eq!(perf.max_drawdown, 1.0 - units * 100.0); // the entry fee is the only fall
        assert_eq!(perf.win_rate, 1.0);
    }

    #[test]
    fn gating_counts_approvals() {
        let rule = PositionRule { long_above: 0.6, short_below: None, size_by_confidence: false };
        let (pos, rate) = rule.positions(&[0.7, 0.5, 0.9, 0.1], Some(&[1.0, -1.0, -1.0, 0.0])).unwrap();
        assert_eq!(pos, vec![1.0, 0.0, -1.0, 0.0]);
        assert!((rate - 2.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn bad_prices_are_named() {
        let err = simulate(&[1.0, f64::NAN], &[0.0, 0.0], Costs::default()).unwrap_err();
        assert!(err.to_string().contains("row 1"), "{err}");
    }
}
