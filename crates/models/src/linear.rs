//! Linear models: logistic regression with an L2, L1 or elastic-net penalty (binary; our own Newton
//! solver for L2, see [`newton_logistic`], and proximal Newton with coordinate descent for L1 and
//! elastic net, see [`proximal_newton_logistic`]), multinomial (softmax) logistic regression with an
//! L2 penalty by L-BFGS ([`lbfgs_multinomial`]), and linear regression (ordinary least squares from
//! linfa; ridge in closed form, [`ridge`]; elastic net by coordinate descent on the Gram matrix,
//! [`elastic_net`]). The fitted model is its coefficients,
//! evaluated here directly, so prediction needs no solver and no allocation per row.
//!
//! Penalties follow scikit-learn's conventions so configs carry over: logistic `c` is the inverse
//! penalty strength (minimises Σ log-loss + ‖w‖² / 2c for L2, Σ log-loss + ‖w‖₁ / c for L1, and
//! Σ log-loss + (l1_ratio·‖w‖₁ + (1 − l1_ratio)·‖w‖² / 2) / c for elastic net), linear `alpha`/`l1_ratio` as in `ElasticNet`
//! (minimises ‖y − Xw‖² / 2n + α·l1_ratio·‖w‖₁ + α·(1 − l1_ratio)·‖w‖² / 2). Inputs must be complete:
//! the default preprocessing imputes the training median and standardises.

use std::path::Path;

use linfa::prelude::*;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::{
    check_rows, read_meta, refuse_missing, write_atomically, ArtifactMeta, Dataset, Importance, Model, ModelError, Task,
};

fn default_c() -> f64 {
    1.0
}
fn default_iterations() -> u64 {
    1000
}
fn default_tolerance() -> f64 {
    1e-6
}
fn default_l1_ratio() -> f64 {
    0.5
}

/// The logistic penalty, as scikit-learn's `penalty`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Penalty {
    #[default]
    L2,
    /// Lasso: drives coefficients to exactly 0.
    L1,
    /// `l1_ratio` of L1, the rest L2.
    Elasticnet,
}

fn is_l2(p: &Penalty) -> bool {
    *p == Penalty::L2
}

/// `kind = "logistic"`: binary logistic regression with an L2, L1 or elastic-net penalty, or with
/// `num_class` ≥ 3 multinomial (softmax) regression with an L2 penalty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogisticParams {
    /// Inverse regularisation strength (scikit-learn's `C`): smaller is stronger.
    #[serde(default = "default_c")]
    pub c: f64,
    #[serde(default, skip_serializing_if = "is_l2")]
    pub penalty: Penalty,
    /// Elastic net: the share of the penalty that is L1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l1_ratio: Option<f64>,
    /// 3 or more: multinomial regression over class indices 0 … num_class − 1 (one coefficient row
    /// per class, softmax probabilities); absent: binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_class: Option<usize>,
    /// Solver steps at most: Newton steps for binary L2 (a handful is typical), L-BFGS steps for
    /// multinomial.
    #[serde(default = "default_iterations")]
    pub max_iterations: u64,
    /// Stop when every component of the objective's gradient, per row, is within this of 0.
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
}

impl Default for LogisticParams {
    fn default() -> Self {
        LogisticParams {
            c: default_c(),
            penalty: Penalty::L2,
            l1_ratio: None,
            num_class: None,
            max_iterations: default_iterations(),
            tolerance: default_tolerance(),
        }
    }
}

/// `kind = "linear"`: least squares, penalised by elastic net when `alpha` > 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearParams {
    /// Penalty strength; 0 is ordinary least squares.
    #[serde(default)]
    pub alpha: f64,
    /// Share of the penalty that is L1 (1 = lasso, 0 = ridge).
    #[serde(default = "default_l1_ratio")]
    pub l1_ratio: f64,
    #[serde(default = "default_iterations")]
    pub max_iterations: u64,
    /// Coordinate descent stops when no coefficient moves more than this.
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
}

impl Default for LinearParams {
    fn default() -> Self {
        LinearParams {
            alpha: 0.0,
            l1_ratio: default_l1_ratio(),
            max_iterations: default_iterations(),
            tolerance: default_tolerance(),
        }
    }
}

