//! Small inline-SVG charts for the report: lines over time or numbers, and bars. Self-contained (no
//! scripts, no fonts beyond the browser's default sans-serif), so the report opens offline.

use std::fmt::Write;

use quantpipe_core::time::{day_of, format_date};

pub const WIDTH: f64 = 820.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 42.0;

pub const PALETTE: [&str; 6] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// One line of a chart.
pub struct Line<'a> {
    pub name: &'a str,
    pub x: &'a [f64],
    pub y: &'a [f64],
    pub color: &'a str,
    /// Draw markers at the points (few points, e.g. a calibration curve).
    pub markers: bool,
    pub dashed: bool,
}

#[derive(Clone, Copy, PartialEq)]
pub enum Axis {
    /// Milliseconds since the epoch, labelled as dates.
    Time,
    Number,
    /// Whole numbers (trial numbers, counts): ticks only at integers.
    Count,
}

/// "Nice" tick positions covering [lo, hi]: steps of 1, 2 or 5 × 10^k.
fn ticks(lo: f64, hi: f64, wanted: usize) -> Vec<f64> {
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return vec![lo];
    }
    let raw = (hi - lo) / wanted as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

/// Labels for evenly spaced ticks, with as many decimals as their spacing needs (0.6995, 0.7000, …
/// rather than "0.7" five times).
fn tick_labels(at: &[f64]) -> Vec<String> {
    let step = at.windows(2).map(|w| (w[1] - w[0]).abs()).fold(f64::INFINITY, f64::min);
    let biggest = at.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if !step.is_finite() || step <= 0.0 || !(1e-3..1e5).contains(&biggest) {
        return at.iter().map(|&v| number_label(v)).collect();
    }
    let decimals = (-step.log10().floor()).clamp(0.0, 8.0) as usize;
    at.iter().map(|v| format!("{v:.decimals$}")).collect()
}

fn number_label(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}").trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.3}").trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Indices to draw: every point when there are few, else an even stride that keeps the last point and
/// each stride's extreme values (so drawdowns stay visible).
fn thin(n: usize, y: &[f64], limit: usize) -> Vec<usize> {
    if n <= limit {
        return (0..n).collect();
    }
    let bucket = n.div_ceil(limit / 2);
    let mut out = Vec::new();
    for start in (0..n).step_by(bucket) {
        let end = (start + bucket).min(n);
        let (mut lo, mut hi) = (start, start);
        for i in start..end {
            if y[i] < y[lo] {
                lo = i;
            }
            if y[i] > y[hi] {
                hi = i;
            }
        }
        out.push(lo.min(hi));
        if lo != hi {
            out.push(lo.max(hi));
        }
    }
    if out.last() != Some(&(n - 1)) {
        out.push(n - 1);
    }
    out
}

