//! A compact in-process evaluator of LightGBM's fitted trees, read from its text model: no FFI call,
//! no thread pool, no allocation per row. Used for single rows and small batches (the server's hot
//! path); it follows LightGBM's own decision rule (`Tree::NumericalDecision`) and output transforms
//! (sigmoid, softmax, random-forest averaging), summing trees in the same order, so its outputs are
//! LightGBM's (checked against Python LightGBM in the tests).

use crate::ModelError;

/// LightGBM's `kZeroThreshold`: |x| ≤ 1e-35 counts as zero for "zero as missing" splits.
const ZERO_THRESHOLD: f64 = 1e-35;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Missing {
    None,
    Zero,
    NaN,
}

/// One split node. Children ≥ 0 are nodes of the same tree; < 0 are leaves (`!child`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node {
    pub threshold: f64,
    pub feature: u32,
    pub left: i32,
    pub right: i32,
    pub default_left: bool,
    pub missing: Missing,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Transform {
    Identity,
    Sigmoid(f64),
    Softmax,
}

#[derive(Debug, Clone)]
pub struct TreeEnsemble {
    nodes: Vec<Node>,
    leaves: Vec<f64>,
    /// Per tree: first node, first leaf, and whether it is a single leaf.
    trees: Vec<(u32, u32, bool)>,
    outputs: usize,
    features: usize,
    transform: Transform,
    /// Random forests average their trees instead of summing them.
    average: bool,
}

/// The split nodes of one tree (children ≥ 0 are nodes, < 0 leaves) in depth-first order, left
/// before right, from the root (node 0). Refuses node children out of range, a node reached twice
/// and nodes not reached at all, so the order is a permutation of every node.
fn preorder(left: &[i32], right: &[i32]) -> Result<Vec<usize>, ModelError> {
    let splits = left.len();
    let mut order = Vec::with_capacity(splits);
    let mut seen = vec![false; splits];
    let mut stack = vec![0usize];
    while let Some(k) = stack.pop() {
        if std::mem::replace(&mut seen[k], true) {
            return Err(bad(format!("node {k} has two parents")));
        }
        order.push(k);
        for child in [right[k], left[k]] {
            if child >= 0 {
                if child as usize >= splits {
                    return Err(bad(format!("child {child} out of range")));
                }
                stack.push(child as usize);
            }
        }
    }
    if order.len() != splits {
        return Err(bad(format!("{} of {splits} nodes are not reachable from the root", splits - order.len())));
    }
    Ok(order)
}

fn bad(message: String) -> ModelError {
    ModelError::Artifact { path: "model.txt".into(), message }
}

fn numbers<T: std::str::FromStr>(key: &str, value: &str, expected: usize) -> Result<Vec<T>, ModelError> {
    let parsed: Result<Vec<T>, _> = value.split(' ').filter(|s| !s.is_empty()).map(str::parse).collect();
    let v = parsed.map_err(|_| bad(format!("{key}: not a list of numbers")))?;
    if v.len() != expected {
        return Err(bad(format!("{key}: {} values, expected {expected}", v.len())));
    }
    Ok(v)
}