impl LogisticParams {
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::InvalidParams(m));
        if !(self.c.is_finite() && self.c > 0.0) {
            return bad(format!("c = {}: expected a positive number", self.c));
        }
        if self.max_iterations == 0 {
            return bad("max_iterations = 0: expected at least 1".into());
        }
        if !(self.tolerance.is_finite() && self.tolerance > 0.0) {
            return bad(format!("tolerance = {}: expected a positive number", self.tolerance));
        }
        match (self.penalty, self.l1_ratio) {
            (Penalty::Elasticnet, None) => return bad("penalty = \"elasticnet\" needs l1_ratio (0 to 1)".into()),
            (Penalty::Elasticnet, Some(r)) if !(0.0..=1.0).contains(&r) => {
                return bad(format!("l1_ratio = {r}: expected 0 ≤ l1_ratio ≤ 1"))
            }
            (Penalty::L1 | Penalty::L2, Some(_)) => {
                return bad("l1_ratio only applies to penalty = \"elasticnet\"".into())
            }
            _ => {}
        }
        match self.num_class {
            Some(n) if n < 3 => return bad(format!("num_class = {n}: expected 3 or more (leave it out for binary)")),
            Some(_) if self.penalty != Penalty::L2 => {
                return bad("num_class: multinomial regression takes penalty = \"l2\" only (for now)".into())
            }
            _ => {}
        }
        Ok(())
    }

    /// Binary, or multiclass with `num_class` classes.
    pub fn task(&self) -> Task {
        match self.num_class {
            Some(classes) => Task::Multiclass { classes },
            None => Task::Binary,
        }
    }

    /// The L1 and L2 strengths: the objective is Σ log-loss + l1·‖w‖₁ + l2·‖w‖² / 2.
    fn strengths(&self) -> (f64, f64) {
        let ratio = match self.penalty {
            Penalty::L2 => 0.0,
            Penalty::L1 => 1.0,
            Penalty::Elasticnet => self.l1_ratio.unwrap_or(0.5),
        };
        (ratio / self.c, (1.0 - ratio) / self.c)
    }
}

impl LinearParams {
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::InvalidParams(m));
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return bad(format!("alpha = {}: expected ≥ 0", self.alpha));
        }
        if !(0.0..=1.0).contains(&self.l1_ratio) {
            return bad(format!("l1_ratio = {}: expected 0 ≤ l1_ratio ≤ 1", self.l1_ratio));
        }
        if self.max_iterations == 0 {
            return bad("max_iterations = 0: expected at least 1".into());
        }
        if !(self.tolerance.is_finite() && self.tolerance > 0.0) {
            return bad(format!("tolerance = {}: expected a positive number", self.tolerance));
        }
        Ok(())
    }
}

/// The coefficients written to `linear.json`: one output's `intercept` and `coefficients`, or for
/// multinomial regression one `intercepts` entry and one row of `coefficients` per class.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Coefficients {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    intercept: Option<f64>,
    coefficients: Vec<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    intercepts: Option<Vec<f64>>,
}

/// A fitted linear or logistic model.
#[derive(Debug, Clone)]
pub struct LinearModel {
    family: &'static str,
    task: Task,
    feature_names: Vec<String>,
    /// One per output: a single one, or one per class (multinomial).
    intercepts: Vec<f64>,
    /// Row-major, one row of coefficients per output.
    coefficients: Vec<f64>,
    params: serde_json::Value,
    training: serde_json::Value,
}

/// Row-major features as an ndarray matrix, refusing missing values (linear models need every input).
fn matrix(data: &Dataset, family: &str) -> Result<Array2<f64>, ModelError> {
    matrix_check(data, family)?;
    Array2::from_shape_vec((data.rows(), data.n_features()), data.features.to_vec())
        .map_err(|e| ModelError::InvalidData(e.to_string()))
}

fn matrix_check(data: &Dataset, family: &str) -> Result<(), ModelError> {
    refuse_missing(
        data.feature_names,
        data.features,
        &format!("{family} models need every value; impute in [preprocess] (impute = \"median\" or \"zero\")"),
    )
}

/// A fitted logistic regression and how the solver ended.
struct NewtonFit {
    coefficients: Vec<f64>,
    intercept: f64,
    iterations: u64,
    gradient_norm: f64,
    converged: bool,
}

/// log(1 + e^z), without overflow.
fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

/// Σ log-loss + ‖w‖² / 2c at θ = (w, b), for the line search.
fn logistic_objective(x: &[f64], y: &[f64], d: usize, theta: &[f64], c: f64) -> f64 {
    penalised_objective(x, y, d, &theta[..d], theta[d], 0.0, 1.0 / c)
}

