//! Neural nets on the CPU, built on `candle` (Hugging Face's Rust tensor library; its `candle-nn`
//! gives the layers, the LSTM cell and AdamW): a multilayer perceptron over one feature row, and an
//! LSTM over the last `window` feature rows.
//!
//! - Deterministic: weights start from quantpipe's own seeded generator (PyTorch's default
//!   initialisation ranges), mini-batches are shuffled by it, and nothing else draws at random, so
//!   the same rows and seed give the same model bytes.
//! - Early stopping: the last `validation_fraction` of the rows in time order is held out (training
//!   rows whose labels reach into it are purged); training stops after `patience` epochs without a
//!   lower held-out loss and keeps the best epoch's weights.
//! - Regression targets are standardised for training and scaled back at prediction.
//! - A sequence model's row is its window, oldest step first: `window × features` values, named
//!   `rsi_14[t-15]` … `rsi_14[t]` ([`sequence_names`]); [`gather_windows`] builds such rows from
//!   feature columns, for the pipeline, `quantpipe train` and the server's live features alike.
//! - Small batches (the server's single rows) run through a plain-Rust forward pass over the same
//!   weights, without tensor allocation; large ones through candle's matrix kernels. Both agree to
//!   f32 rounding (tested).
//! - Explanations are integrated gradients from the all-zero row (the training mean under the default
//!   standardisation): per-feature contributions whose sum is the raw output minus the output at that
//!   baseline, which is reported as the bias.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Module, Tensor, Var, D};
use candle_nn::rnn::{LSTMConfig, LSTM, RNN};
use candle_nn::{Linear, Optimizer, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::rng::SplitMix64;
use crate::{check_rows, read_meta, refuse_missing, ArtifactMeta, Dataset, Importance, Model, ModelError, Task};

/// The weights file of a neural-net artifact (safetensors: NumPy and PyTorch read it).
pub const WEIGHTS_FILE: &str = "network.safetensors";

/// Rows up to this many go through the plain-Rust forward pass.
const SMALL_BATCH: usize = 16;
/// Integration steps of integrated gradients.
const EXPLAIN_STEPS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NeuralObjective {
    /// Labels 0/1, cross-entropy on a logit; predicts P(1).
    #[default]
    Binary,
    /// Labels 0..num_class, softmax cross-entropy; predicts one probability per class.
    Multiclass,
    /// Squared error on the standardised target; predicts the value.
    Regression,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    #[default]
    Relu,
    Tanh,
}

fn default_mlp_hidden() -> Vec<usize> {
    vec![64, 32]
}
fn default_lstm_hidden() -> usize {
    32
}
fn default_window() -> usize {
    16
}
fn one_layer() -> usize {
    1
}
fn default_learning_rate() -> f64 {
    1e-3
}
fn default_weight_decay() -> f64 {
    1e-2
}
fn default_batch_size() -> usize {
    256
}
fn default_max_epochs() -> usize {
    100
}
fn default_patience() -> usize {
    10
}
fn default_validation_fraction() -> f64 {
    0.2
}
fn default_seed() -> u64 {
    42
}

/// `kind = "mlp"`: a multilayer perceptron over one feature row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpParams {
    #[serde(default)]
    pub objective: NeuralObjective,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_class: Option<usize>,
    /// Units of each hidden layer, input side first.
    #[serde(default = "default_mlp_hidden")]
    pub hidden: Vec<usize>,
    #[serde(default)]
    pub activation: Activation,
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f64,
    /// AdamW's decoupled weight decay.
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_max_epochs")]
    pub max_epochs: usize,
    /// Epochs without a lower held-out loss before training stops (needs `validation_fraction` > 0).
    #[serde(default = "default_patience")]
    pub patience: usize,
    /// The last fraction of the training rows, in time order, held out for early stopping (0: train
    /// `max_epochs` epochs).
    #[serde(default = "default_validation_fraction")]
    pub validation_fraction: f64,
    #[serde(default = "default_seed")]
    pub seed: u64,
}

impl Default for MlpParams {
    fn default() -> Self {
        MlpParams {
            objective: NeuralObjective::Binary,
            num_class: None,
            hidden: default_mlp_hidden(),
            activation: Activation::Relu,
            learning_rate: default_learning_rate(),
            weight_decay: default_weight_decay(),
            batch_size: default_batch_size(),
            max_epochs: default_max_epochs(),
            patience: default_patience(),
            validation_fraction: default_validation_fraction(),
            seed: default_seed(),
        }
    }
}

/// `kind = "lstm"`: an LSTM over the last `window` feature rows, then optional dense layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LstmParams {
    #[serde(default)]
    pub objective: NeuralObjective,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_class: Option<usize>,
    /// Feature rows per sequence: the bar being predicted and the `window − 1` before it.
    #[serde(default = "default_window")]
    pub window: usize,
    /// Units of each LSTM layer.
    #[serde(default = "default_lstm_hidden")]
    pub hidden: usize,
    /// Stacked LSTM layers.
    #[serde(default = "one_layer")]
    pub layers: usize,
    /// Dense layers between the last LSTM state and the output.
    #[serde(default)]
    pub head: Vec<usize>,
    /// Activation of the dense head layers.
    #[serde(default)]
    pub activation: Activation,
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f64,
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_max_epochs")]
    pub max_epochs: usize,
    #[serde(default = "default_patience")]
    pub patience: usize,
    #[serde(default = "default_validation_fraction")]
    pub validation_fraction: f64,
    #[serde(default = "default_seed")]
    pub seed: u64,
}