impl TreeEnsemble {
    /// Reads LightGBM's text model. Refuses what this evaluator does not implement (categorical
    /// splits, linear trees, objectives other than binary, multiclass, regression and quantile).
    pub fn parse(text: &str) -> Result<TreeEnsemble, ModelError> {
        let mut lines = text.lines();
        let mut outputs = 1usize;
        let mut features = 0usize;
        let mut transform = None;
        let mut average = false;
        for line in lines.by_ref() {
            if line.starts_with("Tree=") {
                break;
            }
            if line == "average_output" {
                average = true;
            } else if let Some(v) = line.strip_prefix("num_tree_per_iteration=") {
                outputs = v.parse().map_err(|_| bad(format!("bad line {line:?}")))?;
            } else if let Some(v) = line.strip_prefix("max_feature_idx=") {
                features = v.parse::<usize>().map_err(|_| bad(format!("bad line {line:?}")))? + 1;
            } else if let Some(v) = line.strip_prefix("objective=") {
                let mut parts = v.split(' ');
                transform = Some(match parts.next() {
                    Some("binary") => {
                        let sigmoid = parts
                            .find_map(|p| p.strip_prefix("sigmoid:"))
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| bad(format!("binary objective without sigmoid: {line:?}")))?;
                        Transform::Sigmoid(sigmoid)
                    }
                    Some("multiclass") => Transform::Softmax,
                    Some("regression") if parts.next().is_none() => Transform::Identity,
                    Some("quantile") => Transform::Identity,
                    _ => return Err(bad(format!("objective {v:?} is not evaluated in process"))),
                });
            }
        }
        let transform = transform.ok_or_else(|| bad("no objective line".into()))?;
        let mut ensemble = TreeEnsemble {
            nodes: Vec::new(),
            leaves: Vec::new(),
            trees: Vec::new(),
            outputs,
            features,
            transform,
            average,
        };
        // Each tree: key=value lines until a blank line.
        let mut fields: Vec<(&str, &str)> = Vec::new();
        for line in lines {
            if line.is_empty() || line.starts_with("Tree=") || line == "end of trees" {
                if !fields.is_empty() {
                    ensemble.add_tree(&fields)?;
                    fields.clear();
                }
                if line == "end of trees" {
                    break;
                }
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                fields.push((k, v));
            }
        }
        if ensemble.trees.is_empty() || !ensemble.trees.len().is_multiple_of(outputs) {
            return Err(bad(format!("{} trees for {outputs} outputs per iteration", ensemble.trees.len())));
        }
        Ok(ensemble)
    }

    fn add_tree(&mut self, fields: &[(&str, &str)]) -> Result<(), ModelError> {
        let get = |key: &str| {
            fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v).ok_or_else(|| bad(format!("tree without {key}")))
        };
        let leaves: usize = get("num_leaves")?.parse().map_err(|_| bad("num_leaves".into()))?;
        if get("num_cat")? != "0" {
            return Err(bad("categorical splits are not evaluated in process".into()));
        }
        if fields.iter().any(|(k, v)| *k == "is_linear" && *v != "0") {
            return Err(bad("linear trees are not evaluated in process".into()));
        }
        let leaf_values: Vec<f64> = numbers("leaf_value", get("leaf_value")?, leaves)?;
        let first_node = self.nodes.len() as u32;
        let first_leaf = self.leaves.len() as u32;
        self.leaves.extend(leaf_values);
        if leaves == 1 {
            self.trees.push((first_node, first_leaf, true));
            return Ok(());
        }
        let splits = leaves - 1;
        let feature: Vec<u32> = numbers("split_feature", get("split_feature")?, splits)?;
        let threshold: Vec<f64> = numbers("threshold", get("threshold")?, splits)?;
        let decision: Vec<u8> = numbers("decision_type", get("decision_type")?, splits)?;
        let left: Vec<i32> = numbers("left_child", get("left_child")?, splits)?;
        let right: Vec<i32> = numbers("right_child", get("right_child")?, splits)?;
        // Nodes are stored in depth-first order, so a left child follows its parent, often in the
        // same cache line; LightGBM numbers them in the order the splits were found.
        let order = preorder(&left, &right)?;
        let mut position = vec![0i32; splits];
        for (p, &k) in order.iter().enumerate() {
            position[k] = p as i32;
        }
        let renumber = |child: i32| if child >= 0 { position[child as usize] } else { child };
        for k in order {
            if feature[k] as usize >= self.features {
                return Err(bad(format!("split on feature {} of {}", feature[k], self.features)));
            }
            for child in [left[k], right[k]] {
                let ok = if child >= 0 { (child as usize) < splits } else { ((!child) as usize) < leaves };
                if !ok {
                    return Err(bad(format!("child {child} out of range")));
                }
            }
            let missing = match (decision[k] >> 2) & 3 {
                0 => Missing::None,
                1 => Missing::Zero,
                2 => Missing::NaN,
                _ => return Err(bad(format!("decision_type {}", decision[k]))),
            };
            if decision[k] & 1 != 0 {
                return Err(bad("categorical splits are not evaluated in process".into()));
            }
            self.nodes.push(Node {
                threshold: threshold[k],
                feature: feature[k],
                left: renumber(left[k]),
                right: renumber(right[k]),
                default_left: decision[k] & 2 != 0,
                missing,
            });
        }
        self.trees.push((first_node, first_leaf, false));
        Ok(())
    }

    pub fn outputs(&self) -> usize {
        self.outputs
    }

    pub fn features(&self) -> usize {
        self.features
    }

    pub fn tree_count(&self) -> usize {
        self.trees.len()
    }

    pub(crate) fn transform(&self) -> Transform {
        self.transform
    }

    /// Random forests average their trees.
    pub fn average_output(&self) -> bool {
        self.average
    }

    /// Tree `t`'s split nodes and leaf values.
    pub(crate) fn tree(&self, t: usize) -> (&[Node], &[f64]) {
        let (node, leaf, single) = self.trees[t];
        let (next_node, next_leaf) =
            self.trees.get(t + 1).map_or((self.nodes.len(), self.leaves.len()), |n| (n.0 as usize, n.1 as usize));
        let nodes = if single { &self.nodes[..0] } else { &self.nodes[node as usize..next_node] };
        (nodes, &self.leaves[leaf as usize..next_leaf])
    }

    /// One step down a tree from node `at`: the next node, or a leaf as `!leaf`.
    #[inline(always)]
    fn step(&self, first_node: u32, at: i32, row: &[f64]) -> i32 {
        debug_assert!(first_node as usize + (at as usize) < self.nodes.len() && row.len() >= self.features);
        // SAFETY: `add_tree` checked every child index against its tree's node count and every
        // split feature against `self.features`; `raw_row`, the only caller, checked the row's length.
        let n = unsafe { self.nodes.get_unchecked(first_node as usize + at as usize) };
        let x = unsafe { *row.get_unchecked(n.feature as usize) };
        // The common case first: a split without zero-as-missing on a number (NaN fails `<=` and
        // `>` alike and falls through to the rule below).
        if n.missing != Missing::Zero {
            if x <= n.threshold {
                return n.left;
            }
            if x > n.threshold {
                return n.right;
            }
        }
        self.step_rare(n, x)
    }

    /// LightGBM's rule for NaN and for zero-as-missing splits.
    #[cold]
    fn step_rare(&self, n: &Node, x: f64) -> i32 {
        let x = if x.is_nan() && n.missing != Missing::NaN { 0.0 } else { x };
        let go_default = match n.missing {
            Missing::Zero => x > -ZERO_THRESHOLD && x <= ZERO_THRESHOLD,
            Missing::NaN => x.is_nan(),
            Missing::None => false,
        };
        if go_default {
            if n.default_left {
                n.left
            } else {
                n.right
            }
        } else if x <= n.threshold {
            n.left
        } else {
            n.right
        }
    }

    /// Raw scores of one row (before the sigmoid/softmax) into `out` (`outputs()` values).
    /// Panics when `row` holds fewer than `features()` values (callers check widths first; the
    /// server answers 422).
    pub fn raw_row(&self, row: &[f64], out: &mut [f64]) {
        assert!(row.len() >= self.features, "a row of {} values for a model of {} features", row.len(), self.features);
        out.iter_mut().for_each(|o| *o = 0.0);
        // Four trees walked in lockstep: their loads and comparisons overlap instead of waiting on
        // each other. Leaf values are added in tree order, as LightGBM sums them.
        const LANES: usize = 4;
        let mut groups = self.trees.chunks_exact(LANES);
        let mut t = 0;
        for group in groups.by_ref() {
            let mut at = [0i32; LANES];
            for (a, tree) in at.iter_mut().zip(group) {
                if tree.2 {
                    *a = !0; // a single-leaf tree: leaf 0
                }
            }
            loop {
                let mut moving = false;
                for k in 0..LANES {
                    if at[k] >= 0 {
                        at[k] = self.step(group[k].0, at[k], row);
                        moving = true;
                    }
                }
                if !moving {
                    break;
                }
            }
            for k in 0..LANES {
                out[(t + k) % self.outputs] += self.leaves[group[k].1 as usize + (!at[k]) as usize];
            }
            t += LANES;
        }
        for tree in groups.remainder() {
            let mut at = if tree.2 { !0 } else { 0 };
            while at >= 0 {
                at = self.step(tree.0, at, row);
            }
            out[t % self.outputs] += self.leaves[tree.1 as usize + (!at) as usize];
            t += 1;
        }
        if self.average {
            let iterations = (self.trees.len() / self.outputs) as f64;
            out.iter_mut().for_each(|o| *o /= iterations);
        }
    }

    /// Predictions of one row into `out`: probabilities for classifiers, values for regressors.
    pub fn predict_row(&self, row: &[f64], out: &mut [f64]) {
        self.raw_row(row, out);
        match self.transform {
            Transform::Identity => {}
            Transform::Sigmoid(s) => out[0] = 1.0 / (1.0 + (-s * out[0]).exp()),
            Transform::Softmax => {
                let max = out.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let mut sum = 0.0;
                for o in out.iter_mut() {
                    *o = (*o - max).exp();
                    sum += *o;
                }
                out.iter_mut().for_each(|o| *o /= sum);
            }
        }
    }

    /// Predictions of row-major rows.
    pub fn predict(&self, rows: &[f64]) -> Vec<f64> {
        let n = rows.len() / self.features;
        let mut out = vec![0.0; n * self.outputs];
        for (row, o) in rows.chunks_exact(self.features).zip(out.chunks_exact_mut(self.outputs)) {
            self.predict_row(row, o);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-split binary model on two features: feature 1 ≤ 0.5 goes left.
    fn model(split_feature: &str, left: &str, right: &str) -> String {
        format!(
            "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\nmax_feature_idx=1\n\
             objective=binary sigmoid:1\nfeature_names=a b\n\nTree=0\nnum_leaves=2\nnum_cat=0\n\
             split_feature={split_feature}\nsplit_gain=1\nthreshold=0.5\ndecision_type=2\nleft_child={left}\n\
             right_child={right}\nleaf_value=-0.25 0.75\nleaf_weight=1 1\nleaf_count=1 1\ninternal_value=0\n\
             internal_weight=0\ninternal_count=2\nis_linear=0\nshrinkage=1\n\n\nend of trees\n"
        )
    }

    #[test]
    fn a_valid_model_walks_to_the_right_leaf() {
        let ensemble = TreeEnsemble::parse(&model("1", "-1", "-2")).unwrap();
        let mut out = [0.0];
        ensemble.raw_row(&[9.0, 0.5], &mut out);
        assert_eq!(out[0], -0.25);
        ensemble.raw_row(&[9.0, 0.5000001], &mut out);
        assert_eq!(out[0], 0.75);
    }

    /// A three-split tree on two features, nodes numbered as LightGBM does (in the order splits were
    /// found, not depth-first).
    fn three_splits(left: &str, right: &str) -> String {
        format!(
            "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\nmax_feature_idx=1\n\
             objective=regression\nfeature_names=a b\n\nTree=0\nnum_leaves=4\nnum_cat=0\n\
             split_feature=0 1 1\nsplit_gain=1 1 1\nthreshold=0.5 0.5 0.25\ndecision_type=2 2 2\n\
             left_child={left}\nright_child={right}\nleaf_value=1 2 3 4\nleaf_weight=1 1 1 1\n\
             leaf_count=1 1 1 1\ninternal_value=0 0 0\ninternal_weight=0 0 0\ninternal_count=4 2 2\n\
             is_linear=0\nshrinkage=1\n\n\nend of trees\n"
        )
    }

    #[test]
    fn nodes_stored_depth_first_walk_to_the_same_leaves() {
        // Root: a ≤ 0.5 goes to node 2 (b ≤ 0.25: leaf 0 or 3), else node 1 (b ≤ 0.5: leaf 1 or 2).
        let ensemble = TreeEnsemble::parse(&three_splits("2 -2 -1", "1 -3 -4")).unwrap();
        let lefts: Vec<i32> = ensemble.nodes.iter().map(|n| n.left).collect();
        assert_eq!(lefts, [1, -1, -2], "the root's left child is stored next to it");
        for (row, leaf_value) in [([0.0, 0.0], 1.0), ([0.0, 0.3], 4.0), ([1.0, 0.0], 2.0), ([1.0, 1.0], 3.0)] {
            let mut out = [0.0];
            ensemble.raw_row(&row, &mut out);
            assert_eq!(out[0], leaf_value, "{row:?}");
        }
        // A cycle (which would walk forever) and an unreachable node are refused.
        for (left, right, expected) in
            [("2 0 -1", "1 -3 -4", "node 0 has two parents"), ("-1 -2 -4", "1 -3 -2", "1 of 3 nodes are not reachable")]
        {
            let err = TreeEnsemble::parse(&three_splits(left, right)).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
    }

    /// The walk reads nodes and row values without bounds checks; these checks are what make that
    /// sound, so a model that breaks them must be refused when it is read.
    #[test]
    fn out_of_range_features_and_children_are_refused_when_read() {
        for (feature, left, right, expected) in [
            ("2", "-1", "-2", "split on feature 2 of 2"),
            ("1", "1", "-2", "child 1 out of range"),
            ("1", "-1", "-3", "child -3 out of range"),
        ] {
            let err = TreeEnsemble::parse(&model(feature, left, right)).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    #[should_panic(expected = "a row of 1 values for a model of 2 features")]
    fn a_short_row_is_refused_before_the_walk() {
        let ensemble = TreeEnsemble::parse(&model("1", "-1", "-2")).unwrap();
        ensemble.raw_row(&[9.0], &mut [0.0]);
    }
}