/// Minimises Σ log-loss + ‖w‖² / 2c (the intercept unpenalised, as scikit-learn) by Newton's method
/// with a backtracking line search: each step solves the (d + 1)² Hessian system by Cholesky, so it
/// converges in a handful of passes over the rows where first-order solvers (linfa's L-BFGS took
/// 59 s on 100k × 50 strongly collinear features) crawl. Stops when max |gradient| / rows ≤
/// `tolerance`, or when a Newton step no longer lowers the objective (the optimum to machine precision).
fn newton_logistic(x: &[f64], y: &[f64], d: usize, params: &LogisticParams) -> Result<NewtonFit, ModelError> {
    let k = d + 1;
    let c = params.c;
    let mut theta = vec![0.0; k];
    let mut gradient = vec![0.0; k];
    let mut hessian = vec![0.0; k * k];
    let mut objective = logistic_objective(x, y, d, &theta, c);
    let mut gradient_norm = f64::INFINITY;
    let mut iterations = 0;
    let mut converged = false;
    let rows = y.len() as f64;
    while iterations < params.max_iterations {
        gradient.iter_mut().for_each(|g| *g = 0.0);
        hessian.iter_mut().for_each(|h| *h = 0.0);
        let (w, b) = (&theta[..d], theta[d]);
        for (row, &yi) in x.chunks_exact(d).zip(y) {
            let z = b + row.iter().zip(w).map(|(a, b)| a * b).sum::<f64>();
            let p = 1.0 / (1.0 + (-z).exp());
            let (r, s) = (p - yi, p * (1.0 - p));
            for (g, &xa) in gradient[..d].iter_mut().zip(row) {
                *g += r * xa;
            }
            gradient[d] += r;
            // Upper triangle of Σ s·x̃x̃ᵀ, x̃ = (x, 1).
            for a in 0..d {
                let sa = s * row[a];
                let line = &mut hessian[a * k..(a + 1) * k];
                for (h, &xb) in line[a..d].iter_mut().zip(&row[a..]) {
                    *h += sa * xb;
                }
                line[d] += sa;
            }
            hessian[d * k + d] += s;
        }
        for j in 0..d {
            gradient[j] += theta[j] / c;
            hessian[j * k + j] += 1.0 / c;
        }
        // Per row, so the tolerance means the same whatever the number of rows.
        gradient_norm = gradient.iter().fold(0.0f64, |m, g| m.max(g.abs())) / rows;
        if gradient_norm <= params.tolerance {
            converged = true;
            break;
        }
        for a in 0..k {
            for b in 0..a {
                hessian[a * k + b] = hessian[b * k + a];
            }
        }
        let step = cholesky_solve(&mut hessian, &gradient, k).ok_or_else(|| {
            ModelError::Training("logistic regression: the Hessian is not positive definite (constant columns with a tiny penalty?); lower c".into())
        })?;
        let slope: f64 = gradient.iter().zip(&step).map(|(g, s)| g * s).sum();
        let mut t = 1.0;
        let improved = loop {
            let trial: Vec<f64> = theta.iter().zip(&step).map(|(v, s)| v - t * s).collect();
            let value = logistic_objective(x, y, d, &trial, c);
            if value <= objective - 1e-4 * t * slope {
                objective = value;
                theta = trial;
                break true;
            }
            if t < 1e-6 {
                break false;
            }
            t *= 0.5;
        };
        iterations += 1;
        if !improved {
            // The Newton direction no longer lowers the objective in floating point: this is the
            // optimum to machine precision, even if the summed gradient's rounding noise is above
            // the tolerance.
            converged = true;
            break;
        }
    }
    Ok(NewtonFit { intercept: theta[d], coefficients: theta[..d].to_vec(), iterations, gradient_norm, converged })
}

/// Σ log-loss + l1·‖w‖₁ + l2·‖w‖² / 2 at (w, b).
fn penalised_objective(x: &[f64], y: &[f64], d: usize, w: &[f64], b: f64, l1: f64, l2: f64) -> f64 {
    let loss: f64 = x
        .chunks_exact(d)
        .zip(y)
        .map(|(row, &yi)| {
            let z = b + row.iter().zip(w).map(|(a, b)| a * b).sum::<f64>();
            softplus(z) - yi * z
        })
        .sum();
    loss + w.iter().map(|v| l1 * v.abs() + 0.5 * l2 * v * v).sum::<f64>()
}

fn soft_threshold(z: f64, gamma: f64) -> f64 {
    z.signum() * (z.abs() - gamma).max(0.0)
}

