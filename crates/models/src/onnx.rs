//! ONNX export of fitted tree ensembles (the `ai.onnx.ml` TreeEnsembleClassifier and
//! TreeEnsembleRegressor operators, opset 3), so a trading bot in Go, C++ or Java can run the model
//! with onnxruntime or any other ONNX runtime.
//!
//! The file is written directly in ONNX's protobuf encoding (a few message types; no protobuf
//! dependency). ONNX tree operators work in float32: each threshold is exported as the largest float32
//! not above LightGBM's double threshold, so that for every float32 input the exported model takes
//! exactly the branches LightGBM takes; only the sum of leaf values and the sigmoid/softmax round to
//! float32. Missing values (NaN) follow LightGBM: the split's default side where it learned one, else
//! the side a zero would go.
//!
//! Graph: input `features` (float32, `[N, d]`); outputs `label` (int64 `[N]`) and `probabilities`
//! (float32 `[N, classes]`) for classifiers, `variable` (float32 `[N, 1]`) for regressors. The feature
//! names and task are in the model's metadata (`feature_names` as JSON, `task`).

use crate::trees::{Missing, Transform, TreeEnsemble};
use crate::{ModelError, Task};

/// ONNX IR version 8 (onnxruntime ≥ 1.10 reads it).
const IR_VERSION: i64 = 8;
const ONNX_OPSET: i64 = 17;
const ML_OPSET: i64 = 3;

/// Protobuf wire-format writer for the handful of ONNX messages written here.
#[derive(Default)]
struct Proto(Vec<u8>);

impl Proto {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire_type));
    }

    fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.key(field, 0);
        self.varint(v as u64);
        self
    }

    fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Self {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    fn string(&mut self, field: u32, s: &str) -> &mut Self {
        self.bytes(field, s.as_bytes())
    }

    fn message(&mut self, field: u32, m: &Proto) -> &mut Self {
        self.bytes(field, &m.0)
    }

    fn packed_ints(&mut self, field: u32, values: &[i64]) -> &mut Self {
        let mut body = Proto::default();
        values.iter().for_each(|&v| body.varint(v as u64));
        self.bytes(field, &body.0)
    }

    fn packed_floats(&mut self, field: u32, values: &[f32]) -> &mut Self {
        let body: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.bytes(field, &body)
    }
}

// AttributeProto: name = 1, f = 2, i = 3, s = 4, floats = 7, ints = 8, strings = 9, type = 20.
fn attr_int(name: &str, v: i64) -> Proto {
    let mut a = Proto::default();
    a.string(1, name).int(3, v).int(20, 2);
    a
}

fn attr_string(name: &str, v: &str) -> Proto {
    let mut a = Proto::default();
    a.string(1, name).string(4, v).int(20, 3);
    a
}

fn attr_floats(name: &str, v: &[f32]) -> Proto {
    let mut a = Proto::default();
    a.string(1, name).packed_floats(7, v).int(20, 6);
    a
}

fn attr_ints(name: &str, v: &[i64]) -> Proto {
    let mut a = Proto::default();
    a.string(1, name).packed_ints(8, v).int(20, 7);
    a
}

fn attr_strings(name: &str, v: &[&str]) -> Proto {
    let mut a = Proto::default();
    a.string(1, name);
    v.iter().for_each(|s| {
        a.string(9, s);
    });
    a.int(20, 8);
    a
}

/// ValueInfoProto of a tensor; a dimension is a fixed size or a named (free) one.
enum Dim<'a> {
    Fixed(i64),
    Named(&'a str),
}

fn tensor_info(name: &str, elem_type: i64, dims: &[Dim]) -> Proto {
    let mut shape = Proto::default();
    for d in dims {
        let mut dim = Proto::default();
        match d {
            Dim::Fixed(n) => dim.int(1, *n),
            Dim::Named(s) => dim.string(2, s),
        };
        shape.message(1, &dim);
    }
    let mut tensor = Proto::default();
    tensor.int(1, elem_type).message(2, &shape);
    let mut ty = Proto::default();
    ty.message(1, &tensor);
    let mut info = Proto::default();
    info.string(1, name).message(2, &ty);
    info
}

const FLOAT: i64 = 1;
const INT64: i64 = 7;

