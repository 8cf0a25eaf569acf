//! Cross-sectional runs (`data.symbols`): many symbols' bars side by side, one dataset row per symbol
//! and date. The symbols' bars are concatenated (each symbol a contiguous block, so bar indices stay
//! global); features and labels are computed per symbol by the same code as a single-series run;
//! targets can be made relative across the symbols of each date; the backtest trades a long-short
//! portfolio of each rebalance date's top and bottom predictions.

use std::collections::BTreeMap;
use std::path::Path;

use quantpipe_core::{Bars, MarketCalendar, Symbol, Timeframe};
use quantpipe_data::quality::{validate, Action, Policy};
use quantpipe_data::read::{read_bars, ReadOptions};
use quantpipe_data::store::content_hash;
use quantpipe_data::BarStore;
use quantpipe_eval::backtest::{performance, Performance};
use quantpipe_labels::Labels;

use crate::config::{CrossSectionConfig, FeatureScaling, LoadedConfig, Relative, Universe, DEFAULT_MIN_BARS};
use crate::run::DataSummary;
use crate::PipelineError;

/// The symbols of a cross-sectional run and where each one's bars lie in the concatenated bars.
#[derive(Debug, Clone)]
pub struct Panel {
    pub symbols: Vec<String>,
    /// Symbol `s` owns bars `offsets[s]..offsets[s + 1]`.
    pub offsets: Vec<usize>,
    pub config: CrossSectionConfig,
    /// Each model target's values before they were made relative, per dataset row (for the IC
    /// against the real forward values).
    pub raw_targets: BTreeMap<String, Vec<f64>>,
}

impl Panel {
    /// The symbol index owning concatenated bar `bar`.
    pub fn symbol_of(&self, bar: usize) -> usize {
        self.offsets.partition_point(|&o| o <= bar) - 1
    }
}

/// The series of a cross-sectional run, read and validated, clipped to `[from, until)`, with the
/// symbols shorter than `data.min_bars` left out (each named in a warning).
pub struct PanelData {
    pub series: Vec<(String, Bars)>,
    pub timeframe: Timeframe,
    pub calendar: MarketCalendar,
    pub summary: DataSummary,
    pub warnings: Vec<String>,
}

fn clip(bars: Bars, from: Option<i64>, until: Option<i64>) -> Bars {
    if from.is_none() && until.is_none() {
        return bars;
    }
    let keep: Vec<usize> = (0..bars.len())
        .filter(|&i| from.is_none_or(|f| bars.ts[i] >= f) && until.is_none_or(|u| bars.ts[i] < u))
        .collect();
    bars.select(&keep)
}

