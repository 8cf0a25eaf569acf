//! Hyper-parameter search spaces: which parameter values to try, by grid or at random.
//!
//! A search turns a base [`ModelSpec`] and a space (`parameter → list of values | { min, max, log }`)
//! into a list of [`Candidate`]s, each a complete, validated spec. Scoring the candidates is the
//! caller's business (the pipeline scores each with its cross-validation); this module only decides
//! what is tried, deterministically from the seed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::rng::SplitMix64;
use crate::{ModelError, ModelSpec};

/// Largest number of candidates a search may produce: a bigger grid is almost always a typo, and
/// every candidate costs a full cross-validation.
pub const MAX_CANDIDATES: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchMethod {
    /// Every combination of the listed values.
    Grid,
    /// `trials` draws, each parameter independently (uniform over a list, uniform or log-uniform over
    /// a range); repeated draws are skipped.
    Random,
}

/// `[models.search]` in a pipeline file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSpec {
    pub method: SearchMethod,
    /// Random search: how many distinct candidates to draw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials: Option<usize>,
    /// Seed of the random draws (the model's own `seed` is a parameter like any other).
    #[serde(default)]
    pub seed: u64,
    /// What picks the winner: an out-of-sample score (`roc_auc`, `log_loss`, `accuracy`, `ic`, …) or
    /// the backtest's `sharpe`. Default: the task's headline score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Parameter name → values to try.
    pub space: BTreeMap<String, Domain>,
}

/// The values one parameter takes in a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub enum Domain {
    /// Exactly these values (numbers, strings or booleans, as the parameter takes them).
    Choices(Vec<Value>),
    /// A range for random search. Integer bounds draw integers; `log` draws log-uniformly.
    Range { min: f64, max: f64, integer: bool, log: bool },
}

impl TryFrom<Value> for Domain {
    type Error = String;

    fn try_from(value: Value) -> Result<Domain, String> {
        const EXPECTED: &str = "expected a list of values such as [15, 31, 63] or a range such as \
                                { min = 0.01, max = 0.3, log = true }";
        match value {
            Value::Array(values) if values.is_empty() => Err(format!("an empty list: {EXPECTED}")),
            Value::Array(values) => {
                if let Some(bad) = values.iter().find(|v| v.is_array() || v.is_object()) {
                    return Err(format!("{bad}: list entries must be single values; {EXPECTED}"));
                }
                Ok(Domain::Choices(values))
            }
            Value::Object(map) => {
                if let Some(key) = map.keys().find(|k| !matches!(k.as_str(), "min" | "max" | "log")) {
                    return Err(format!("unknown key `{key}` in a range (expected min, max, log)"));
                }
                let bound = |name: &str| -> Result<(f64, bool), String> {
                    match map.get(name) {
                        Some(Value::Number(n)) => {
                            Ok((n.as_f64().expect("finite JSON number"), n.is_i64() || n.is_u64()))
                        }
                        Some(other) => Err(format!("range `{name}` is {other}: expected a number")),
                        None => Err(format!("a range needs `min` and `max`; {EXPECTED}")),
                    }
                };
                let (min, min_int) = bound("min")?;
                let (max, max_int) = bound("max")?;
                let log = match map.get("log") {
                    None => false,
                    Some(Value::Bool(b)) => *b,
                    Some(other) => return Err(format!("range `log` is {other}: expected true or false")),
                };
                if min >= max {
                    return Err(format!("range min {min} must be below max {max}"));
                }
                if log && min <= 0.0 {
                    return Err(format!("a log range needs min > 0 (min is {min})"));
                }
                Ok(Domain::Range { min, max, integer: min_int && max_int, log })
            }
            other => Err(format!("{other}: {EXPECTED}")),
        }
    }
}

impl From<Domain> for Value {
    fn from(domain: Domain) -> Value {
        match domain {
            Domain::Choices(values) => Value::Array(values),
            Domain::Range { min, max, integer, log } => {
                let bound = |x: f64| if integer { Value::from(x as i64) } else { Value::from(x) };
                let mut map = serde_json::Map::new();
                map.insert("min".into(), bound(min));
                map.insert("max".into(), bound(max));
                if log {
                    map.insert("log".into(), Value::Bool(true));
                }
                Value::Object(map)
            }
        }
    }
}

/// One point of a search: the values drawn for the searched parameters and the full spec they give.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub params: BTreeMap<String, Value>,
    pub spec: ModelSpec,
}