/// The largest float32 not above `t`: `x <= t` and `x <= below(t)` agree for every float32 `x`.
fn float_not_above(t: f64) -> f32 {
    let f = t as f32;
    if f64::from(f) > t {
        f.next_down()
    } else {
        f
    }
}

/// The exported node table of the ensemble (ONNX's parallel arrays).
#[derive(Default)]
struct Nodes {
    tree_ids: Vec<i64>,
    node_ids: Vec<i64>,
    feature_ids: Vec<i64>,
    values: Vec<f32>,
    modes: Vec<&'static str>,
    true_ids: Vec<i64>,
    false_ids: Vec<i64>,
    missing_tracks_true: Vec<i64>,
    // Leaf weights: tree, node, output index, weight.
    leaf_tree_ids: Vec<i64>,
    leaf_node_ids: Vec<i64>,
    leaf_outputs: Vec<i64>,
    leaf_weights: Vec<f32>,
}

impl Nodes {
    fn leaf(&mut self, tree: i64, node: i64) {
        self.tree_ids.push(tree);
        self.node_ids.push(node);
        self.feature_ids.push(0);
        self.values.push(0.0);
        self.modes.push("LEAF");
        self.true_ids.push(0);
        self.false_ids.push(0);
        self.missing_tracks_true.push(0);
    }
}

fn export_error(message: String) -> ModelError {
    ModelError::InvalidParams(format!("ONNX export: {message}"))
}