pub fn load_panel(
    loaded: &LoadedConfig,
    home: &Path,
    from: Option<i64>,
    until: Option<i64>,
) -> Result<PanelData, PipelineError> {
    let data = &loaded.config.data;
    let fail = |m: String| PipelineError::stage("data", m);
    let universe = data.symbols.as_ref().expect("a panel run has data.symbols");
    let min_bars = data.min_bars.unwrap_or(DEFAULT_MIN_BARS);
    let calendar = data.calendar.as_deref().map(MarketCalendar::parse).transpose().map_err(|e| fail(e.to_string()))?;
    let wanted_tf = data.timeframe.as_deref().map(Timeframe::parse).transpose().map_err(|e| fail(e.to_string()))?;
    let wanted = |symbol: &str| match universe {
        Universe::All => true,
        Universe::List(list) => list.iter().any(|s| s == symbol),
    };
    let missing = |found: &[String]| -> Result<(), PipelineError> {
        if let Universe::List(list) = universe {
            let absent: Vec<&str> = list.iter().filter(|s| !found.contains(s)).map(|s| s.as_str()).collect();
            if !absent.is_empty() {
                return Err(fail(format!("data.symbols: not found: {}", absent.join(", "))));
            }
        }
        Ok(())
    };
    let mut warnings = Vec::new();
    let mut short = Vec::new();
    let mut series: Vec<(String, Bars)> = Vec::new();
    let mut hashes = String::new();
    let (source, timeframe, calendar, quality, findings) = match &data.file {
        Some(file) => {
            let path = loaded.resolve(file)?;
            let read = read_bars(&path, &ReadOptions::default()).map_err(|e| fail(e.to_string()))?;
            let names: Vec<String> = read.series.iter().map(|s| s.symbol.to_string()).collect();
            missing(&names)?;
            // One timeframe for the whole file unless the config names it (as `quantpipe ingest`).
            let common =
                quantpipe_data::quality::infer_common_timeframe(read.series.iter().map(|s| s.bars.ts.as_slice()));
            let policy = Policy {
                calendar,
                timeframe: wanted_tf.or(common),
                repair: data.repair,
                on_conflict: data.on_conflict,
                ..Policy::default()
            };
            let mut fatal = Vec::new();
            let mut totals: BTreeMap<&'static str, (u64, String)> = BTreeMap::new();
            let (mut score_sum, mut rows_sum) = (0.0, 0.0);
            let mut timeframe: Option<Timeframe> = None;
            let mut calendar_seen = calendar;
            for raw in read.series.into_iter().filter(|s| wanted(s.symbol.as_str())) {
                let symbol = raw.symbol.to_string();
                // Too short to hold a dataset row: not worth validating (a 2-row series has no
                // timeframe to infer).
                if raw.bars.len() < min_bars {
                    short.push(format!("{symbol} ({})", raw.bars.len()));
                    continue;
                }
                let v = match validate(raw, &policy) {
                    Ok(v) => v,
                    Err(m) => {
                        fatal.push(format!("{symbol}: {m}"));
                        continue;
                    }
                };
                let report = &v.report;
                let bad: Vec<String> = report.fatal().map(|c| format!("{} {}", c.count, c.kind.label())).collect();
                if !bad.is_empty() {
                    fatal.push(format!("{symbol}: {}", bad.join("; ")));
                    continue;
                }
                match timeframe {
                    None => timeframe = Some(v.timeframe),
                    Some(tf) if tf != v.timeframe => {
                        fatal.push(format!("{symbol}: its bars are {}, the others' {tf}", v.timeframe));
                        continue;
                    }
                    _ => {}
                }
                calendar_seen.get_or_insert(report.calendar);
                for c in report.checks.iter().filter(|c| c.count > 0) {
                    let action = match &c.action {
                        Action::None | Action::Flagged => "flagged".to_string(),
                        Action::Repaired { rule } => format!("repaired: {rule}"),
                        Action::Fatal { .. } => "fatal".to_string(),
                    };
                    let entry = totals.entry(c.kind.label()).or_insert((0, action));
                    entry.0 += c.count;
                }
                let bars = clip(v.bars, from, until);
                if bars.len() < min_bars {
                    short.push(format!("{symbol} ({})", bars.len()));
                    continue;
                }
                score_sum += report.score * bars.len() as f64;
                rows_sum += bars.len() as f64;
                series.push((symbol, bars));
            }
            if !fatal.is_empty() {
                let n = fatal.len();
                let shown: Vec<String> = fatal.into_iter().take(10).collect();
                return Err(fail(format!(
                    "{}: refused: {n} symbol(s) with fatal problems: {}{} (data.repair = true, with \
                     data.on_conflict for conflicting duplicates, repairs what the rules allow; \
                     `quantpipe ingest` shows the full report)",
                    path.display(),
                    shown.join("; "),
                    if n > 10 { format!("; … and {} more", n - 10) } else { String::new() }
                )));
            }
            let findings: Vec<String> = totals
                .into_iter()
                .map(|(label, (count, action))| format!("{label}: {count} over all symbols ({action})"))
                .collect();
            let tf = timeframe.ok_or_else(|| fail(format!("{}: no symbol has {min_bars} bars", path.display())))?;
            let calendar = calendar_seen.unwrap_or(MarketCalendar::Crypto);
            let quality = if rows_sum > 0.0 { score_sum / rows_sum } else { 0.0 };
            (path.display().to_string(), tf, calendar, quality, findings)
        }
        None => {
            let tf = wanted_tf.ok_or_else(|| fail("data.timeframe is needed for stored series".into()))?;
            let store = BarStore::open(home).map_err(|e| fail(e.to_string()))?;
            let mut metas: Vec<_> = store
                .list()
                .map_err(|e| fail(e.to_string()))?
                .into_iter()
                .filter(|m| m.timeframe == tf.to_string() && wanted(m.symbol.as_str()))
                .collect();
            metas.sort_by(|a, b| a.symbol.as_str().cmp(b.symbol.as_str()));
            let names: Vec<String> = metas.iter().map(|m| m.symbol.to_string()).collect();
            missing(&names)?;
            let (mut score_sum, mut rows_sum) = (0.0, 0.0);
            let mut calendar_seen = calendar;
            for meta in metas {
                let symbol = Symbol::new(meta.symbol.as_str()).map_err(|e| fail(e.to_string()))?;
                let (meta, bars) = store.load(&symbol, tf).map_err(|e| fail(e.to_string()))?;
                calendar_seen.get_or_insert(meta.calendar);
                let bars = clip(bars, from, until);
                if bars.len() < min_bars {
                    short.push(format!("{symbol} ({})", bars.len()));
                    continue;
                }
                score_sum += meta.quality_score * bars.len() as f64;
                rows_sum += bars.len() as f64;
                series.push((symbol.to_string(), bars));
            }
            let quality = if rows_sum > 0.0 { score_sum / rows_sum } else { 0.0 };
            (
                format!("bar store {} ({tf})", home.display()),
                tf,
                calendar_seen.unwrap_or(MarketCalendar::Crypto),
                quality,
                Vec::new(),
            )
        }
    };
    if !short.is_empty() {
        warnings.push(format!(
            "{} symbol(s) with fewer than {min_bars} bars (data.min_bars) left out: {}",
            short.len(),
            short.join(", ")
        ));
    }
    if series.len() < 2 {
        return Err(fail(format!(
            "a cross-sectional run needs at least two symbols with {min_bars} bars or more; {} found",
            series.len()
        )));
    }
    for (symbol, bars) in &series {
        hashes.push_str(&format!("{symbol}\t{}\n", content_hash(bars)));
    }
    let first = series.iter().map(|(_, b)| b.ts[0]).min().expect("non-empty");
    let last = series.iter().map(|(_, b)| *b.ts.last().expect("non-empty")).max().expect("non-empty");
    let rows = series.iter().map(|(_, b)| b.len()).sum();
    let summary = DataSummary {
        source,
        symbol: format!("{} symbols", series.len()),
        timeframe: timeframe.to_string(),
        calendar: calendar.name().to_string(),
        rows,
        first: quantpipe_core::time::format_iso(first),
        last: quantpipe_core::time::format_iso(last),
        quality_score: quality,
        findings: findings.clone(),
        dataset_hash: blake3::hash(hashes.as_bytes()).to_hex().to_string(),
    };
    warnings.extend(findings);
    Ok(PanelData { series, timeframe, calendar, summary, warnings })
}