impl Default for LstmParams {
    fn default() -> Self {
        LstmParams {
            objective: NeuralObjective::Binary,
            num_class: None,
            window: default_window(),
            hidden: default_lstm_hidden(),
            layers: 1,
            head: Vec::new(),
            activation: Activation::Relu,
            learning_rate: default_learning_rate(),
            weight_decay: default_weight_decay(),
            batch_size: default_batch_size(),
            max_epochs: default_max_epochs(),
            patience: default_patience(),
            validation_fraction: default_validation_fraction(),
            seed: default_seed(),
        }
    }
}

/// The optimisation settings both families share.
#[derive(Debug, Clone, Copy)]
struct Optimisation {
    learning_rate: f64,
    weight_decay: f64,
    batch_size: usize,
    max_epochs: usize,
    patience: usize,
    validation_fraction: f64,
    seed: u64,
}

impl Optimisation {
    fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::InvalidParams(m));
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0 && self.learning_rate < 1.0) {
            return bad(format!("learning_rate = {}: expected 0 < v < 1", self.learning_rate));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!("weight_decay = {}: expected ≥ 0", self.weight_decay));
        }
        if !(1..=65_536).contains(&self.batch_size) {
            return bad(format!("batch_size = {}: expected 1 to 65536", self.batch_size));
        }
        if !(1..=10_000).contains(&self.max_epochs) {
            return bad(format!("max_epochs = {}: expected 1 to 10000", self.max_epochs));
        }
        if !(0.0..0.5).contains(&self.validation_fraction) {
            return bad(format!("validation_fraction = {}: expected 0 ≤ v < 0.5", self.validation_fraction));
        }
        if self.validation_fraction > 0.0 && self.patience == 0 {
            return bad("patience = 0: expected ≥ 1 epoch (or validation_fraction = 0 to train max_epochs)".into());
        }
        Ok(())
    }
}

fn objective_task(objective: NeuralObjective, num_class: Option<usize>) -> Result<Task, ModelError> {
    let bad = |m: &str| Err(ModelError::InvalidParams(m.into()));
    match (objective, num_class) {
        (NeuralObjective::Multiclass, Some(classes)) if (3..=1000).contains(&classes) => {
            Ok(Task::Multiclass { classes })
        }
        (NeuralObjective::Multiclass, Some(_)) => {
            bad("num_class: expected 3 to 1000 (use objective = \"binary\" for two)")
        }
        (NeuralObjective::Multiclass, None) => bad("objective = \"multiclass\" needs num_class"),
        (_, Some(_)) => bad("num_class only applies to objective = \"multiclass\""),
        (NeuralObjective::Binary, None) => Ok(Task::Binary),
        (NeuralObjective::Regression, None) => Ok(Task::Regression),
    }
}

fn check_layers(key: &str, units: &[usize]) -> Result<(), ModelError> {
    match units.iter().position(|&u| !(1..=4096).contains(&u)) {
        Some(i) => Err(ModelError::InvalidParams(format!("{key}[{i}] = {}: expected 1 to 4096 units", units[i]))),
        None => Ok(()),
    }
}

impl MlpParams {
    pub fn task(&self) -> Result<Task, ModelError> {
        let task = objective_task(self.objective, self.num_class)?;
        if self.hidden.len() > 8 {
            return Err(ModelError::InvalidParams(format!("hidden: {} layers; at most 8", self.hidden.len())));
        }
        check_layers("hidden", &self.hidden)?;
        self.optimisation().validate()?;
        Ok(task)
    }

    fn optimisation(&self) -> Optimisation {
        Optimisation {
            learning_rate: self.learning_rate,
            weight_decay: self.weight_decay,
            batch_size: self.batch_size,
            max_epochs: self.max_epochs,
            patience: self.patience,
            validation_fraction: self.validation_fraction,
            seed: self.seed,
        }
    }
}

impl LstmParams {
    pub fn task(&self) -> Result<Task, ModelError> {
        let task = objective_task(self.objective, self.num_class)?;
        if !(1..=512).contains(&self.window) {
            return Err(ModelError::InvalidParams(format!("window = {}: expected 1 to 512 rows", self.window)));
        }
        if !(1..=4096).contains(&self.hidden) {
            return Err(ModelError::InvalidParams(format!("hidden = {}: expected 1 to 4096 units", self.hidden)));
        }
        if !(1..=4).contains(&self.layers) {
            return Err(ModelError::InvalidParams(format!("layers = {}: expected 1 to 4", self.layers)));
        }
        check_layers("head", &self.head)?;
        self.optimisation().validate()?;
        Ok(task)
    }

    fn optimisation(&self) -> Optimisation {
        Optimisation {
            learning_rate: self.learning_rate,
            weight_decay: self.weight_decay,
            batch_size: self.batch_size,
            max_epochs: self.max_epochs,
            patience: self.patience,
            validation_fraction: self.validation_fraction,
            seed: self.seed,
        }
    }
}

/// Names of a sequence model's inputs: each feature at each step of the window, oldest first
/// (`rsi_14[t-2]`, …, `rsi_14[t]` for a window of 3).
pub fn sequence_names(base: &[String], window: usize) -> Vec<String> {
    (0..window)
        .rev()
        .flat_map(|lag| {
            base.iter().map(move |name| if lag == 0 { format!("{name}[t]") } else { format!("{name}[t-{lag}]") })
        })
        .collect()
}

