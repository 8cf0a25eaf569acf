//! Small numerical helpers: the normal distribution, moments and ranks.

const FRAC_2_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;

/// erf by its everywhere-positive series e^{−x²}·Σ 2ⁿx^{2n+1}/(2n+1)!!, which has no cancellation
/// (used for |x| < 0.5).
fn erf_series(x: f64) -> f64 {
    let x2 = x * x;
    let mut term = x;
    let mut sum = x;
    // Terms shrink factorially; 200 is far more than |x| < 3 needs for full precision.
    for n in 1..200 {
        term *= 2.0 * x2 / (2.0 * n as f64 + 1.0);
        sum += term;
        if term.abs() <= 1e-17 * sum.abs() {
            break;
        }
    }
    FRAC_2_SQRT_PI * (-x2).exp() * sum
}

/// erfc for x ≥ 0.5 by its continued fraction (modified Lentz); it converges everywhere on x > 0, in a
/// few hundred terms near 0.5 and a few dozen beyond 2.
fn erfc_continued_fraction(x: f64) -> f64 {
    // erfc(x) = e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …)))))
    let tiny = 1e-300;
    let mut f = x;
    let mut c = x;
    let mut d = 0.0;
    for k in 1..20_000 {
        let a = k as f64 / 2.0;
        d = x + a * d;
        d = if d.abs() < tiny { tiny } else { d };
        c = x + a / c;
        c = if c.abs() < tiny { tiny } else { c };
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / (f * std::f64::consts::PI.sqrt())
}

/// The complementary error function to about 1e-15 relative.
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    // The series of erf is used only where 1 − erf loses no digits to cancellation (|x| < 0.5).
    if x >= 0.5 {
        erfc_continued_fraction(x)
    } else if x <= -0.5 {
        2.0 - erfc_continued_fraction(-x)
    } else {
        1.0 - erf_series(x)
    }
}

/// Standard normal cumulative distribution Φ(x).
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// Standard normal density φ(x).
pub fn normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Φ⁻¹(p) to full double precision: Newton's method on ln Φ(x) = ln p in the lower half (by symmetry
/// for the upper). ln Φ is increasing and concave, so the iteration converges monotonically from any
/// start, and working in logarithms keeps the far tail (p down to 1e-300) as easy as the centre.
pub fn normal_ppf(p: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) || p.is_nan() {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    if p == 0.5 {
        return 0.0;
    }
    if p > 0.5 {
        return -lower_ppf(1.0 - p);
    }
    lower_ppf(p)
}

fn lower_ppf(p: f64) -> f64 {
    let target = p.ln();
    let mut x = -(-2.0 * target).sqrt();
    for _ in 0..100 {
        let cdf = normal_cdf(x);
        let step = (cdf.ln() - target) * cdf / normal_pdf(x);
        x -= step;
        if step.abs() <= 2.0 * f64::EPSILON * x.abs() {
            break;
        }
    }
    x
}

pub fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Sample standard deviation (n − 1).
pub fn std_dev(x: &[f64]) -> f64 {
    let m = mean(x);
    (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() as f64 - 1.0)).sqrt()
}

/// Skewness and (Pearson, normal = 3) kurtosis with population moments, as scipy's `skew` and
/// `kurtosis(fisher=False)` with `bias=True`.
pub fn skew_kurtosis(x: &[f64]) -> (f64, f64) {
    let m = mean(x);
    let n = x.len() as f64;
    let (mut m2, mut m3, mut m4) = (0.0, 0.0, 0.0);
    for v in x {
        let d = v - m;
        let d2 = d * d;
        m2 += d2;
        m3 += d2 * d;
        m4 += d2 * d2;
    }
    let (m2, m3, m4) = (m2 / n, m3 / n, m4 / n);
    (m3 / m2.powf(1.5), m4 / (m2 * m2))
}

/// Ranks 1..n with ties given their average rank (as scipy's `rankdata`).
pub fn average_ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = rank;
        }
        i = j + 1;
    }
    ranks
}

/// Pearson correlation; NaN when either side is constant.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let (mx, my) = (mean(x), mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return f64::NAN;
    }
    sxy / (sxx.sqrt() * syy.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_distribution_known_values() {
        // Values from scipy.stats.norm, to about 1e-15 relative.
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-16);
        assert!((normal_cdf(1.959963984540054) - 0.975).abs() < 1e-15);
        assert!((normal_cdf(-1.0) - 0.15865525393145707).abs() < 1e-15);
        assert!((normal_cdf(-5.0) - 2.866515718791939e-7).abs() < 1e-20);
        assert!((normal_cdf(-8.0) / 6.22096057427178e-16 - 1.0).abs() < 1e-12);
        for p in [1e-12, 1e-6, 0.01, 0.3, 0.5, 0.8, 0.999, 1.0 - 1e-9] {
            let x = normal_ppf(p);
            assert!((normal_cdf(x) - p).abs() <= 1e-15 * p.max(1e-3), "ppf({p}) = {x}");
        }
        assert!((normal_ppf(0.975) - 1.959963984540054).abs() < 1e-13);
    }

    #[test]
    fn ranks_average_ties() {
        assert_eq!(average_ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }
}