/// Minimises Σ log-loss + l1·‖w‖₁ + l2·‖w‖² / 2 (intercept unpenalised) by proximal Newton, as
/// glmnet and newGLMNET do: each outer step takes the log-loss's quadratic model at the current
/// coefficients and minimises it plus the penalty by cyclic coordinate descent (a soft-threshold per
/// coefficient, so L1 gives exact zeros), then a backtracking line search on the true objective.
/// Stops when no coefficient moves more than `tolerance` in an outer step.
fn proximal_newton_logistic(x: &[f64], y: &[f64], d: usize, params: &LogisticParams) -> Result<NewtonFit, ModelError> {
    let (l1, l2) = params.strengths();
    let n = y.len();
    // Column-major copy: coordinate descent walks one column at a time.
    let columns: Vec<Vec<f64>> = (0..d).map(|j| x.iter().skip(j).step_by(d).copied().collect()).collect();
    let (mut w, mut b) = (vec![0.0; d], 0.0);
    let mut z = vec![0.0f64; n];
    let mut objective = penalised_objective(x, y, d, &w, b, l1, l2);
    let (mut iterations, mut converged, mut largest_move) = (0, false, f64::INFINITY);
    let (mut s, mut r, mut u) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    while iterations < params.max_iterations {
        iterations += 1;
        // The quadratic model: gradient Σ r·x̃, Hessian Σ s·x̃x̃ᵀ with r = p − y, s = p(1 − p).
        for i in 0..n {
            let p = 1.0 / (1.0 + (-z[i]).exp());
            r[i] = p - y[i];
            s[i] = (p * (1.0 - p)).max(1e-10);
        }
        let gradient: Vec<f64> = columns.iter().map(|c| c.iter().zip(&r).map(|(a, b)| a * b).sum()).collect();
        let gradient_b: f64 = r.iter().sum();
        let curvature: Vec<f64> =
            columns.iter().map(|c| c.iter().zip(&s).map(|(a, si)| si * a * a).sum::<f64>()).collect();
        let curvature_b: f64 = s.iter().sum();
        // δ for (w, b); u = X̃δ, so (Hδ)_j = Σ s·x_j·u.
        let (mut delta, mut delta_b) = (vec![0.0; d], 0.0);
        u.iter_mut().for_each(|v| *v = 0.0);
        for _sweep in 0..100 {
            let mut sweep_move = 0.0f64;
            for j in 0..d {
                let column = &columns[j];
                let h_delta: f64 = column.iter().zip(&s).zip(&u).map(|((a, si), ui)| a * si * ui).sum();
                let linear = gradient[j] + h_delta - curvature[j] * delta[j];
                let target =
                    soft_threshold(curvature[j] * w[j] - linear, l1) / (curvature[j] + l2).max(f64::MIN_POSITIVE);
                let change = target - (w[j] + delta[j]);
                if change != 0.0 {
                    delta[j] += change;
                    u.iter_mut().zip(column).for_each(|(ui, a)| *ui += change * a);
                    sweep_move = sweep_move.max(change.abs());
                }
            }
            let h_delta_b: f64 = s.iter().zip(&u).map(|(si, ui)| si * ui).sum();
            let change = -(gradient_b + h_delta_b) / curvature_b;
            delta_b += change;
            u.iter_mut().for_each(|ui| *ui += change);
            sweep_move = sweep_move.max(change.abs());
            if sweep_move <= params.tolerance * 0.1 {
                break;
            }
        }
        // Predicted decrease of the model plus penalty, for the Armijo condition.
        let penalty = |w: &[f64]| w.iter().map(|v| l1 * v.abs() + 0.5 * l2 * v * v).sum::<f64>();
        let moved: Vec<f64> = w.iter().zip(&delta).map(|(a, b)| a + b).collect();
        let decrease =
            gradient.iter().zip(&delta).map(|(g, d)| g * d).sum::<f64>() + gradient_b * delta_b + penalty(&moved)
                - penalty(&w);
        let mut t = 1.0;
        let accepted = loop {
            let trial: Vec<f64> = w.iter().zip(&delta).map(|(a, b)| a + t * b).collect();
            let value = penalised_objective(x, y, d, &trial, b + t * delta_b, l1, l2);
            if value <= objective + 1e-4 * t * decrease.min(0.0) {
                objective = value;
                largest_move = delta.iter().chain([&delta_b]).fold(0.0f64, |m, v| m.max((t * v).abs()));
                w = trial;
                b += t * delta_b;
                break true;
            }
            if t < 1e-8 {
                break false;
            }
            t *= 0.5;
        };
        if !accepted {
            // No step lowers the objective in floating point: the optimum to machine precision.
            converged = true;
            break;
        }
        for (zi, row) in z.iter_mut().zip(x.chunks_exact(d)) {
            *zi = b + row.iter().zip(&w).map(|(a, c)| a * c).sum::<f64>();
        }
        if largest_move <= params.tolerance {
            converged = true;
            break;
        }
    }
    Ok(NewtonFit { coefficients: w, intercept: b, iterations, gradient_norm: largest_move, converged })
}

/// Σ −log softmax(z)_y + ‖W‖² / 2c for multinomial regression at θ (per class: d coefficients, then
/// the intercept), with its gradient written into `gradient`.
fn softmax_objective(x: &[f64], y: &[f64], d: usize, theta: &[f64], c: f64, gradient: &mut [f64]) -> f64 {
    let stride = d + 1;
    let k = theta.len() / stride;
    gradient.iter_mut().for_each(|g| *g = 0.0);
    let mut z = vec![0.0; k];
    // Compensated (Neumaier) sum: near the optimum the line search compares objectives that differ
    // by less than a plain sum's rounding over tens of thousands of rows.
    let (mut loss, mut compensation) = (0.0f64, 0.0f64);
    let mut add = |v: f64| {
        let t = loss + v;
        compensation += if loss.abs() >= v.abs() { (loss - t) + v } else { (v - t) + loss };
        loss = t;
    };
    for (row, &yi) in x.chunks_exact(d).zip(y) {
        for (class, zc) in z.iter_mut().enumerate() {
            let t = &theta[class * stride..(class + 1) * stride];
            *zc = t[d] + row.iter().zip(&t[..d]).map(|(a, b)| a * b).sum::<f64>();
        }
        let top = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let log_sum = top + z.iter().map(|v| (v - top).exp()).sum::<f64>().ln();
        let label = yi as usize;
        add(log_sum - z[label]);
        for (class, &zc) in z.iter().enumerate() {
            let r = (zc - log_sum).exp() - f64::from(u8::from(class == label));
            let g = &mut gradient[class * stride..(class + 1) * stride];
            for (gj, &xj) in g[..d].iter_mut().zip(row) {
                *gj += r * xj;
            }
            g[d] += r;
        }
    }
    for class in 0..k {
        for j in 0..d {
            let w = theta[class * stride + j];
            add(w * w / (2.0 * c));
            gradient[class * stride + j] += w / c;
        }
    }
    loss + compensation
}