/// Splits a sequence input name into its feature and how many rows back it is (`rsi_14[t-3]` →
/// `("rsi_14", 3)`); `None` for a plain feature name.
pub fn parse_sequence_name(name: &str) -> Option<(&str, usize)> {
    let inner = name.strip_suffix(']')?;
    let open = inner.rfind('[')?;
    let (feature, step) = (&inner[..open], &inner[open + 1..]);
    match step {
        "t" => Some((feature, 0)),
        _ => step.strip_prefix("t-")?.parse().ok().map(|lag: usize| (feature, lag)),
    }
}

/// Sequence rows for the rows ending at `ends` (indices into `columns`, which are feature columns
/// over consecutive bars): each row is the window's `window × columns.len()` values, oldest step
/// first. Every end must have `window − 1` bars before it.
pub fn gather_windows(columns: &[Vec<f64>], ends: &[usize], window: usize) -> Vec<f64> {
    let d = columns.len();
    let mut out = Vec::with_capacity(ends.len() * window * d);
    for &end in ends {
        assert!(end + 1 >= window, "row {end} has fewer than {window} bars before it");
        for bar in end + 1 - window..=end {
            out.extend(columns.iter().map(|c| c[bar]));
        }
    }
    out
}

/// The shape of a network.
#[derive(Debug, Clone, PartialEq)]
enum Architecture {
    Mlp { hidden: Vec<usize>, activation: Activation },
    Lstm { window: usize, hidden: usize, layers: usize, head: Vec<usize>, activation: Activation },
}

impl Architecture {
    fn family(&self) -> &'static str {
        match self {
            Architecture::Mlp { .. } => "mlp",
            Architecture::Lstm { .. } => "lstm",
        }
    }

    /// Every weight tensor's name and shape, in creation order.
    fn tensors(&self, inputs: usize, outputs: usize) -> Vec<(String, Vec<usize>)> {
        let mut shapes = Vec::new();
        let dense = |shapes: &mut Vec<(String, Vec<usize>)>, prefix: &str, units: &[usize], first: usize| {
            let mut width = first;
            for (i, &u) in units.iter().enumerate() {
                shapes.push((format!("{prefix}{i}.weight"), vec![u, width]));
                shapes.push((format!("{prefix}{i}.bias"), vec![u]));
                width = u;
            }
            width
        };
        let last = match self {
            Architecture::Mlp { hidden, .. } => dense(&mut shapes, "dense", hidden, inputs),
            Architecture::Lstm { window, hidden, layers, head, .. } => {
                let step = inputs / window;
                for l in 0..*layers {
                    let width = if l == 0 { step } else { *hidden };
                    shapes.push((format!("lstm.weight_ih_l{l}"), vec![4 * hidden, width]));
                    shapes.push((format!("lstm.weight_hh_l{l}"), vec![4 * hidden, *hidden]));
                    shapes.push((format!("lstm.bias_ih_l{l}"), vec![4 * hidden]));
                    shapes.push((format!("lstm.bias_hh_l{l}"), vec![4 * hidden]));
                }
                dense(&mut shapes, "head", head, *hidden)
            }
        };
        shapes.push(("output.weight".into(), vec![outputs, last]));
        shapes.push(("output.bias".into(), vec![outputs]));
        shapes
    }
}

fn nn(e: candle_core::Error) -> ModelError {
    ModelError::Training(format!("candle: {e}"))
}

/// The network's layers over its weight variables (which the optimiser updates in place).
struct Network {
    arch: Architecture,
    varmap: VarMap,
    dense: Vec<Linear>,
    lstm: Vec<LSTM>,
    output: Linear,
}

impl Network {
    /// Builds the layers over `weights` (every tensor of `arch.tensors`, checked by name and shape).
    fn new(
        arch: Architecture,
        inputs: usize,
        outputs: usize,
        weights: HashMap<String, Tensor>,
    ) -> Result<Network, String> {
        let varmap = VarMap::new();
        {
            let mut vars = varmap.data().lock().unwrap_or_else(|e| e.into_inner());
            for (name, shape) in arch.tensors(inputs, outputs) {
                let tensor = weights.get(&name).ok_or_else(|| format!("weight {name} is missing"))?;
                if tensor.dims() != shape.as_slice() {
                    return Err(format!("weight {name} has shape {:?}, expected {shape:?}", tensor.dims()));
                }
                let tensor = tensor.to_dtype(DType::F32).map_err(|e| e.to_string())?;
                vars.insert(name, Var::from_tensor(&tensor).map_err(|e| e.to_string())?);
            }
            if let Some(extra) = weights.keys().find(|k| !vars.contains_key(*k)) {
                return Err(format!("weight {extra} does not belong to this network"));
            }
        }
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let var = |name: &str| -> Result<Tensor, String> {
            let vars = varmap.data().lock().unwrap_or_else(|e| e.into_inner());
            vars.get(name).map(|v| v.as_tensor().clone()).ok_or_else(|| format!("weight {name} is missing"))
        };
        let linear = |prefix: &str| -> Result<Linear, String> {
            Ok(Linear::new(var(&format!("{prefix}.weight"))?, Some(var(&format!("{prefix}.bias"))?)))
        };
        let (dense, lstm) = match &arch {
            Architecture::Mlp { hidden, .. } => {
                ((0..hidden.len()).map(|i| linear(&format!("dense{i}"))).collect::<Result<_, _>>()?, Vec::new())
            }
            Architecture::Lstm { window, hidden, layers, head, .. } => {
                let mut cells = Vec::new();
                for l in 0..*layers {
                    let width = if l == 0 { inputs / window } else { *hidden };
                    let config = LSTMConfig { layer_idx: l, ..LSTMConfig::default() };
                    cells.push(LSTM::new(width, *hidden, config, vb.pp("lstm")).map_err(|e| e.to_string())?);
                }
                ((0..head.len()).map(|i| linear(&format!("head{i}"))).collect::<Result<_, _>>()?, cells)
            }
        };
        let output = linear("output")?;
        Ok(Network { arch, varmap, dense, lstm, output })
    }