impl SearchSpec {
    /// Every candidate, in a fixed order (grid: last parameter fastest; random: draw order). Each is
    /// checked against the family's parameters, so a bad value fails here, before any training.
    pub fn candidates(&self, base: &ModelSpec) -> Result<Vec<Candidate>, ModelError> {
        let invalid = |m: String| ModelError::InvalidParams(m);
        if self.space.is_empty() {
            return Err(invalid("search.space: name at least one parameter to search".into()));
        }
        if self.space.contains_key("kind") {
            return Err(invalid(
                "search.space.kind: the model family cannot be searched; use one [[models]] table per family".into(),
            ));
        }
        let points: Vec<BTreeMap<String, Value>> = match self.method {
            SearchMethod::Grid => {
                if let Some(t) = self.trials {
                    return Err(invalid(format!(
                        "search.trials = {t}: a grid runs every combination; `trials` is for method = \"random\""
                    )));
                }
                let mut lists = Vec::new();
                for (name, domain) in &self.space {
                    match domain {
                        Domain::Choices(values) => lists.push((name, values)),
                        Domain::Range { .. } => {
                            return Err(invalid(format!(
                                "search.space.{name}: a grid takes a list of values; ranges are for method = \"random\""
                            )))
                        }
                    }
                }
                let size = lists.iter().try_fold(1usize, |acc, (_, v)| acc.checked_mul(v.len())).unwrap_or(usize::MAX);
                if size > MAX_CANDIDATES {
                    return Err(invalid(format!(
                        "search: the grid has {size} combinations; at most {MAX_CANDIDATES} are allowed"
                    )));
                }
                (0..size)
                    .map(|mut k| {
                        let mut point = BTreeMap::new();
                        for (name, values) in lists.iter().rev() {
                            point.insert((*name).clone(), values[k % values.len()].clone());
                            k /= values.len();
                        }
                        point
                    })
                    .collect()
            }
            SearchMethod::Random => {
                let trials = self.trials.ok_or_else(|| {
                    invalid("search.trials: random search needs the number of candidates to draw".into())
                })?;
                if trials == 0 || trials > MAX_CANDIDATES {
                    return Err(invalid(format!("search.trials = {trials}: expected 1 to {MAX_CANDIDATES}")));
                }
                let mut rng = SplitMix64(self.seed);
                let mut points: Vec<BTreeMap<String, Value>> = Vec::new();
                // A space of few distinct points (short lists only) cannot give `trials` distinct
                // draws; stop drawing once repeats are all that comes.
                let mut attempts = 0;
                while points.len() < trials && attempts < trials * 50 {
                    attempts += 1;
                    let point: BTreeMap<String, Value> =
                        self.space.iter().map(|(name, domain)| (name.clone(), domain.draw(&mut rng))).collect();
                    if !points.contains(&point) {
                        points.push(point);
                    }
                }
                points
            }
        };
        let base_value = serde_json::to_value(base).expect("a spec serialises");
        let base_task = base.task()?;
        points
            .into_iter()
            .map(|params| {
                let mut value = base_value.clone();
                let object = value.as_object_mut().expect("a spec is a table");
                for (name, v) in &params {
                    object.insert(name.clone(), v.clone());
                }
                let describe = || {
                    params.iter().map(|(k, v)| format!("{k} = {v}")).collect::<Vec<_>>().join(", ")
                };
                let spec: ModelSpec = serde_json::from_value(value)
                    .map_err(|e| invalid(format!("search candidate ({}): {e}", describe())))?;
                let task = spec.task().map_err(|e| invalid(format!("search candidate ({}): {e}", describe())))?;
                if task != base_task {
                    return Err(invalid(format!(
                        "search candidate ({}): changes the task from {base_task:?} to {task:?}; search parameters, not the objective",
                        describe()
                    )));
                }
                Ok(Candidate { params, spec })
            })
            .collect()
    }
}