/// Minimises Σ −log softmax + ‖W‖² / 2c (intercepts unpenalised, as scikit-learn) by L-BFGS (10
/// pairs, backtracking Armijo line search): the Hessian of k·(d + 1) parameters would cost a pass
/// of (k·(d + 1))² per row. Stops when max |gradient| / rows ≤ `tolerance`, or when no step along
/// the search direction lowers the objective (the optimum to machine precision).
fn lbfgs_multinomial(x: &[f64], y: &[f64], d: usize, classes: usize, params: &LogisticParams) -> MultinomialFit {
    const PAIRS: usize = 10;
    let n = classes * (d + 1);
    let rows = y.len() as f64;
    let c = params.c;
    let mut theta = vec![0.0; n];
    let mut gradient = vec![0.0; n];
    let mut objective = softmax_objective(x, y, d, &theta, c, &mut gradient);
    let mut history: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> = Default::default();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(u, v)| u * v).sum::<f64>();
    let (mut iterations, mut converged) = (0, false);
    let mut gradient_norm = gradient.iter().fold(0.0f64, |m, g| m.max(g.abs())) / rows;
    let mut trial_gradient = vec![0.0; n];
    while iterations < params.max_iterations {
        if gradient_norm <= params.tolerance {
            converged = true;
            break;
        }
        // Two-loop recursion: direction = −H·g, H from the stored (s, y) pairs.
        let mut q = gradient.clone();
        let mut alphas = Vec::with_capacity(history.len());
        for (s, yv, rho) in history.iter().rev() {
            let a = rho * dot(s, &q);
            q.iter_mut().zip(yv).for_each(|(qi, yi)| *qi -= a * yi);
            alphas.push(a);
        }
        let scale = match history.back() {
            Some((s, yv, _)) => dot(s, yv) / dot(yv, yv),
            None => 1.0 / dot(&gradient, &gradient).sqrt().max(f64::MIN_POSITIVE),
        };
        q.iter_mut().for_each(|v| *v *= scale);
        for ((s, yv, rho), a) in history.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(yv, &q);
            q.iter_mut().zip(s).for_each(|(qi, si)| *qi += (a - b) * si);
        }
        let mut direction: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&gradient, &direction);
        if slope >= 0.0 {
            // Not a descent direction (a stale pair): restart from the gradient.
            history.clear();
            direction = gradient.iter().map(|g| -g).collect();
            slope = -dot(&gradient, &gradient);
        }
        let mut t = 1.0;
        let accepted = loop {
            let trial: Vec<f64> = theta.iter().zip(&direction).map(|(a, b)| a + t * b).collect();
            let value = softmax_objective(x, y, d, &trial, c, &mut trial_gradient);
            if value <= objective + 1e-4 * t * slope {
                let s: Vec<f64> = trial.iter().zip(&theta).map(|(a, b)| a - b).collect();
                let yv: Vec<f64> = trial_gradient.iter().zip(&gradient).map(|(a, b)| a - b).collect();
                let sy = dot(&s, &yv);
                if sy > 1e-12 * dot(&yv, &yv).sqrt() * dot(&s, &s).sqrt() {
                    if history.len() == PAIRS {
                        history.pop_front();
                    }
                    history.push_back((s, yv, 1.0 / sy));
                }
                theta = trial;
                objective = value;
                std::mem::swap(&mut gradient, &mut trial_gradient);
                break true;
            }
            if t < 1e-10 {
                break false;
            }
            t *= 0.5;
        };
        iterations += 1;
        gradient_norm = gradient.iter().fold(0.0f64, |m, g| m.max(g.abs())) / rows;
        if !accepted {
            if history.is_empty() {
                // Not even the gradient direction lowers the objective: the optimum to machine precision.
                converged = true;
                break;
            }
            // The quasi-Newton model went stale: start it again from the gradient.
            history.clear();
        }
    }
    let stride = d + 1;
    let coefficients = (0..classes).flat_map(|k| theta[k * stride..k * stride + d].to_vec()).collect();
    let intercepts = (0..classes).map(|k| theta[k * stride + d]).collect();
    MultinomialFit { coefficients, intercepts, iterations, gradient_norm, converged }
}

struct MultinomialFit {
    coefficients: Vec<f64>,
    intercepts: Vec<f64>,
    iterations: u64,
    gradient_norm: f64,
    converged: bool,
}

/// The centred least-squares problem: Gram = XcᵀXc / n (row-major d × d), Xcᵀyc / n, the column
/// means and the mean of y. Accumulated over blocks of centred rows (exact centring without a copy
/// of X, each block one matrix product).
struct CentredGram {
    gram: Vec<f64>,
    xty: Vec<f64>,
    means: Vec<f64>,
    y_mean: f64,
}