    /// PyTorch's default initialisation: U(±1/√fan_in) for dense layers (weight and bias), U(±1/√hidden)
    /// for LSTMs.
    fn initial_weights(arch: &Architecture, inputs: usize, outputs: usize, seed: u64) -> HashMap<String, Tensor> {
        let mut rng = SplitMix64(seed ^ 0x005E_ED0F_4E75);
        let mut weights = HashMap::new();
        let mut fan_in = inputs;
        for (name, shape) in arch.tensors(inputs, outputs) {
            if shape.len() == 2 {
                fan_in = shape[1];
            }
            let bound = match arch {
                Architecture::Lstm { hidden, .. } if name.starts_with("lstm.") => 1.0 / (*hidden as f64).sqrt(),
                // A bias follows its weight, whose fan-in it shares.
                _ => 1.0 / (fan_in as f64).sqrt(),
            };
            let values: Vec<f32> = (0..shape.iter().product::<usize>()).map(|_| rng.symmetric(bound)).collect();
            let tensor = Tensor::from_vec(values, shape.as_slice(), &Device::Cpu).expect("shape matches its values");
            weights.insert(name, tensor);
        }
        weights
    }

    /// Raw outputs (logits for classifiers, standardised values for regressors): `[rows, outputs]`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = match &self.arch {
            Architecture::Mlp { .. } => x.clone(),
            Architecture::Lstm { window, .. } => {
                let (rows, width) = x.dims2()?;
                let mut sequence = x.reshape((rows, *window, width / window))?;
                let mut last = None;
                for (l, cell) in self.lstm.iter().enumerate() {
                    let states = cell.seq(&sequence)?;
                    if l + 1 < self.lstm.len() {
                        sequence = cell.states_to_tensor(&states)?;
                    } else {
                        last = states.last().map(|s| s.h().clone());
                    }
                }
                last.expect("a window has at least one step")
            }
        };
        let activation = match &self.arch {
            Architecture::Mlp { activation, .. } | Architecture::Lstm { activation, .. } => *activation,
        };
        for layer in &self.dense {
            h = layer.forward(&h)?;
            h = match activation {
                Activation::Relu => h.relu()?,
                Activation::Tanh => h.tanh()?,
            };
        }
        self.output.forward(&h)
    }

    fn weights(&self) -> HashMap<String, Tensor> {
        let vars = self.varmap.data().lock().unwrap_or_else(|e| e.into_inner());
        vars.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect()
    }

    fn snapshot(&self) -> candle_core::Result<HashMap<String, Tensor>> {
        self.weights().into_iter().map(|(k, t)| Ok((k, t.copy()?))).collect()
    }

    fn restore(&self, snapshot: &HashMap<String, Tensor>) -> candle_core::Result<()> {
        let vars = self.varmap.data().lock().unwrap_or_else(|e| e.into_inner());
        for (name, var) in vars.iter() {
            var.set(&snapshot[name])?;
        }
        Ok(())
    }
}

/// Per-row loss on raw outputs `z` (`[rows, outputs]`), weighted mean.
fn loss(task: Task, z: &Tensor, y: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let per_row = match task {
        // softplus(z) − y·z, written to stay finite for large |z|.
        Task::Binary => {
            let z = z.squeeze(1)?;
            ((z.relu()? - (y * &z)?)? + (z.abs()?.neg()?.exp()? + 1.0)?.log()?)?
        }
        Task::Multiclass { .. } => {
            let log_p = candle_nn::ops::log_softmax(z, D::Minus1)?;
            let ids = y.to_dtype(DType::U32)?.unsqueeze(1)?;
            log_p.gather(&ids, 1)?.squeeze(1)?.neg()?
        }
        Task::Regression | Task::Quantile { .. } => (z.squeeze(1)? - y)?.sqr()?,
    };
    (per_row * w)?.sum_all()? / w.sum_all()?.to_scalar::<f32>()? as f64
}

/// The fitted weights as plain vectors, for the allocation-free forward pass.
#[derive(Debug, Clone)]
struct PlainLayer {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
}

impl PlainLayer {
    fn from(weights: &HashMap<String, Tensor>, prefix: &str) -> candle_core::Result<PlainLayer> {
        let w = &weights[&format!("{prefix}.weight")];
        Ok(PlainLayer {
            weight: w.flatten_all()?.to_vec1()?,
            bias: weights[&format!("{prefix}.bias")].to_vec1()?,
            inputs: w.dims2()?.1,
        })
    }