/// A line chart. `reference` draws a dashed grey line from (x0, y0) to (x1, y1), e.g. the diagonal of
/// a calibration plot. `fixed` forces the y range.
pub fn line_chart(
    title: &str,
    x_axis: Axis,
    y_title: &str,
    lines: &[Line],
    height: f64,
    reference: Option<[f64; 4]>,
    fixed: Option<(f64, f64)>,
) -> String {
    let finite = |v: &&f64| v.is_finite();
    let xs = lines.iter().flat_map(|l| l.x.iter()).filter(finite);
    let (mut x_lo, mut x_hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let ys = lines.iter().flat_map(|l| l.y.iter()).filter(finite);
    let (mut y_lo, mut y_hi) =
        fixed.unwrap_or_else(|| ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v))));
    if let Some([a, b, c, d]) = reference {
        x_lo = x_lo.min(a.min(c));
        x_hi = x_hi.max(a.max(c));
        if fixed.is_none() {
            y_lo = y_lo.min(b.min(d));
            y_hi = y_hi.max(b.max(d));
        }
    }
    if !x_lo.is_finite() || !y_lo.is_finite() {
        return format!("<p class=\"empty\">{}: nothing to draw</p>", escape(title));
    }
    if x_hi <= x_lo {
        x_hi = x_lo + 1.0;
    }
    if y_hi <= y_lo {
        let pad = if y_lo == 0.0 { 1.0 } else { y_lo.abs() * 0.05 };
        y_lo -= pad;
        y_hi += pad;
    } else if fixed.is_none() {
        let pad = (y_hi - y_lo) * 0.05;
        y_lo -= pad;
        y_hi += pad;
    }
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = height - TOP - BOTTOM;
    let px = |x: f64| LEFT + (x - x_lo) / (x_hi - x_lo) * plot_w;
    let py = |y: f64| TOP + (1.0 - (y - y_lo) / (y_hi - y_lo)) * plot_h;
    let mut s = String::new();
    let points: usize = lines.iter().map(|l| l.y.len()).sum();
    let _ = write!(
        s,
        r#"<svg class="chart" data-points="{points}" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>"#,
        t = escape(title)
    );
    let _ = write!(s, r#"<text x="{LEFT}" y="20" class="title">{}</text>"#, escape(title));
    y_axis(&mut s, ticks(y_lo, y_hi, 5), py);
    match x_axis {
        Axis::Time => {
            let day = 86_400_000.0;
            for t in ticks(x_lo / day, x_hi / day, 6) {
                let x = px(t * day);
                let label = format_date(day_of(t as i64 * 86_400_000));
                let _ = write!(
                    s,
                    r#"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{:.1}" class="grid"/><text x="{x:.1}" y="{:.1}" class="tick" text-anchor="middle">{label}</text>"#,
                    TOP + plot_h,
                    TOP + plot_h + 16.0
                );
            }
        }
        Axis::Number | Axis::Count => {
            let mut at = ticks(x_lo, x_hi, 6);
            if x_axis == Axis::Count {
                // Steps of 0.2 land on 2.0000000000000004, not 2: keep what is an integer to rounding.
                at = at.into_iter().filter(|t| (t - t.round()).abs() < 1e-6).map(f64::round).collect();
            }
            let labels = tick_labels(&at);
            for (t, label) in at.into_iter().zip(labels) {
                let x = px(t);
                let _ = write!(
                    s,
                    r#"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{:.1}" class="grid"/><text x="{x:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"#,
                    TOP + plot_h,
                    TOP + plot_h + 16.0,
                    label
                );
            }
        }
    }
    y_title_text(&mut s, plot_h, y_title);
    if let Some([a, b, c, d]) = reference {
        let _ = write!(
            s,
            r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#999" stroke-dasharray="4 4"/>"##,
            px(a),
            py(b),
            px(c),
            py(d)
        );
    }
    for line in lines {
        let keep = thin(line.y.len().min(line.x.len()), line.y, 1600);
        let mut path = String::new();
        let mut pen_down = false;
        for &i in &keep {
            let (x, y) = (line.x[i], line.y[i]);
            if !(x.is_finite() && y.is_finite()) {
                pen_down = false;
                continue;
            }
            let _ = write!(path, "{}{:.1},{:.1} ", if pen_down { "L" } else { "M" }, px(x), py(y));
            pen_down = true;
        }
        let dash = if line.dashed { r#" stroke-dasharray="6 3""# } else { "" };
        let _ = write!(
            s,
            r#"<path d="{}" fill="none" stroke="{}" stroke-width="1.6"{dash}/>"#,
            path.trim_end(),
            line.color
        );
        if line.markers {
            for &i in &keep {
                if line.x[i].is_finite() && line.y[i].is_finite() {
                    let _ = write!(
                        s,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                        px(line.x[i]),
                        py(line.y[i]),
                        line.color
                    );
                }
            }
        }
    }
    legend(&mut s, lines.iter().map(|l| (l.name, l.color)));
    s.push_str("</svg>");
    s
}

/// Horizontal grid lines with their values at the left.
fn y_axis(s: &mut String, at: Vec<f64>, py: impl Fn(f64) -> f64) {
    let labels = tick_labels(&at);
    for (t, label) in at.into_iter().zip(labels) {
        let y = py(t);
        let _ = write!(
            s,
            r#"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" class="grid"/><text x="{}" y="{:.1}" class="tick" text-anchor="end">{}</text>"#,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            label
        );
    }
}

/// The y axis's title, written upwards along the left edge.
fn y_title_text(s: &mut String, plot_h: f64, title: &str) {
    let middle = TOP + plot_h / 2.0;
    let _ = write!(
        s,
        r#"<text x="14" y="{middle:.1}" class="axis" transform="rotate(-90 14 {middle:.1})" text-anchor="middle">{}</text>"#,
        escape(title)
    );
}

fn legend<'a>(s: &mut String, entries: impl Iterator<Item = (&'a str, &'a str)>) {
    let mut x = WIDTH - RIGHT;
    let entries: Vec<_> = entries.collect();
    for (name, color) in entries.iter().rev() {
        let w = 22.0 + 6.5 * name.chars().count() as f64;
        x -= w;
        let _ = write!(
            s,
            r#"<rect x="{x:.1}" y="30" width="12" height="4" fill="{color}"/><text x="{:.1}" y="37" class="legend">{}</text>"#,
            x + 16.0,
            escape(name)
        );
    }
}