fn centred_gram(x: &ndarray::Array2<f64>, y: &[f64]) -> CentredGram {
    const BLOCK: usize = 4096;
    let (n, d) = x.dim();
    let rows = n as f64;
    let means: Vec<f64> = (0..d).map(|j| x.column(j).sum() / rows).collect();
    let y_mean = y.iter().sum::<f64>() / rows;
    let mut gram = ndarray::Array2::<f64>::zeros((d, d));
    let mut xty = vec![0.0; d];
    let mut block = ndarray::Array2::<f64>::zeros((BLOCK.min(n), d));
    for start in (0..n).step_by(BLOCK) {
        let end = (start + BLOCK).min(n);
        let mut view = block.slice_mut(ndarray::s![..end - start, ..]);
        for (mut row, source) in view.rows_mut().into_iter().zip(x.slice(ndarray::s![start..end, ..]).rows()) {
            for ((v, &s), m) in row.iter_mut().zip(source.iter()).zip(&means) {
                *v = s - m;
            }
        }
        gram += &view.t().dot(&view);
        for (row, &yi) in view.rows().into_iter().zip(&y[start..end]) {
            let centred = yi - y_mean;
            for (acc, &v) in xty.iter_mut().zip(row.iter()) {
                *acc += v * centred;
            }
        }
    }
    CentredGram {
        gram: gram.iter().map(|g| g / rows).collect(),
        xty: xty.iter().map(|v| v / rows).collect(),
        means,
        y_mean,
    }
}

/// Ridge regression in closed form, with the elastic net's scaling (l1_ratio = 0):
/// minimises ‖y − Xw − b‖² / (2n) + alpha·‖w‖² / 2, the intercept unpenalised. Solves
/// (XcᵀXc / n + alpha·I) w = Xcᵀyc / n (coordinate descent needs many passes for the same answer).
fn ridge(x: &ndarray::Array2<f64>, y: &[f64], alpha: f64) -> Result<(Vec<f64>, f64), ModelError> {
    let d = x.ncols();
    let CentredGram { mut gram, xty, means, y_mean } = centred_gram(x, y);
    for p in 0..d {
        gram[p * d + p] += alpha;
    }
    let w = cholesky_solve(&mut gram, &xty, d)
        .ok_or_else(|| ModelError::Training("ridge: the penalised Gram matrix is not positive definite".into()))?;
    let intercept = y_mean - means.iter().zip(&w).map(|(m, w)| m * w).sum::<f64>();
    Ok((w, intercept))
}

/// Elastic net (scikit-learn's `ElasticNet` objective: ‖y − Xw − b‖² / 2n + α·l1_ratio·‖w‖₁ +
/// α·(1 − l1_ratio)·‖w‖² / 2, intercept unpenalised) by cyclic coordinate descent on the Gram matrix,
/// as scikit-learn does with `precompute`: one pass over the rows builds XcᵀXc / n, then each
/// coefficient update costs O(d) instead of O(n). Stops when no coefficient moves more than
/// `tolerance` in a sweep. Returns the coefficients, the intercept and the sweeps taken.
fn elastic_net(x: &ndarray::Array2<f64>, y: &[f64], params: &LinearParams) -> (Vec<f64>, f64, u64, bool) {
    let d = x.ncols();
    let CentredGram { gram, xty, means, y_mean } = centred_gram(x, y);
    let (l1, l2) = (params.alpha * params.l1_ratio, params.alpha * (1.0 - params.l1_ratio));
    let mut w = vec![0.0; d];
    // G·w, kept up to date after every coordinate move.
    let mut gw = vec![0.0; d];
    let (mut sweeps, mut converged) = (0, false);
    while sweeps < params.max_iterations {
        sweeps += 1;
        let mut largest = 0.0f64;
        for j in 0..d {
            let g_jj = gram[j * d + j];
            let denominator = g_jj + l2;
            let target =
                if denominator > 0.0 { soft_threshold(xty[j] - gw[j] + g_jj * w[j], l1) / denominator } else { 0.0 };
            let change = target - w[j];
            if change != 0.0 {
                w[j] = target;
                for (acc, g) in gw.iter_mut().zip(&gram[j * d..(j + 1) * d]) {
                    *acc += change * g;
                }
                largest = largest.max(change.abs());
            }
        }
        if largest <= params.tolerance {
            converged = true;
            break;
        }
    }
    let intercept = y_mean - means.iter().zip(&w).map(|(m, w)| m * w).sum::<f64>();
    (w, intercept, sweeps, converged)
}

/// Solves A x = b for a symmetric positive definite `a` (row-major k × k, overwritten by its
/// Cholesky factor); `None` when `a` is not positive definite.
fn cholesky_solve(a: &mut [f64], b: &[f64], k: usize) -> Option<Vec<f64>> {
    for j in 0..k {
        let mut diagonal = a[j * k + j];
        for p in 0..j {
            diagonal -= a[j * k + p] * a[j * k + p];
        }
        // NaN fails this too.
        if diagonal.is_nan() || diagonal <= 0.0 {
            return None;
        }
        let l_jj = diagonal.sqrt();
        a[j * k + j] = l_jj;
        for i in j + 1..k {
            let mut v = a[i * k + j];
            for p in 0..j {
                v -= a[i * k + p] * a[j * k + p];
            }
            a[i * k + j] = v / l_jj;
        }
    }
    // L y = b, then Lᵀ x = y.
    let mut y = b.to_vec();
    for i in 0..k {
        for p in 0..i {
            y[i] -= a[i * k + p] * y[p];
        }
        y[i] /= a[i * k + i];
    }
    for i in (0..k).rev() {
        for p in i + 1..k {
            y[i] -= a[p * k + i] * y[p];
        }
        y[i] /= a[i * k + i];
    }
    Some(y)
}