    /// `out = W·x + b`.
    fn apply(&self, x: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.extend(self.weight.chunks_exact(self.inputs).zip(&self.bias).map(|(w, b)| dot(w, x) + b));
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

#[derive(Debug, Clone)]
struct PlainLstm {
    w_ih: PlainLayer,
    w_hh: PlainLayer,
}

#[derive(Debug, Clone)]
struct PlainNetwork {
    lstm: Vec<PlainLstm>,
    dense: Vec<PlainLayer>,
    output: PlainLayer,
    window: usize,
    activation: Activation,
}

impl PlainNetwork {
    fn from(net: &Network) -> candle_core::Result<PlainNetwork> {
        let weights = net.weights();
        let (prefix, count, window, activation, layers) = match &net.arch {
            Architecture::Mlp { hidden, activation } => ("dense", hidden.len(), 1, *activation, 0),
            Architecture::Lstm { window, layers, head, activation, .. } => {
                ("head", head.len(), *window, *activation, *layers)
            }
        };
        let lstm = (0..layers)
            .map(|l| {
                let part = |w: &str, b: &str| -> candle_core::Result<PlainLayer> {
                    let w = &weights[&format!("lstm.{w}_l{l}")];
                    Ok(PlainLayer {
                        weight: w.flatten_all()?.to_vec1()?,
                        bias: weights[&format!("lstm.{b}_l{l}")].to_vec1()?,
                        inputs: w.dims2()?.1,
                    })
                };
                Ok(PlainLstm { w_ih: part("weight_ih", "bias_ih")?, w_hh: part("weight_hh", "bias_hh")? })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let dense =
            (0..count).map(|i| PlainLayer::from(&weights, &format!("{prefix}{i}"))).collect::<Result<_, _>>()?;
        Ok(PlainNetwork { lstm, dense, output: PlainLayer::from(&weights, "output")?, window, activation })
    }

    /// Raw outputs of one row.
    fn forward(&self, row: &[f64]) -> Vec<f32> {
        let x: Vec<f32> = row.iter().map(|&v| v as f32).collect();
        let mut h = if self.lstm.is_empty() {
            x
        } else {
            let step = x.len() / self.window;
            let mut sequence: Vec<Vec<f32>> = x.chunks_exact(step).map(<[f32]>::to_vec).collect();
            let (mut gates_x, mut gates_h) = (Vec::new(), Vec::new());
            for cell in &self.lstm {
                let hidden = cell.w_hh.inputs;
                let (mut h, mut c) = (vec![0f32; hidden], vec![0f32; hidden]);
                let mut outputs = Vec::with_capacity(sequence.len());
                for input in &sequence {
                    cell.w_ih.apply(input, &mut gates_x);
                    cell.w_hh.apply(&h, &mut gates_h);
                    // PyTorch's gate order: input, forget, cell, output.
                    for k in 0..hidden {
                        let gate = |g: usize| gates_x[g * hidden + k] + gates_h[g * hidden + k];
                        let (i, f, g, o) = (sigmoid(gate(0)), sigmoid(gate(1)), gate(2).tanh(), sigmoid(gate(3)));
                        c[k] = f * c[k] + i * g;
                        h[k] = o * c[k].tanh();
                    }
                    outputs.push(h.clone());
                }
                sequence = outputs;
            }
            sequence.pop().expect("a window has at least one step")
        };
        let mut next = Vec::new();
        for layer in &self.dense {
            layer.apply(&h, &mut next);
            for v in &mut next {
                *v = match self.activation {
                    Activation::Relu => v.max(0.0),
                    Activation::Tanh => v.tanh(),
                };
            }
            std::mem::swap(&mut h, &mut next);
        }
        self.output.apply(&h, &mut next);
        next
    }
}

/// Per row, per output, per feature contributions; and the raw outputs at the zero row.
type Attributions = (Vec<Vec<Vec<f64>>>, Vec<f64>);

/// A fitted MLP or LSTM.
pub struct NeuralModel {
    network: Network,
    plain: PlainNetwork,
    task: Task,
    feature_names: Vec<String>,
    params: serde_json::Value,
    training: serde_json::Value,
    /// Regression: the training target's mean and standard deviation (outputs are scaled back).
    target_mean: f64,
    target_scale: f64,
}

impl NeuralModel {
    pub fn fit_mlp(data: &Dataset, params: &MlpParams) -> Result<NeuralModel, ModelError> {
        let task = params.task()?;
        let arch = Architecture::Mlp { hidden: params.hidden.clone(), activation: params.activation };
        let value = serde_json::to_value(params).expect("parameters serialise");
        Self::fit(data, arch, task, params.optimisation(), value)
    }

    pub fn fit_lstm(data: &Dataset, params: &LstmParams) -> Result<NeuralModel, ModelError> {
        let task = params.task()?;
        let d = data.n_features();
        if !d.is_multiple_of(params.window) {
            return Err(ModelError::InvalidData(format!(
                "an LSTM with window = {} takes rows of {} steps × features, and {d} inputs are not a whole \
                 number of steps (quantpipe run and quantpipe train build the windows from the feature set)",
                params.window, params.window
            )));
        }
        let arch = Architecture::Lstm {
            window: params.window,
            hidden: params.hidden,
            layers: params.layers,
            head: params.head.clone(),
            activation: params.activation,
        };
        let value = serde_json::to_value(params).expect("parameters serialise");
        Self::fit(data, arch, task, params.optimisation(), value)
    }

    /// Trains on one thread: candle hands every matrix product to a thread pool, and for the
    /// small products of a mini-batch the hand-off costs more than it saves (10 epochs of a 64-32 MLP
    /// on 80k × 50: 1.50 s on one thread, 2.39 s on two); the pipeline trains models side by side
    /// instead, one per core.
    fn fit(
        data: &Dataset,
        arch: Architecture,
        task: Task,
        opt: Optimisation,
        params: serde_json::Value,
    ) -> Result<NeuralModel, ModelError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .map_err(|e| ModelError::Training(format!("thread pool: {e}")))?;
        pool.install(|| Self::fit_on_this_thread(data, arch, task, opt, params))
    }

    fn fit_on_this_thread(
        data: &Dataset,
        arch: Architecture,
        task: Task,
        opt: Optimisation,
        params: serde_json::Value,
    ) -> Result<NeuralModel, ModelError> {
        data.validate()?;
        task.check_labels(data.labels)?;
        refuse_missing(
            data.feature_names,
            data.features,
            "neural nets need every value; keep the default preprocessing (median imputation) or impute first",
        )?;
        let n = data.rows();
        let d = data.n_features();
        let outputs = task.outputs();
        // Hold out the last rows for early stopping; purge training rows whose labels reach into them.
        let held = (n as f64 * opt.validation_fraction).round() as usize;
        let cut = n - held;
        let train_rows: Vec<u32> = match (held, data.label_windows) {
            (0, _) => (0..n as u32).collect(),
            (_, Some((start, end))) => (0..cut).filter(|&i| end[i] < start[cut]).map(|i| i as u32).collect(),
            (_, None) => (0..cut as u32).collect(),
        };
        if train_rows.len() < 2 {
            return Err(ModelError::InvalidData(format!("{} training rows are too few", train_rows.len())));
        }
        let (target_mean, target_scale) = match task {
            Task::Regression => {
                let y: Vec<f64> = train_rows.iter().map(|&i| data.labels[i as usize]).collect();
                let mean = y.iter().sum::<f64>() / y.len() as f64;
                let var = y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / y.len() as f64;
                (mean, if var > 0.0 { var.sqrt() } else { 1.0 })
            }
            Task::Quantile { .. } => {
                return Err(ModelError::InvalidParams("quantile objectives are not available for neural nets".into()))
            }
            _ => (0.0, 1.0),
        };
        let dev = Device::Cpu;
        let x: Vec<f32> = data.features.iter().map(|&v| v as f32).collect();
        let x = Tensor::from_vec(x, (n, d), &dev).map_err(nn)?;
        let y: Vec<f32> = data.labels.iter().map(|&v| ((v - target_mean) / target_scale) as f32).collect();
        let y = Tensor::from_vec(y, n, &dev).map_err(nn)?;
        let w: Vec<f32> = match data.weights {
            Some(w) => w.iter().map(|&v| v as f32).collect(),
            None => vec![1.0; n],
        };
        let w = Tensor::from_vec(w, n, &dev).map_err(nn)?;

        let network = Network::new(arch.clone(), d, outputs, Network::initial_weights(&arch, d, outputs, opt.seed))
            .map_err(ModelError::Training)?;
        let mut optimiser = candle_nn::AdamW::new(
            network.varmap.all_vars(),
            candle_nn::ParamsAdamW { lr: opt.learning_rate, weight_decay: opt.weight_decay, ..Default::default() },
        )
        .map_err(nn)?;
        let mut rng = SplitMix64(opt.seed);
        let mut order = train_rows.clone();
        let valid_ids = (held > 0).then(|| Tensor::from_vec((cut as u32..n as u32).collect(), held, &dev));
        let valid_ids = valid_ids.transpose().map_err(nn)?;
        let evaluate = |ids: &Tensor| -> Result<f64, ModelError> {
            let run = || -> candle_core::Result<f64> {
                let z = network.forward(&x.index_select(ids, 0)?)?;
                loss(task, &z, &y.index_select(ids, 0)?, &w.index_select(ids, 0)?)?.to_scalar::<f32>().map(f64::from)
            };
            run().map_err(nn)
        };
        let started = std::time::Instant::now();
        let (mut best_loss, mut best_epoch, mut best) = (f64::INFINITY, 0, None);
        let mut curve = Vec::new();
        let mut epochs = 0;
        for epoch in 1..=opt.max_epochs {
            epochs = epoch;
            rng.shuffle(&mut order);
            let mut train_loss = 0.0;
            for batch in order.chunks(opt.batch_size) {
                let mut step = || -> candle_core::Result<f64> {
                    let ids = Tensor::from_slice(batch, batch.len(), &dev)?;
                    let z = network.forward(&x.index_select(&ids, 0)?)?;
                    let l = loss(task, &z, &y.index_select(&ids, 0)?, &w.index_select(&ids, 0)?)?;
                    optimiser.backward_step(&l)?;
                    Ok(f64::from(l.to_scalar::<f32>()?) * batch.len() as f64)
                };
                train_loss += step().map_err(nn)?;
            }
            train_loss /= order.len() as f64;
            if !train_loss.is_finite() {
                return Err(ModelError::Training(format!(
                    "the training loss became {train_loss} in epoch {epoch}: lower learning_rate"
                )));
            }
            let Some(ids) = &valid_ids else {
                curve.push(json!([epoch, train_loss]));
                continue;
            };
            let valid_loss = evaluate(ids)?;
            curve.push(json!([epoch, train_loss, valid_loss]));
            if valid_loss < best_loss {
                (best_loss, best_epoch) = (valid_loss, epoch);
                best = Some(network.snapshot().map_err(nn)?);
            } else if epoch - best_epoch >= opt.patience {
                break;
            }
        }
        if let Some(snapshot) = &best {
            network.restore(snapshot).map_err(nn)?;
        }
        let plain = PlainNetwork::from(&network).map_err(nn)?;
        let training = json!({
            "rows": train_rows.len(),
            "validation_rows": held,
            "purged_before_validation": cut - train_rows.len(),
            "epochs": epochs,
            "best_epoch": if held > 0 { best_epoch } else { epochs },
            "best_validation_loss": (held > 0).then_some(best_loss),
            "loss_curve": curve,
            "seconds": started.elapsed().as_secs_f64(),
            "target_mean": target_mean,
            "target_scale": target_scale,
        });
        let mut model = NeuralModel {
            network,
            plain,
            task,
            feature_names: data.feature_names.to_vec(),
            params,
            training,
            target_mean,
            target_scale,
        };
        // Importance: mean |integrated gradient| over (up to 256 of) the held-out rows, else the last
        // training rows: computed once here, as the rows are gone after training.
        let rows = if held > 0 { cut..n } else { n.saturating_sub(256)..n };
        let rows = rows.start.max(rows.end.saturating_sub(256))..rows.end;
        let importance = model.mean_abs_attribution(&data.features[rows.start * d..rows.end * d])?;
        model.training["importance"] = json!(importance);
        model.training["importance_rows"] = json!(rows.len());
        Ok(model)
    }

    pub fn load(dir: &Path) -> Result<NeuralModel, ModelError> {
        let meta = read_meta(dir)?;
        let bad = |message: String| ModelError::Artifact { path: dir.join("model.json"), message };
        let (arch, params) = match meta.family.as_str() {
            "mlp" => {
                let p: MlpParams = serde_json::from_value(meta.params.clone()).map_err(|e| bad(e.to_string()))?;
                p.task().map_err(|e| bad(e.to_string()))?;
                (Architecture::Mlp { hidden: p.hidden.clone(), activation: p.activation }, meta.params.clone())
            }
            "lstm" => {
                let p: LstmParams = serde_json::from_value(meta.params.clone()).map_err(|e| bad(e.to_string()))?;
                p.task().map_err(|e| bad(e.to_string()))?;
                let arch = Architecture::Lstm {
                    window: p.window,
                    hidden: p.hidden,
                    layers: p.layers,
                    head: p.head.clone(),
                    activation: p.activation,
                };
                (arch, meta.params.clone())
            }
            other => return Err(bad(format!("{other:?} is not a neural-net family"))),
        };
        let path = dir.join(WEIGHTS_FILE);
        let weights = candle_core::safetensors::load(&path, &Device::Cpu)
            .map_err(|e| ModelError::Artifact { path: path.clone(), message: e.to_string() })?;
        let network = Network::new(arch, meta.feature_names.len(), meta.task.outputs(), weights)
            .map_err(|message| ModelError::Artifact { path: path.clone(), message })?;
        let plain = PlainNetwork::from(&network).map_err(|e| ModelError::Artifact { path, message: e.to_string() })?;
        let number = |key: &str, default: f64| meta.training.get(key).and_then(|v| v.as_f64()).unwrap_or(default);
        Ok(NeuralModel {
            network,
            plain,
            task: meta.task,
            feature_names: meta.feature_names.clone(),
            params,
            target_mean: number("target_mean", 0.0),
            target_scale: number("target_scale", 1.0),
            training: meta.training,
        })
    }

    /// Raw outputs through candle, in chunks.
    fn raw_outputs(&self, rows: &[f64], n: usize) -> Result<Vec<f32>, ModelError> {
        let d = self.feature_names.len();
        let mut out = Vec::with_capacity(n * self.task.outputs());
        for chunk in rows.chunks(4096 * d) {
            let run = || -> candle_core::Result<Vec<f32>> {
                let x: Vec<f32> = chunk.iter().map(|&v| v as f32).collect();
                let x = Tensor::from_vec(x, (chunk.len() / d, d), &Device::Cpu)?;
                self.network.forward(&x)?.flatten_all()?.to_vec1()
            };
            out.extend(run().map_err(nn)?);
        }
        Ok(out)
    }

    /// Outputs in the task's terms: probabilities, or values on the target's scale.
    fn finish(&self, raw: &[f32]) -> Vec<f64> {
        match self.task {
            Task::Binary => raw.iter().map(|&z| f64::from(sigmoid(z))).collect(),
            Task::Multiclass { classes } => raw
                .chunks_exact(classes)
                .flat_map(|z| {
                    let top = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let e: Vec<f64> = z.iter().map(|&v| f64::from(v - top).exp()).collect();
                    let total: f64 = e.iter().sum();
                    e.into_iter().map(move |v| v / total)
                })
                .collect(),
            _ => raw.iter().map(|&z| f64::from(z) * self.target_scale + self.target_mean).collect(),
        }
    }

    /// Integrated gradients of each output's raw value, for every row of `rows` (row-major) at once:
    /// `[row][output][feature]` contributions (regression: on the target's scale), and the outputs at
    /// the zero row. `steps` midpoints on the straight path from the zero row to each row.
    fn integrated_gradients(&self, rows: &[f64], steps: usize) -> candle_core::Result<Attributions> {
        let d = self.feature_names.len();
        let n = rows.len() / d;
        let path: Vec<f32> = rows
            .chunks_exact(d)
            .flat_map(|row| {
                (0..steps).flat_map(move |s| {
                    let alpha = (s as f64 + 0.5) / steps as f64;
                    row.iter().map(move |v| (v * alpha) as f32)
                })
            })
            .collect();
        let path = Var::from_tensor(&Tensor::from_vec(path, (n * steps, d), &Device::Cpu)?)?;
        let z = self.network.forward(path.as_tensor())?;
        let scale = if self.task == Task::Regression { self.target_scale } else { 1.0 };
        let mut out = vec![Vec::new(); n];
        for k in 0..self.task.outputs() {
            // Rows do not interact, so one backward pass gives every row's gradients.
            let grads = z.narrow(1, k, 1)?.sum_all()?.backward()?;
            let g = grads.get(path.as_tensor()).expect("the input is on the path").reshape((n, steps, d))?;
            let g: Vec<Vec<f32>> = g.sum(1)?.to_vec2()?;
            for (r, (g, row)) in g.iter().zip(rows.chunks_exact(d)).enumerate() {
                out[r].push(g.iter().zip(row).map(|(g, x)| f64::from(*g) / steps as f64 * x * scale).collect());
            }
        }
        let baseline = self.network.forward(&Tensor::zeros((1, d), DType::F32, &Device::Cpu)?)?;
        let baseline: Vec<f32> = baseline.flatten_all()?.to_vec1()?;
        let baseline = match self.task {
            Task::Regression => baseline.iter().map(|&b| f64::from(b) * scale + self.target_mean).collect(),
            _ => baseline.into_iter().map(f64::from).collect(),
        };
        Ok((out, baseline))
    }

    /// Mean |contribution| per feature (summed over outputs) over `rows`, with a coarse path.
    fn mean_abs_attribution(&self, rows: &[f64]) -> Result<Vec<f64>, ModelError> {
        let d = self.feature_names.len();
        let n = rows.len() / d;
        let mut total = vec![0.0; d];
        for chunk in rows.chunks(64 * d) {
            let (contributions, _) = self.integrated_gradients(chunk, 16).map_err(nn)?;
            for output in contributions.into_iter().flatten() {
                total.iter_mut().zip(output).for_each(|(t, c)| *t += c.abs());
            }
        }
        Ok(total.into_iter().map(|t| t / n.max(1) as f64).collect())
    }
}

impl Model for NeuralModel {
    fn family(&self) -> &'static str {
        self.network.arch.family()
    }

    fn task(&self) -> Task {
        self.task
    }

    fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    fn predict(&self, rows: &[f64]) -> Result<Vec<f64>, ModelError> {
        let n = check_rows(&self.feature_names, rows)?;
        refuse_missing(&self.feature_names, rows, "neural nets need every value")?;
        let raw = if n <= SMALL_BATCH {
            rows.chunks_exact(self.feature_names.len()).flat_map(|row| self.plain.forward(row)).collect()
        } else {
            self.raw_outputs(rows, n)?
        };
        Ok(self.finish(&raw))
    }

    /// Mean |integrated gradient| per feature over the rows held out when the model was trained.
    fn feature_importance(&self) -> Result<Vec<Importance>, ModelError> {
        let values =
            self.training.get("importance").and_then(|v| v.as_array()).ok_or_else(|| {
                ModelError::InvalidParams("this model recorded no importance when it was trained".into())
            })?;
        Ok(self
            .feature_names
            .iter()
            .zip(values)
            .map(|(f, v)| Importance { feature: f.clone(), gain: v.as_f64().unwrap_or(0.0), splits: 0.0 })
            .collect())
    }

    /// Integrated gradients from the zero row, per output: the contributions, then the raw output at
    /// the zero row (so they sum to the raw output, up to the integration's error).
    fn explain(&self, row: &[f64]) -> Result<Vec<f64>, ModelError> {
        if check_rows(&self.feature_names, row)? != 1 {
            return Err(ModelError::InvalidData("explain takes one row".into()));
        }
        refuse_missing(&self.feature_names, row, "neural nets need every value")?;
        let (mut contributions, baseline) = self.integrated_gradients(row, EXPLAIN_STEPS).map_err(nn)?;
        let per_output = contributions.pop().expect("one row");
        Ok(per_output
            .into_iter()
            .zip(baseline)
            .flat_map(|(mut c, b)| {
                c.push(b);
                c
            })
            .collect())
    }

    fn meta(&self) -> ArtifactMeta {
        ArtifactMeta::of(self.family(), self.task, &self.feature_names, &self.params, &self.training)
    }

    fn write_files(&self, dir: &Path) -> Result<(), ModelError> {
        let path = dir.join(WEIGHTS_FILE);
        let tmp = path.with_extension("tmp");
        candle_core::safetensors::save(&self.network.weights(), &tmp)
            .map_err(|e| ModelError::Artifact { path: tmp.clone(), message: e.to_string() })?;
        std::fs::rename(&tmp, &path).map_err(|e| ModelError::Io { path, source: e })
    }
}