/// The symbols' bars one after another, and each one's offset (plus the total at the end).
pub fn concat_bars(series: &[(String, Bars)]) -> Result<(Bars, Vec<usize>), PipelineError> {
    let layout = series[0].1.extra_layout();
    let total = series.iter().map(|(_, b)| b.len()).sum();
    let mut out = Bars::with_capacity(total, &layout);
    let mut offsets = Vec::with_capacity(series.len() + 1);
    for (symbol, bars) in series {
        if bars.extra_layout() != layout {
            return Err(PipelineError::stage(
                "data",
                format!("{symbol}: its extra columns differ from {}'s; the symbols must share one layout", series[0].0),
            ));
        }
        offsets.push(out.len());
        for i in 0..bars.len() {
            out.push_row_from(bars, i);
        }
    }
    offsets.push(out.len());
    Ok((out, offsets))
}

/// Per-symbol labels as one: bar indices shifted by each symbol's offset, columns joined.
pub fn concat_labels(parts: Vec<Labels>, offsets: &[usize]) -> Labels {
    let mut parts = parts.into_iter().enumerate();
    let (_, mut out) = parts.next().expect("at least one symbol");
    for (s, part) in parts {
        let shift = offsets[s];
        out.row.extend(part.row.iter().map(|r| r + shift));
        out.end_row.extend(part.end_row.iter().map(|r| r + shift));
        out.ts.extend(part.ts);
        out.end_ts.extend(part.end_ts);
        for ((name, column), (other, values)) in out.columns.iter_mut().zip(part.columns) {
            debug_assert_eq!(*name, other);
            column.extend(values);
        }
        out.dropped.incomplete_window += part.dropped.incomplete_window;
        out.dropped.warm_up += part.dropped.warm_up;
        out.dropped.dead_zone += part.dropped.dead_zone;
        out.dropped.no_event += part.dropped.no_event;
    }
    out
}