fn refuse_weights(data: &Dataset, family: &str) -> Result<(), ModelError> {
    if data.weights.is_some() {
        return Err(ModelError::InvalidParams(format!("{family} models do not take sample weights yet")));
    }
    Ok(())
}

impl LinearModel {
    pub fn fit_logistic(data: &Dataset, params: &LogisticParams) -> Result<LinearModel, ModelError> {
        params.validate()?;
        refuse_weights(data, "logistic")?;
        if let Some(classes) = params.num_class {
            return Self::fit_multinomial(data, params, classes);
        }
        Task::Binary.check_labels(data.labels)?;
        // Only the completeness check: the solver reads the row-major slice directly.
        matrix_check(data, "logistic")?;
        let positives = data.labels.iter().filter(|&&y| y == 1.0).count();
        if positives == 0 || positives == data.rows() {
            return Err(ModelError::InvalidData("logistic regression needs both classes in the training rows".into()));
        }
        let started = std::time::Instant::now();
        let (solver, fitted) = match params.penalty {
            Penalty::L2 => ("newton", newton_logistic(data.features, data.labels, data.n_features(), params)?),
            Penalty::L1 | Penalty::Elasticnet => {
                ("proximal_newton", proximal_newton_logistic(data.features, data.labels, data.n_features(), params)?)
            }
        };
        let nonzero = fitted.coefficients.iter().filter(|w| **w != 0.0).count();
        Ok(LinearModel {
            family: "logistic",
            task: Task::Binary,
            feature_names: data.feature_names.to_vec(),
            intercepts: vec![fitted.intercept],
            coefficients: fitted.coefficients,
            params: serde_json::to_value(params).expect("params serialise"),
            training: serde_json::json!({
                "rows": data.rows(),
                "seconds": started.elapsed().as_secs_f64(),
                "solver": solver,
                "iterations": fitted.iterations,
                // newton: max |gradient| per row; proximal_newton: the last step's largest move.
                "gradient_norm": fitted.gradient_norm,
                "nonzero_coefficients": nonzero,
                "converged": fitted.converged,
            }),
        })
    }

    pub fn fit_linear(data: &Dataset, params: &LinearParams) -> Result<LinearModel, ModelError> {
        params.validate()?;
        refuse_weights(data, "linear")?;
        Task::Regression.check_labels(data.labels)?;
        let x = matrix(data, "linear")?;
        let y = Array1::from(data.labels.to_vec());
        let dataset = linfa::Dataset::new(x, y);
        let started = std::time::Instant::now();
        let (coefficients, intercept, solver) = if params.alpha == 0.0 {
            let fitted = linfa_linear::LinearRegression::new()
                .fit(&dataset)
                .map_err(|e| ModelError::Training(format!("least squares: {e}")))?;
            (fitted.params().to_vec(), fitted.intercept(), serde_json::json!({"solver": "least_squares"}))
        } else if params.l1_ratio == 0.0 {
            let (w, b) = ridge(dataset.records(), data.labels, params.alpha)?;
            (w, b, serde_json::json!({"solver": "ridge_cholesky"}))
        } else {
            let (w, b, sweeps, converged) = elastic_net(dataset.records(), data.labels, params);
            let nonzero = w.iter().filter(|v| **v != 0.0).count();
            let solver = serde_json::json!({
                "solver": "gram_coordinate_descent", "sweeps": sweeps, "converged": converged,
                "nonzero_coefficients": nonzero,
            });
            (w, b, solver)
        };
        let mut training = solver;
        training["rows"] = serde_json::json!(data.rows());
        training["seconds"] = serde_json::json!(started.elapsed().as_secs_f64());
        Ok(LinearModel {
            family: "linear",
            task: Task::Regression,
            feature_names: data.feature_names.to_vec(),
            intercepts: vec![intercept],
            coefficients,
            params: serde_json::to_value(params).expect("params serialise"),
            training,
        })
    }

    fn fit_multinomial(data: &Dataset, params: &LogisticParams, classes: usize) -> Result<LinearModel, ModelError> {
        let task = Task::Multiclass { classes };
        task.check_labels(data.labels)?;
        matrix_check(data, "logistic")?;
        let started = std::time::Instant::now();
        let fitted = lbfgs_multinomial(data.features, data.labels, data.n_features(), classes, params);
        Ok(LinearModel {
            family: "logistic",
            task,
            feature_names: data.feature_names.to_vec(),
            intercepts: fitted.intercepts,
            coefficients: fitted.coefficients,
            params: serde_json::to_value(params).expect("params serialise"),
            training: serde_json::json!({
                "rows": data.rows(),
                "seconds": started.elapsed().as_secs_f64(),
                "solver": "lbfgs",
                "iterations": fitted.iterations,
                // max |gradient| per row when the solver stopped.
                "gradient_norm": fitted.gradient_norm,
                "converged": fitted.converged,
            }),
        })
    }

    /// Every output's coefficients, one row of `feature_names().len()` per output.
    pub fn coefficients(&self) -> &[f64] {
        &self.coefficients
    }

    /// The first output's intercept (the only one but for multinomial regression).
    pub fn intercept(&self) -> f64 {
        self.intercepts[0]
    }