/// Horizontal bars, one per label, largest first as given.
pub fn hbar_chart(title: &str, labels: &[String], values: &[f64], color: &str, value_title: &str) -> String {
    let n = labels.len().max(1);
    let row = 18.0;
    let height = TOP + BOTTOM + row * n as f64;
    let label_w = 200.0;
    let plot_w = WIDTH - label_w - RIGHT - 60.0;
    let max = values.iter().copied().filter(|v| v.is_finite()).fold(0.0_f64, f64::max);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" data-points="{}" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title><text x="{LEFT}" y="20" class="title">{t}</text>"#,
        values.len(),
        t = escape(title)
    );
    for (i, (label, &v)) in labels.iter().zip(values).enumerate() {
        let y = TOP + row * i as f64;
        let w = if max > 0.0 && v.is_finite() { v / max * plot_w } else { 0.0 };
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text><rect x="{label_w}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{color}"/><text x="{:.1}" y="{:.1}" class="tick">{}</text>"#,
            label_w - 6.0,
            y + 12.0,
            escape(label),
            y + 2.0,
            row - 4.0,
            label_w + w + 4.0,
            y + 12.0,
            number_label(v)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" class="axis" text-anchor="middle">{}</text>"#,
        label_w + plot_w / 2.0,
        height - 10.0,
        escape(value_title)
    );
    s.push_str("</svg>");
    s
}

/// Grouped vertical bars: one group per category, one bar per series.
pub fn grouped_bar_chart(
    title: &str,
    categories: &[String],
    series: &[(&str, Vec<f64>, &str)],
    y_title: &str,
    baseline: Option<f64>,
) -> String {
    let height = 300.0;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = height - TOP - BOTTOM;
    let values = series.iter().flat_map(|(_, v, _)| v.iter().copied()).filter(|v| v.is_finite());
    let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if let Some(b) = baseline {
        lo = lo.min(b);
        hi = hi.max(b);
    }
    if !lo.is_finite() {
        return format!("<p class=\"empty\">{}: nothing to draw</p>", escape(title));
    }
    let pad = ((hi - lo) * 0.15).max(1e-3);
    let (lo, hi) = (lo - pad, hi + pad);
    let py = |y: f64| TOP + (1.0 - (y - lo) / (hi - lo)) * plot_h;
    let mut s = String::new();
    let points: usize = series.iter().map(|(_, v, _)| v.len()).sum();
    let _ = write!(
        s,
        r#"<svg class="chart" data-points="{points}" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title><text x="{LEFT}" y="20" class="title">{t}</text>"#,
        t = escape(title)
    );
    y_axis(&mut s, ticks(lo, hi, 5), py);
    let group_w = plot_w / categories.len().max(1) as f64;
    let bar_w = group_w * 0.8 / series.len().max(1) as f64;
    let zero = py(baseline.unwrap_or(lo.max(0.0).min(hi)));
    for (c, category) in categories.iter().enumerate() {
        let gx = LEFT + group_w * c as f64 + group_w * 0.1;
        for (k, (_, values, color)) in series.iter().enumerate() {
            if let Some(&v) = values.get(c).filter(|v| v.is_finite()) {
                let y = py(v);
                let _ = write!(
                    s,
                    r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>{}: {}</title></rect>"#,
                    gx + bar_w * k as f64,
                    y.min(zero),
                    bar_w.max(1.0),
                    (y - zero).abs().max(0.5),
                    escape(category),
                    number_label(v)
                );
            }
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"#,
            gx + group_w * 0.4,
            TOP + plot_h + 16.0,
            escape(category)
        );
    }
    if let Some(b) = baseline {
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#555" stroke-dasharray="4 4"/>"##,
            WIDTH - RIGHT,
            py(b),
            py(b)
        );
    }
    y_title_text(&mut s, plot_h, y_title);
    legend(&mut s, series.iter().map(|(n, _, c)| (*n, *c)));
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 1.0, 5), vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]);
        // Labels carry the decimals their spacing needs, and no more.
        assert_eq!(tick_labels(&ticks(0.6995, 0.7005, 5)), ["0.6995", "0.7000", "0.7005"]);
        assert_eq!(tick_labels(&ticks(0.0, 1.0, 5)), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        assert_eq!(tick_labels(&[0.0, 50.0, 100.0]), ["0", "50", "100"]);
        let t = ticks(0.93, 1.41, 5);
        assert!(t.first().unwrap() >= &0.93 && t.last().unwrap() <= &1.41 && t.len() >= 3, "{t:?}");
    }

    #[test]
    fn thinning_keeps_extremes_and_the_last_point() {
        let y: Vec<f64> = (0..10_000).map(|i| if i == 5_003 { -50.0 } else { (i as f64).sin() }).collect();
        let keep = thin(y.len(), &y, 400);
        assert!(keep.len() <= 420 && keep.contains(&5_003) && keep.last() == Some(&9_999));
    }

    #[test]
    fn text_is_escaped() {
        let svg = hbar_chart("a<b", &["x&y".into()], &[1.0], "#000", "gain");
        assert!(svg.contains("a&lt;b") && svg.contains("x&amp;y"));
    }
}
