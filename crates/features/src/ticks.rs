//! Features from trades and order books. Like the bar kernels they are streaming and causal: the
//! value at a trade (or snapshot) uses only that event and earlier ones.

use std::collections::VecDeque;

use crate::FeatureFrame;

/// Per-trade features over the last `window` trades. Columns:
/// - `tick_ratio_W`: upticks / (upticks + downticks) by the tick rule (zero ticks ignored);
/// - `vwap_dist_W`: (price − VWAP of the window) / σ of the window's prices;
/// - `buy_share_W`: share of quantity bought by aggressors (side +1), where sides are known.
pub fn trade_features(ts: &[i64], price: &[f64], qty: &[f64], side: &[f64], window: usize) -> FeatureFrame {
    let n = ts.len();
    let mut ticks: VecDeque<i8> = VecDeque::with_capacity(window + 1);
    let mut trades: VecDeque<(f64, f64, f64)> = VecDeque::with_capacity(window + 1);
    let (mut up, mut down) = (0usize, 0usize);
    let mut cols = vec![Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n)];
    for i in 0..n {
        let tick = if i == 0 {
            0
        } else if price[i] > price[i - 1] {
            1
        } else if price[i] < price[i - 1] {
            -1
        } else {
            0
        };
        ticks.push_back(tick);
        match tick {
            1 => up += 1,
            -1 => down += 1,
            _ => {}
        }
        if ticks.len() > window {
            match ticks.pop_front() {
                Some(1) => up -= 1,
                Some(-1) => down -= 1,
                _ => {}
            }
        }
        trades.push_back((price[i], qty[i], side[i]));
        if trades.len() > window {
            trades.pop_front();
        }
        let full = trades.len() == window;
        cols[0].push(if full && up + down > 0 { up as f64 / (up + down) as f64 } else { f64::NAN });
        let (pv, v) = trades.iter().fold((0.0, 0.0), |a, t| (a.0 + t.0 * t.1, a.1 + t.1));
        let mean = trades.iter().map(|t| t.0).sum::<f64>() / trades.len() as f64;
        let sd = (trades.iter().map(|t| (t.0 - mean) * (t.0 - mean)).sum::<f64>() / trades.len() as f64).sqrt();
        cols[1].push(if full && v > 0.0 && sd > 0.0 { (price[i] - pv / v) / sd } else { f64::NAN });
        let (bought, known) = trades
            .iter()
            .filter(|t| t.2 != 0.0)
            .fold((0.0, 0.0), |a, t| (a.0 + if t.2 > 0.0 { t.1 } else { 0.0 }, a.1 + t.1));
        cols[2].push(if full && known > 0.0 { bought / known } else { f64::NAN });
    }
    FeatureFrame {
        ts: ts.to_vec(),
        names: vec![format!("tick_ratio_{window}"), format!("vwap_dist_{window}"), format!("buy_share_{window}")],
        columns: cols,
    }
}

/// Depth ratio per book snapshot: bid size / (bid + ask size) over the top `levels` levels
/// (row-major `depth` levels per snapshot; absent levels, NaN, count as empty).
pub fn depth_ratio(bid_sz: &[f64], ask_sz: &[f64], depth: usize, levels: usize) -> Vec<f64> {
    let rows = bid_sz.len().checked_div(depth).unwrap_or(0);
    let take = levels.min(depth);
    (0..rows)
        .map(|i| {
            let sum = |v: &[f64]| v[i * depth..i * depth + take].iter().filter(|x| x.is_finite()).sum::<f64>();
            let (b, a) = (sum(bid_sz), sum(ask_sz));
            if b + a > 0.0 {
                b / (b + a)
            } else {
                f64::NAN
            }
        })
        .collect()
}

/// For each trade, the distance of its price from the mid of the latest quote at or before it, in
/// units of σ of the last `window` mids. `quote_ts` must be sorted.
pub fn mid_distance(
    trade_ts: &[i64],
    price: &[f64],
    quote_ts: &[i64],
    bid: &[f64],
    ask: &[f64],
    window: usize,
) -> Vec<f64> {
    let mut mids: VecDeque<f64> = VecDeque::with_capacity(window + 1);
    let mut q = 0;
    let mut out = Vec::with_capacity(trade_ts.len());
    for (i, &t) in trade_ts.iter().enumerate() {
        while q < quote_ts.len() && quote_ts[q] <= t {
            mids.push_back((bid[q] + ask[q]) / 2.0);
            if mids.len() > window {
                mids.pop_front();
            }
            q += 1;
        }
        if mids.len() < window {
            out.push(f64::NAN);
            continue;
        }
        let mid = *mids.back().unwrap_or(&f64::NAN);
        let mean = mids.iter().sum::<f64>() / window as f64;
        let sd = (mids.iter().map(|m| (m - mean) * (m - mean)).sum::<f64>() / window as f64).sqrt();
        out.push(if sd > 0.0 { (price[i] - mid) / sd } else { f64::NAN });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_ratio_vwap_and_buy_share() {
        // Prices 10, 11, 11, 10, 12 (ticks: −, up, zero, down, up); window 4.
        let ts = [1, 2, 3, 4, 5];
        let price = [10.0, 11.0, 11.0, 10.0, 12.0];
        let qty = [1.0, 1.0, 2.0, 1.0, 4.0];
        let side = [1.0, 1.0, -1.0, 0.0, 1.0];
        let f = trade_features(&ts, &price, &qty, &side, 4);
        assert!(f.columns[0][2].is_nan(), "window not full");
        // Last 4 ticks: up, zero, down, up → 2 / 3.
        assert!((f.columns[0][4] - 2.0 / 3.0).abs() < 1e-15);
        // Window trades 11×1, 11×2, 10×1, 12×4: VWAP 91/8; prices mean 11, σ sqrt(0.5).
        assert!((f.columns[1][4] - (12.0 - 91.0 / 8.0) / 0.5f64.sqrt()).abs() < 1e-12);
        // Known sides: 1 (buy) + 2 (sell) + 4 (buy) → 5 / 7.
        assert!((f.columns[2][4] - 5.0 / 7.0).abs() < 1e-15);
    }

    #[test]
    fn depth_ratio_and_mid_distance() {
        let bid = [1.0, 2.0, f64::NAN, 3.0, 1.0, 1.0];
        let ask = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        assert_eq!(depth_ratio(&bid, &ask, 3, 2), vec![3.0 / 5.0, 4.0 / 6.0]);
        // Mids 10, 12 (σ 1); a trade at 13 after the second quote is 1 σ above the mid 12.
        let d = mid_distance(&[5, 15], &[13.0, 13.0], &[0, 10], &[9.0, 11.0], &[11.0, 13.0], 2);
        assert!(d[0].is_nan());
        assert_eq!(d[1], 1.0);
    }
}