    pub fn intercepts(&self) -> &[f64] {
        &self.intercepts
    }

    /// Raw scores of one row (log-odds, values, or per-class logits), appended to `out`.
    fn raw_into(&self, row: &[f64], out: &mut Vec<f64>) {
        let d = self.feature_names.len();
        for (b, w) in self.intercepts.iter().zip(self.coefficients.chunks_exact(d)) {
            out.push(b + row.iter().zip(w).map(|(x, w)| x * w).sum::<f64>());
        }
    }

    fn outputs_into(&self, row: &[f64], out: &mut Vec<f64>) {
        let start = out.len();
        self.raw_into(row, out);
        let scores = &mut out[start..];
        match self.task {
            Task::Binary => scores[0] = 1.0 / (1.0 + (-scores[0]).exp()),
            Task::Multiclass { .. } => {
                let top = scores.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
                let total: f64 = scores.iter().map(|v| (v - top).exp()).sum();
                scores.iter_mut().for_each(|v| *v = (*v - top).exp() / total);
            }
            _ => {}
        }
    }

    fn check_complete(&self, rows: &[f64]) -> Result<usize, ModelError> {
        let n = check_rows(&self.feature_names, rows)?;
        refuse_missing(&self.feature_names, rows, &format!("this {} model has no imputation", self.family))?;
        Ok(n)
    }

    pub fn load(dir: &Path) -> Result<LinearModel, ModelError> {
        let meta = read_meta(dir)?;
        let path = dir.join("linear.json");
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        let c: Coefficients = serde_json::from_str(&text)
            .map_err(|e| ModelError::Artifact { path: path.clone(), message: e.to_string() })?;
        let intercepts = match (c.intercept, c.intercepts) {
            (Some(b), None) => vec![b],
            (None, Some(bs)) => bs,
            _ => {
                return Err(ModelError::Artifact {
                    path,
                    message: "expected `intercept` (one output) or `intercepts` (one per class)".into(),
                })
            }
        };
        let outputs = meta.task.outputs();
        if intercepts.len() != outputs
            || c.coefficients.len() != outputs * meta.feature_names.len()
            || intercepts.iter().any(|b| !b.is_finite())
        {
            return Err(ModelError::Artifact {
                path,
                message: format!(
                    "{} coefficients and {} intercepts for {} features and {outputs} outputs (or a non-finite intercept)",
                    c.coefficients.len(),
                    intercepts.len(),
                    meta.feature_names.len()
                ),
            });
        }
        let family = match meta.family.as_str() {
            "logistic" => "logistic",
            _ => "linear",
        };
        Ok(LinearModel {
            family,
            task: meta.task,
            feature_names: meta.feature_names,
            intercepts,
            coefficients: c.coefficients,
            params: meta.params,
            training: meta.training,
        })
    }
}

impl Model for LinearModel {
    fn family(&self) -> &'static str {
        self.family
    }
    fn task(&self) -> Task {
        self.task
    }
    fn feature_names(&self) -> &[String] {
        &self.feature_names
    }
    fn predict(&self, rows: &[f64]) -> Result<Vec<f64>, ModelError> {
        let n = self.check_complete(rows)?;
        let mut out = Vec::with_capacity(n * self.intercepts.len());
        for row in rows.chunks_exact(self.feature_names.len()) {
            self.outputs_into(row, &mut out);
        }
        Ok(out)
    }
    /// |coefficient| (summed over classes): comparable across features when they are standardised
    /// (the default).
    fn feature_importance(&self) -> Result<Vec<Importance>, ModelError> {
        let d = self.feature_names.len();
        Ok(self
            .feature_names
            .iter()
            .enumerate()
            .map(|(j, f)| Importance {
                feature: f.clone(),
                gain: self.coefficients.chunks_exact(d).map(|w| w[j].abs()).sum(),
                splits: 0.0,
            })
            .collect())
    }
    /// coefficient × value per feature, then the intercept: they sum to the raw score (log-odds for
    /// logistic regression); multinomial: one such block per class, summing to its logit.
    fn explain(&self, row: &[f64]) -> Result<Vec<f64>, ModelError> {
        if self.check_complete(row)? != 1 {
            return Err(ModelError::InvalidData("explain takes one row".into()));
        }
        let d = self.feature_names.len();
        let mut out = Vec::with_capacity((d + 1) * self.intercepts.len());
        for (b, w) in self.intercepts.iter().zip(self.coefficients.chunks_exact(d)) {
            out.extend(row.iter().zip(w).map(|(x, w)| x * w));
            out.push(*b);
        }
        Ok(out)
    }
    fn meta(&self) -> ArtifactMeta {
        ArtifactMeta::of(self.family, self.task, &self.feature_names, &self.params, &self.training)
    }
    fn write_files(&self, dir: &Path) -> Result<(), ModelError> {
        let (intercept, intercepts) = match &self.intercepts[..] {
            [b] => (Some(*b), None),
            many => (None, Some(many.to_vec())),
        };
        let c = Coefficients { intercept, coefficients: self.coefficients.clone(), intercepts };
        write_atomically(&dir.join("linear.json"), &serde_json::to_vec_pretty(&c).expect("json"))
    }
}