impl Domain {
    fn draw(&self, rng: &mut SplitMix64) -> Value {
        match self {
            Domain::Choices(values) => {
                values[((rng.unit() * values.len() as f64) as usize).min(values.len() - 1)].clone()
            }
            Domain::Range { min, max, integer, log } => {
                let u = rng.unit();
                if *integer {
                    let (lo, hi) = (*min as i64, *max as i64);
                    let k = if *log {
                        // Log-uniform over [lo, hi + 1) then floored, so each end is as likely as its
                        // share of the log scale.
                        let x = ((lo as f64).ln() + u * (((hi + 1) as f64).ln() - (lo as f64).ln())).exp();
                        (x.floor() as i64).clamp(lo, hi)
                    } else {
                        lo + ((u * (hi - lo + 1) as f64) as i64).min(hi - lo)
                    };
                    Value::from(k)
                } else {
                    let x = if *log { (min.ln() + u * (max.ln() - min.ln())).exp() } else { min + u * (max - min) };
                    Value::from(x.clamp(*min, *max))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ModelSpec {
        toml::from_str("kind = \"lightgbm\"\nobjective = \"binary\"\nnum_leaves = 15\n").unwrap()
    }

    fn search(text: &str) -> Result<SearchSpec, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_grid_is_the_full_product_in_a_fixed_order() {
        let s = search("method = \"grid\"\n[space]\nnum_leaves = [7, 15, 31]\nlearning_rate = [0.05, 0.1]\n").unwrap();
        let c = s.candidates(&base()).unwrap();
        assert_eq!(c.len(), 6);
        // BTreeMap order: learning_rate slowest, num_leaves fastest.
        let pairs: Vec<(f64, u64)> = c
            .iter()
            .map(|c| (c.params["learning_rate"].as_f64().unwrap(), c.params["num_leaves"].as_u64().unwrap()))
            .collect();
        assert_eq!(pairs, [(0.05, 7), (0.05, 15), (0.05, 31), (0.1, 7), (0.1, 15), (0.1, 31)]);
        let ModelSpec::Lightgbm(p) = &c[5].spec else { panic!() };
        assert_eq!((p.num_leaves, p.learning_rate), (31, 0.1));
        assert_eq!(p.objective, crate::lightgbm::Objective::Binary, "unsearched parameters keep the base value");
    }

    #[test]
    fn random_draws_are_seeded_distinct_and_inside_their_ranges() {
        let text = "method = \"random\"\ntrials = 40\nseed = 3\n[space]\nlearning_rate = { min = 0.01, max = 0.3, log = true }\nnum_leaves = { min = 4, max = 64 }\nfeature_fraction = [0.5, 0.8, 1.0]\n";
        let s = search(text).unwrap();
        let a = s.candidates(&base()).unwrap();
        assert_eq!(a, s.candidates(&base()).unwrap(), "same seed, same draws");
        assert_eq!(a.len(), 40);
        for c in &a {
            let lr = c.params["learning_rate"].as_f64().unwrap();
            assert!((0.01..=0.3).contains(&lr), "{lr}");
            let leaves = &c.params["num_leaves"];
            assert!(leaves.is_u64() && (4..=64).contains(&leaves.as_u64().unwrap()), "{leaves}");
        }
        for (i, c) in a.iter().enumerate() {
            assert!(!a[..i].contains(c), "repeated candidate {:?}", c.params);
        }
        // Log-uniform: about half the draws below the geometric middle (√(0.01·0.3) ≈ 0.055), far more
        // than a uniform draw would put there (≈ 16 %).
        let low = a.iter().filter(|c| c.params["learning_rate"].as_f64().unwrap() < (0.01f64 * 0.3).sqrt()).count();
        assert!((12..=28).contains(&low), "{low} of 40 below the geometric middle");
        let other = SearchSpec { seed: 4, ..s.clone() }.candidates(&base()).unwrap();
        assert_ne!(a, other, "another seed draws other points");
    }

    #[test]
    fn a_small_space_gives_fewer_distinct_random_draws_than_asked() {
        let s = search("method = \"random\"\ntrials = 10\n[space]\nnum_leaves = [7, 15]\n").unwrap();
        assert_eq!(s.candidates(&base()).unwrap().len(), 2);
    }

    #[test]
    fn bad_spaces_are_refused_naming_the_parameter() {
        let err = |text: &str| match search(text) {
            Err(e) => e,
            Ok(s) => s.candidates(&base()).unwrap_err().to_string(),
        };
        assert!(err("method = \"grid\"\n[space]\nnum_leafs = [7]\n").contains("num_leafs"));
        assert!(
            err("method = \"grid\"\n[space]\nnum_leaves = { min = 4, max = 9 }\n").contains("search.space.num_leaves")
        );
        assert!(err("method = \"random\"\n[space]\nnum_leaves = [7]\n").contains("search.trials"));
        assert!(err("method = \"random\"\ntrials = 3\n[space]\nnum_leaves = []\n").contains("empty list"));
        assert!(err("method = \"random\"\ntrials = 3\n[space]\nlearning_rate = { min = 0, max = 1, log = true }\n")
            .contains("min > 0"));
        assert!(err("method = \"random\"\ntrials = 3\n[space]\nlearning_rate = { min = 0.2, max = 0.1 }\n")
            .contains("below max"));
        assert!(err("method = \"random\"\ntrials = 3\n[space]\nlearning_rate = { lo = 0.1, max = 0.2 }\n")
            .contains("unknown key `lo`"));
        assert!(err("method = \"grid\"\n[space]\nnum_leaves = [7, \"many\"]\n").contains("num_leaves = \"many\""));
        assert!(err("method = \"grid\"\n[space]\nobjective = [\"regression\"]\n").contains("changes the task"));
        assert!(err("method = \"grid\"\n[space]\nkind = [\"logistic\"]\n").contains("cannot be searched"));
        assert!(err("method = \"grid\"\n[space]\na = [1,2,3,4,5,6,7,8,9,10]\nb = [1,2,3,4,5,6,7,8,9,10]\nc = [1,2,3,4,5,6,7,8,9,10,11]\n")
            .contains("1100 combinations"));
        assert!(err("method = \"grid\"\ntrials = 4\n[space]\nnum_leaves = [7]\n").contains("every combination"));
    }

    #[test]
    fn a_spec_round_trips_through_serialisation() {
        let text = "method = \"random\"\ntrials = 5\n[space]\nlearning_rate = { min = 0.01, max = 0.3, log = true }\nnum_leaves = { min = 4, max = 64 }\nmin_data_in_leaf = [20, 50]\n";
        let s = search(text).unwrap();
        let again: SearchSpec = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(s, again);
        assert_eq!(s.space["num_leaves"], Domain::Range { min: 4.0, max: 64.0, integer: true, log: false });
    }
}