/// Calls `f` on each run of equal dates (`dates` non-decreasing).
fn for_each_date(values: &mut [f64], dates: &[i64], mut f: impl FnMut(&mut [f64])) {
    let mut start = 0;
    while start < values.len() {
        let mut end = start;
        while end < values.len() && dates[end] == dates[start] {
            end += 1;
        }
        f(&mut values[start..end]);
        start = end;
    }
}

/// Average rank of each finite value among the finite ones, scaled to [0, 1] (ties share their
/// rank; a lone value gets 0.5); non-finite values stay as they are.
fn rank_in_place(group: &mut [f64]) {
    let mut order: Vec<usize> = (0..group.len()).filter(|&k| group[k].is_finite()).collect();
    order.sort_by(|&a, &b| group[a].total_cmp(&group[b]));
    let n = order.len();
    let mut ranks = vec![0.5; n];
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && group[order[j + 1]] == group[order[i]] {
            j += 1;
        }
        if n > 1 {
            ranks[i..=j].fill((i + j) as f64 / 2.0 / (n - 1) as f64);
        }
        i = j + 1;
    }
    for (&k, rank) in order.iter().zip(ranks) {
        group[k] = rank;
    }
}

/// (x − mean) / population σ over the finite values (0 when σ = 0); non-finite values stay.
fn zscore_in_place(group: &mut [f64]) {
    let finite: Vec<f64> = group.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return;
    }
    let n = finite.len() as f64;
    let mean = finite.iter().sum::<f64>() / n;
    let sd = (finite.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt();
    for v in group.iter_mut().filter(|v| v.is_finite()) {
        *v = if sd > 0.0 { (*v - mean) / sd } else { 0.0 };
    }
}

/// Makes `values` relative across the rows of each date (`dates` non-decreasing): the date's
/// average rank scaled to [0, 1] (ties share their rank), or minus the date's mean.
pub fn make_relative(values: &mut [f64], dates: &[i64], mode: Relative) {
    match mode {
        Relative::None => {}
        Relative::Rank => for_each_date(values, dates, rank_in_place),
        Relative::Demean => for_each_date(values, dates, |group| {
            let mean = group.iter().sum::<f64>() / group.len() as f64;
            group.iter_mut().for_each(|v| *v -= mean);
        }),
    }
}

/// Replaces every feature of the row-major `x` (`d` columns, rows in date order) by its rank or
/// z-score across the rows of its date, and names the columns accordingly: `cs_rank(rsi_14)`.
pub fn scale_features(x: &mut [f64], d: usize, dates: &[i64], scaling: FeatureScaling, names: &mut [String]) {
    let transform: fn(&mut [f64]) = match scaling {
        FeatureScaling::Raw => return,
        FeatureScaling::Rank => rank_in_place,
        FeatureScaling::Zscore => zscore_in_place,
    };
    let mut column = vec![0.0; dates.len()];
    for j in 0..d {
        for (c, row) in column.iter_mut().zip(x.chunks_exact(d)) {
            *c = row[j];
        }
        for_each_date(&mut column, dates, transform);
        for (c, row) in column.iter().zip(x.chunks_exact_mut(d)) {
            row[j] = *c;
        }
    }
    let prefix = if scaling == FeatureScaling::Rank { "cs_rank" } else { "cs_z" };
    for name in names.iter_mut() {
        *name = format!("{prefix}({name})");
    }
}