impl TreeEnsemble {
    /// The ensemble as an ONNX model file (see the module docs for the graph).
    pub fn to_onnx(&self, task: Task, feature_names: &[String]) -> Result<Vec<u8>, ModelError> {
        if feature_names.len() != self.features() {
            return Err(export_error(format!("{} names for {} features", feature_names.len(), self.features())));
        }
        // Leaf values are scaled so that ONNX's plain sum, then its logistic/softmax, is LightGBM's
        // output: the sigmoid's slope for binary models, 1/trees for random forests' averages.
        let iterations = (self.tree_count() / self.outputs()) as f64;
        let mut scale = if self.average_output() { 1.0 / iterations } else { 1.0 };
        let post_transform = match (task, self.transform()) {
            (Task::Binary, Transform::Sigmoid(s)) => {
                scale *= s;
                "LOGISTIC"
            }
            (Task::Multiclass { .. }, Transform::Softmax) => "SOFTMAX",
            (Task::Regression | Task::Quantile { .. }, Transform::Identity) => "NONE",
            (task, transform) => return Err(export_error(format!("task {task:?} with output {transform:?}"))),
        };
        let mut nodes = Nodes::default();
        for t in 0..self.tree_count() {
            let tree = t as i64;
            let output = (t % self.outputs()) as i64;
            let (splits, leaves) = self.tree(t);
            let leaf_id = |leaf: usize| (splits.len() + leaf) as i64;
            for (k, node) in splits.iter().enumerate() {
                let child = |c: i32| if c >= 0 { i64::from(c) } else { leaf_id((!c) as usize) };
                let threshold = float_not_above(node.threshold);
                let nan_goes_left = match node.missing {
                    Missing::NaN => node.default_left,
                    // LightGBM reads NaN as 0.0 here.
                    Missing::None => 0.0 <= node.threshold,
                    Missing::Zero => return Err(export_error(
                        "a split treats zero as missing (zero_as_missing), which ONNX tree operators cannot express"
                            .into(),
                    )),
                };
                nodes.tree_ids.push(tree);
                nodes.node_ids.push(k as i64);
                nodes.feature_ids.push(i64::from(node.feature));
                nodes.values.push(threshold);
                nodes.modes.push("BRANCH_LEQ");
                nodes.true_ids.push(child(node.left));
                nodes.false_ids.push(child(node.right));
                nodes.missing_tracks_true.push(i64::from(nan_goes_left));
            }
            for (j, &value) in leaves.iter().enumerate() {
                let id = leaf_id(j);
                nodes.leaf(tree, id);
                nodes.leaf_tree_ids.push(tree);
                nodes.leaf_node_ids.push(id);
                nodes.leaf_outputs.push(output);
                nodes.leaf_weights.push((value * scale) as f32);
            }
        }

        let mut attributes = vec![
            attr_ints("nodes_treeids", &nodes.tree_ids),
            attr_ints("nodes_nodeids", &nodes.node_ids),
            attr_ints("nodes_featureids", &nodes.feature_ids),
            attr_floats("nodes_values", &nodes.values),
            attr_strings("nodes_modes", &nodes.modes),
            attr_ints("nodes_truenodeids", &nodes.true_ids),
            attr_ints("nodes_falsenodeids", &nodes.false_ids),
            attr_ints("nodes_missing_value_tracks_true", &nodes.missing_tracks_true),
            attr_string("post_transform", post_transform),
        ];
        let (op, outputs) = if task.is_classification() {
            let classes = task.outputs().max(2);
            let labels: Vec<i64> = (0..classes as i64).collect();
            attributes.extend([
                attr_ints("class_treeids", &nodes.leaf_tree_ids),
                attr_ints("class_nodeids", &nodes.leaf_node_ids),
                attr_ints("class_ids", &nodes.leaf_outputs),
                attr_floats("class_weights", &nodes.leaf_weights),
                attr_ints("classlabels_int64s", &labels),
            ]);
            let outputs = vec![
                ("label", tensor_info("label", INT64, &[Dim::Named("N")])),
                ("probabilities", tensor_info("probabilities", FLOAT, &[Dim::Named("N"), Dim::Fixed(classes as i64)])),
            ];
            ("TreeEnsembleClassifier", outputs)
        } else {
            attributes.extend([
                attr_ints("target_treeids", &nodes.leaf_tree_ids),
                attr_ints("target_nodeids", &nodes.leaf_node_ids),
                attr_ints("target_ids", &nodes.leaf_outputs),
                attr_floats("target_weights", &nodes.leaf_weights),
                attr_int("n_targets", 1),
                attr_string("aggregate_function", "SUM"),
            ]);
            let outputs = vec![("variable", tensor_info("variable", FLOAT, &[Dim::Named("N"), Dim::Fixed(1)]))];
            ("TreeEnsembleRegressor", outputs)
        };

        // NodeProto: input = 1, output = 2, name = 3, op_type = 4, attribute = 5, domain = 7.
        let mut node = Proto::default();
        node.string(1, "features");
        outputs.iter().for_each(|(name, _)| {
            node.string(2, name);
        });
        node.string(3, "trees").string(4, op);
        attributes.iter().for_each(|a| {
            node.message(5, a);
        });
        node.string(7, "ai.onnx.ml");

        // GraphProto: node = 1, name = 2, input = 11, output = 12.
        let mut graph = Proto::default();
        graph.message(1, &node).string(2, "quantpipe");
        graph.message(11, &tensor_info("features", FLOAT, &[Dim::Named("N"), Dim::Fixed(self.features() as i64)]));
        outputs.iter().for_each(|(_, info)| {
            graph.message(12, info);
        });

        // ModelProto: ir_version = 1, producer_name = 2, producer_version = 3, graph = 7,
        // opset_import = 8, metadata_props = 14.
        let mut model = Proto::default();
        model.int(1, IR_VERSION).string(2, "quantpipe").string(3, env!("CARGO_PKG_VERSION")).message(7, &graph);
        for (domain, version) in [("", ONNX_OPSET), ("ai.onnx.ml", ML_OPSET)] {
            let mut opset = Proto::default();
            opset.string(1, domain).int(2, version);
            model.message(8, &opset);
        }
        let names = serde_json::to_string(feature_names).expect("names serialise");
        let task_json = serde_json::to_string(&task).expect("task serialises");
        for (key, value) in [("feature_names", names.as_str()), ("task", task_json.as_str())] {
            let mut entry = Proto::default();
            entry.string(1, key).string(2, value);
            model.message(14, &entry);
        }
        Ok(model.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_thresholds() {
        let mut p = Proto::default();
        p.int(1, 300);
        assert_eq!(p.0, [0x08, 0xac, 0x02]);
        let mut p = Proto::default();
        p.int(3, -1);
        assert_eq!(p.0.len(), 11, "negative int64 is ten varint bytes");
        for t in [0.1f64, -0.1, 1e-40, 3.0, 1e300, -2.5e-7] {
            let f = float_not_above(t);
            assert!(f64::from(f) <= t && f64::from(f.next_up()) > t, "{t}: {f}");
        }
    }
}