/// A long-short backtest over the panel's dates, and each predicted row's position.
pub struct LongShort {
    pub dates: Vec<i64>,
    pub returns: Vec<f64>,
    pub equity: Vec<f64>,
    /// The equal-weight portfolio of every symbol predicted on each rebalance date, same schedule and costs.
    pub benchmark_returns: Vec<f64>,
    pub benchmark_equity: Vec<f64>,
    /// Net exposure (long minus short value over equity) held from each date's close.
    pub net_exposure: Vec<f64>,
    pub strategy: Performance,
    pub benchmark: Performance,
    /// Per predicted row: the target weight its symbol got at the last rebalance on or before the
    /// row's date (0: not held), and the symbol's return over the next bar.
    pub rows: Vec<(f64, f64)>,
    pub rebalances: usize,
}

/// One predicted row of a panel: symbol index, date and prediction.
#[derive(Debug, Clone, Copy)]
pub struct Scored {
    pub symbol: usize,
    pub date: i64,
    pub prediction: f64,
}

/// Trades the predictions: on every `rebalance`-th date with at least `min_symbols` predictions,
/// equal weights long the top `quantile` and short the bottom `quantile` (each side 1/k of equity
/// per name, so the book is dollar-neutral at gross 2); between rebalances the holdings drift with
/// prices. Costs are `cost_bps` of the value traded at each rebalance. Returns are close to close
/// from the symbols' bars; a symbol without a bar on a date earns its move on its next bar.
#[allow(clippy::too_many_arguments)]
pub fn long_short(
    bars: &Bars,
    panel: &Panel,
    scored: &[Scored],
    quantile: f64,
    rebalance: usize,
    min_symbols: usize,
    cost_bps: f64,
    periods_per_year: f64,
) -> Result<LongShort, String> {
    let n_symbols = panel.symbols.len();
    // Rebalance dates: every `rebalance`-th date that has enough predictions.
    let mut by_date: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (j, s) in scored.iter().enumerate() {
        by_date.entry(s.date).or_default().push(j);
    }
    let tradable: Vec<i64> = by_date.iter().filter(|(_, rows)| rows.len() >= min_symbols).map(|(&d, _)| d).collect();
    if tradable.is_empty() {
        return Err(format!("no date has predictions for {min_symbols} symbols (cross_section.min_symbols)"));
    }
    let rebalance_dates: Vec<i64> = tradable.iter().step_by(rebalance).copied().collect();
    let (first, last) = (tradable[0], *by_date.keys().next_back().expect("non-empty"));
    // Every date any symbol has a bar on, within the traded span.
    let mut dates: Vec<i64> = bars.ts.iter().copied().filter(|&t| t >= first && t <= last).collect();
    dates.sort_unstable();
    dates.dedup();
    let index_of = |t: i64| dates.binary_search(&t).expect("a bar date");
    // Close-to-close return of each symbol on each date (0 where it has no bar that date).
    let mut moves = vec![0.0; n_symbols * dates.len()];
    for s in 0..n_symbols {
        let (lo, hi) = (panel.offsets[s], panel.offsets[s + 1]);
        for b in lo + 1..hi {
            let t = bars.ts[b];
            if t < first || t > last {
                continue;
            }
            let previous = bars.close[b - 1];
            if previous > 0.0 {
                moves[s * dates.len() + index_of(t)] = bars.close[b] / previous - 1.0;
            }
        }
    }
    let cost = cost_bps / 1e4;
    let mut targets_at: BTreeMap<i64, Vec<(usize, f64)>> = BTreeMap::new();
    let mut benchmark_at: BTreeMap<i64, Vec<(usize, f64)>> = BTreeMap::new();
    for &d in &rebalance_dates {
        let rows = &by_date[&d];
        let mut ranked: Vec<&Scored> = rows.iter().map(|&j| &scored[j]).collect();
        ranked.sort_by(|a, b| a.prediction.total_cmp(&b.prediction).then(a.symbol.cmp(&b.symbol)));
        let k = ((ranked.len() as f64 * quantile).floor() as usize).max(1);
        let w = 1.0 / k as f64;
        let mut targets: Vec<(usize, f64)> = ranked[..k].iter().map(|s| (s.symbol, -w)).collect();
        targets.extend(ranked[ranked.len() - k..].iter().map(|s| (s.symbol, w)));
        targets_at.insert(d, targets);
        let equal = 1.0 / ranked.len() as f64;
        benchmark_at.insert(d, ranked.iter().map(|s| (s.symbol, equal)).collect());
    }
    let simulate = |targets_at: &BTreeMap<i64, Vec<(usize, f64)>>| {
        let mut holdings = vec![0.0; n_symbols]; // value held, in units of starting equity
        let mut equity = 1.0;
        let (mut returns, mut curve, mut exposure) = (Vec::new(), Vec::new(), Vec::new());
        let mut traded = 0.0;
        let mut fees = 0.0;
        for (t, &date) in dates.iter().enumerate() {
            let mut pnl = 0.0;
            if t > 0 {
                for (s, h) in holdings.iter_mut().enumerate() {
                    if *h != 0.0 {
                        let r = moves[s * dates.len() + t];
                        pnl += *h * r;
                        *h *= 1.0 + r;
                    }
                }
            }
            let before = equity;
            equity += pnl;
            if let Some(targets) = targets_at.get(&date) {
                let mut wanted = vec![0.0; n_symbols];
                for &(s, w) in targets {
                    wanted[s] = w * equity;
                }
                let turnover: f64 = wanted.iter().zip(&holdings).map(|(a, b)| (a - b).abs()).sum();
                let fee = turnover * cost;
                traded += turnover;
                fees += fee;
                equity -= fee;
                holdings = wanted;
            }
            // The first date's return is its entry cost, so that returns compound to the equity curve.
            returns.push(equity / before - 1.0);
            curve.push(equity);
            exposure.push(holdings.iter().sum::<f64>() / equity);
        }
        (returns, curve, exposure, traded, fees)
    };
    let (returns, equity, net_exposure, traded, fees) = simulate(&targets_at);
    let (benchmark_returns, benchmark_equity, _, bench_traded, bench_fees) = simulate(&benchmark_at);
    let years = returns.len() as f64 / periods_per_year;
    let mut strategy = performance(&returns, periods_per_year);
    strategy.turnover_per_year = traded / years;
    strategy.fees_paid = fees;
    strategy.exposure = 1.0;
    let mut benchmark = performance(&benchmark_returns, periods_per_year);
    benchmark.turnover_per_year = bench_traded / years;
    benchmark.fees_paid = bench_fees;
    benchmark.exposure = 1.0;
    // Positions taken per rebalance: held through the next rebalance; a position is a "trade".
    let mut wins = 0usize;
    let mut positions = 0usize;
    let (mut gains, mut losses) = (0.0, 0.0);
    for (r, &d) in rebalance_dates.iter().enumerate() {
        let (from, to) = (index_of(d), rebalance_dates.get(r + 1).map_or(dates.len() - 1, |&n| index_of(n)));
        for &(s, w) in &targets_at[&d] {
            let growth: f64 = (from + 1..=to).map(|t| 1.0 + moves[s * dates.len() + t]).product();
            let result = w * (growth - 1.0);
            positions += 1;
            if result > 0.0 {
                wins += 1;
                gains += result;
            } else {
                losses -= result;
            }
        }
    }
    strategy.trades = positions;
    strategy.win_rate = if positions > 0 { wins as f64 / positions as f64 } else { f64::NAN };
    strategy.profit_factor = gains / losses;
    // Each row's position (the weight its symbol got at the last rebalance on or before its date).
    let rows = scored
        .iter()
        .map(|s| {
            let held = rebalance_dates.partition_point(|&d| d <= s.date).checked_sub(1);
            let weight = held
                .and_then(|r| targets_at[&rebalance_dates[r]].iter().find(|(sym, _)| *sym == s.symbol))
                .map_or(0.0, |&(_, w)| w);
            let t = index_of(s.date);
            let next = if t + 1 < dates.len() { moves[s.symbol * dates.len() + t + 1] } else { f64::NAN };
            (weight, next)
        })
        .collect();
    Ok(LongShort {
        dates,
        returns,
        equity,
        benchmark_returns,
        benchmark_equity,
        net_exposure,
        strategy,
        benchmark,
        rows,
        rebalances: rebalance_dates.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars_of(series: &[(&str, &[(i64, f64)])]) -> (Bars, Panel) {
        let owned: Vec<(String, Bars)> = series
            .iter()
            .map(|(name, rows)| {
                let mut b = Bars::with_capacity(rows.len(), &[]);
                for &(t, c) in rows.iter() {
                    b.ts.push(t);
                    b.open.push(c);
                    b.high.push(c);
                    b.low.push(c);
                    b.close.push(c);
                    b.volume.push(1.0);
                }
                (name.to_string(), b)
            })
            .collect();
        let (bars, offsets) = concat_bars(&owned).unwrap();
        let panel = Panel {
            symbols: owned.iter().map(|(n, _)| n.clone()).collect(),
            offsets,
            config: CrossSectionConfig::default(),
            raw_targets: BTreeMap::new(),
        };
        (bars, panel)
    }

    #[test]
    fn ranks_and_demeaning_use_only_their_own_date() {
        let dates = [1, 1, 1, 2, 2];
        let mut v = [0.3, -0.1, 0.3, 5.0, 7.0];
        make_relative(&mut v, &dates, Relative::Rank);
        assert_eq!(v, [0.75, 0.0, 0.75, 0.0, 1.0]);
        let mut v = [1.0, 2.0, 3.0, 5.0, 7.0];
        make_relative(&mut v, &dates, Relative::Demean);
        assert_eq!(v, [-1.0, 0.0, 1.0, -1.0, 1.0]);
    }

    #[test]
    fn features_scale_within_their_date_and_keep_missing_values() {
        // Two columns, dates 1 (three rows) and 2 (two rows).
        let mut x = vec![3.0, 10.0, 1.0, f64::NAN, 2.0, 30.0, 5.0, 7.0, 5.0, 9.0];
        let dates = [1, 1, 1, 2, 2];
        let mut names = vec!["a".to_string(), "b".to_string()];
        scale_features(&mut x, 2, &dates, FeatureScaling::Rank, &mut names);
        assert_eq!(names, ["cs_rank(a)", "cs_rank(b)"]);
        let expected = [1.0, 0.0, 0.0, f64::NAN, 0.5, 1.0, 0.5, 0.0, 0.5, 1.0];
        for (got, want) in x.iter().zip(expected) {
            assert!(got == &want || (got.is_nan() && want.is_nan()), "{x:?}");
        }
        let mut x = vec![1.0, 2.0, 3.0, 4.0, 4.0];
        let mut names = vec!["a".to_string()];
        scale_features(&mut x, 1, &[1, 1, 1, 2, 2], FeatureScaling::Zscore, &mut names);
        let s = (2.0f64 / 3.0).sqrt();
        assert_eq!(x, [-1.0 / s, 0.0, 1.0 / s, 0.0, 0.0]);
        assert_eq!(names, ["cs_z(a)"]);
    }

    #[test]
    fn symbols_map_back_from_concatenated_bars() {
        let (_, panel) = bars_of(&[("A", &[(1, 1.0), (2, 1.0)]), ("B", &[(1, 1.0)]), ("C", &[(1, 1.0), (2, 1.0)])]);
        assert_eq!(panel.offsets, [0, 2, 3, 5]);
        assert_eq!((0..5).map(|b| panel.symbol_of(b)).collect::<Vec<_>>(), [0, 0, 1, 2, 2]);
    }

    /// Four symbols, two dates of predictions, rebalanced on the first: long the best, short the worst.
    /// Hand-computed: day 2 the long (D) gains 10 %, the short (A) loses 5 %, each at ±1/1 of equity.
    #[test]
    fn a_long_short_book_earns_the_spread_minus_costs() {
        let (bars, panel) = bars_of(&[
            ("A", &[(1, 100.0), (2, 95.0), (3, 95.0)]),
            ("B", &[(1, 10.0), (2, 10.0), (3, 11.0)]),
            ("C", &[(1, 10.0), (2, 10.0), (3, 10.0)]),
            ("D", &[(1, 50.0), (2, 55.0), (3, 55.0)]),
        ]);
        let scored: Vec<Scored> = [(0, 0.1), (1, 0.5), (2, 0.4), (3, 0.9)]
            .iter()
            .flat_map(|&(s, p)| {
                [Scored { symbol: s, date: 1, prediction: p }, Scored { symbol: s, date: 2, prediction: p }]
            })
            .collect();
        let ls = long_short(&bars, &panel, &scored, 0.25, 2, 4, 10.0, 252.0).unwrap();
        assert_eq!(ls.dates, [1, 2]);
        assert_eq!(ls.rebalances, 1);
        // Positions are sized on the equity before the entry cost (2 × 1.0 × 10 bp); then +10 % on
        // the long and +5 % on the short, each on 1.0 of value.
        let after_cost = 1.0 - 2.0 * 0.001;
        let day2 = after_cost + 0.10 + 0.05;
        assert!((ls.equity[0] - after_cost).abs() < 1e-15);
        assert!((ls.equity[1] - day2).abs() < 1e-15, "{:?}", ls.equity);
        assert!((ls.returns[0] + 0.002).abs() < 1e-15);
        assert!((ls.returns[1] - (day2 / after_cost - 1.0)).abs() < 1e-15, "{:?}", ls.returns);
        assert_eq!(ls.strategy.trades, 2);
        assert_eq!(ls.strategy.win_rate, 1.0);
        // Equal weight over all four (0.25 each): a 10 bp entry, then (−5 % + 0 + 0 + 10 %) / 4.
        let bench = (1.0 - 0.001) + 0.25 * -0.05 + 0.25 * 0.10;
        assert!((ls.benchmark_equity[1] - bench).abs() < 1e-15);
        // Row positions: A short, D long, B and C not held; the return is the next bar's.
        let row = |s: usize, d: i64| ls.rows[scored.iter().position(|x| x.symbol == s && x.date == d).unwrap()];
        assert_eq!(row(0, 1), (-1.0, 95.0 / 100.0 - 1.0));
        assert_eq!(row(3, 1), (1.0, 55.0 / 50.0 - 1.0));
        assert_eq!(row(1, 1).0, 0.0);
        assert_eq!(row(0, 2).0, -1.0);
        assert!(row(0, 2).1.is_nan());
        assert!((ls.net_exposure[0]).abs() < 1e-15);
    }

    #[test]
    fn too_few_symbols_on_every_date_is_an_error_naming_the_key() {
        let (bars, panel) = bars_of(&[("A", &[(1, 1.0)]), ("B", &[(1, 1.0)])]);
        let scored = [Scored { symbol: 0, date: 1, prediction: 0.0 }, Scored { symbol: 1, date: 1, prediction: 1.0 }];
        let err = long_short(&bars, &panel, &scored, 0.5, 1, 3, 0.0, 252.0).err().unwrap();
        assert!(err.contains("cross_section.min_symbols"), "{err}");
    }
}
