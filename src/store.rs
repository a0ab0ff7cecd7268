//! The model directory: what every command that trains writes, and what
//! `predict::Model` loads.
//!
//! ```text
//! DIR/config.json              ModelConfig: format version, views (names, widths),
//!                              outputs (task, names, threshold), one entry per
//!                              member network (spec, scalers, training log), the
//!                              training config, the data it was trained on, results
//! DIR/model-<i>.safetensors    the weights of member i (burn's safetensors)
//! ```
//!
//! A model is one network (GMU, concat, linear sum, mixture of experts, the
//! synthetic experiment's classifiers) or several (`avg-probs`: one
//! single-view network per view, probabilities averaged). Every file is
//! written to a temporary sibling and renamed, and `config.json` last, so a
//! directory with a `config.json` is complete.
//!
//! `format_version` is [`FORMAT_VERSION`]. Format 1 (the training record
//! before the one [`TrainingConfig`]) is read and converted on load, so its
//! models keep predicting what they did; directories written by gmu 0.1 have
//! no version, and loading one gives an error that says so.
//!
//! Layer 8 (see `ARCHITECTURE.md`): it owns the on-disk format; it imports the
//! config, the model layer and the data record, never prediction or training.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::config::TrainingConfig;
use crate::data::{DataRecord, Scaler};
use crate::engine::Engine;
use crate::error::{GmuError, Result, write_atomic};
use crate::fusion::{FusionNet, FusionSpec, Task};

/// One line of the training log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean minibatch loss over the epoch.
    pub train_loss: f64,
    /// Macro-F1 on the dev split after the epoch.
    pub dev_macro_f1: f64,
}

/// The model directory format this version writes (it reads format 1 too).
pub const FORMAT_VERSION: u32 = 2;

/// The config file inside a model directory.
pub const CONFIG_FILE: &str = "config.json";

/// The weights file of member `i`.
pub fn weights_file(i: usize) -> String {
    format!("model-{i}.safetensors")
}

/// One input view of a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViewSpec {
    /// Its name (a file stem, `v`/`t` for the synthetic data, `text`/`visual` for MM-IMDb).
    pub name: String,
    /// Number of columns.
    pub width: usize,
    /// The pretrained encoder that made the view from raw text or images, where
    /// known: `predict --text/--image` runs it on raw inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<crate::encoders::EncoderSpec>,
    /// The vocabulary of a token view no encoder made (MM-IMDb's `sequences`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<usize>,
}

/// One network of a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberConfig {
    /// The views it reads: indices into [`ModelConfig::views`], in input order.
    pub views: Vec<usize>,
    /// Its shape.
    pub spec: FusionSpec,
    /// The scaling of each view it reads, fitted on the training rows.
    pub scalers: Vec<Scaler>,
    /// The engine that trained it (absent in format 1).
    #[serde(default)]
    pub engine: Option<Engine>,
    /// The epoch whose weights were kept (0 where training ran in steps).
    #[serde(default)]
    pub best_epoch: usize,
    /// Per-epoch training log (empty where training ran in steps).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<EpochLog>,
    /// Training loss before each step of the kept restart (empty where training ran in epochs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_losses: Vec<f32>,
    /// Final training loss of every restart (empty where training ran in epochs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart_losses: Vec<f32>,
}

/// Everything in `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// [`FORMAT_VERSION`] when written by this version.
    pub format_version: u32,
    /// The gmu version that wrote it.
    pub gmu_version: String,
    /// The method's name in tables (`gmu`, `single:pix`, `moe-maxout-tied`, `ff`, …).
    pub method: String,
    /// The views the model reads, in the order its inputs are given.
    pub views: Vec<ViewSpec>,
    /// Single-label or multilabel.
    pub task: Task,
    /// Class or label names, one per output.
    pub outputs: Vec<String>,
    /// Multilabel decision threshold on each label's probability.
    pub threshold: f32,
    /// The networks; their probabilities are averaged (over the members whose views are present).
    pub members: Vec<MemberConfig>,
    /// How it was trained.
    pub training: TrainingConfig,
    /// The data it was trained on, where a command can read them again.
    #[serde(default)]
    pub data: Option<DataRecord>,
    /// Training wall time, seconds.
    #[serde(default)]
    pub seconds: f64,
    /// What the training command measured (scores, gate reports).
    #[serde(default)]
    pub results: serde_json::Value,
    /// The sha256 of each member's weights file, in member order, written by
    /// [`save`] and verified by [`load`]: a swapped, truncated or bit-flipped
    /// tensor is refused. Absent in models written before gmu recorded them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weights_sha256: Vec<String>,
    /// Gated models: how each view's gate is distributed on the clean
    /// training rows, the reference `suspect_<view>` is read against.
    /// Absent in models trained before gmu recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_reference: Option<GateReference>,
}

/// The distribution of each view's mean raw gate over a model's clean
/// training rows (those with every view present), as 101 quantiles (0 %, 1 %,
/// …, 100 %): the empirical CDF a new sample's gate is placed in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateReference {
    /// Rows the quantiles were taken over.
    pub rows: usize,
    /// Per view (by name), the gate's quantiles, ascending.
    pub quantiles: std::collections::BTreeMap<String, Vec<f32>>,
}

impl GateReference {
    /// The reference of `gates` (`gates[view]`: the view's gate on each row).
    pub fn new(gates: &[(String, Vec<f32>)]) -> Option<GateReference> {
        let rows = gates.first()?.1.len();
        if rows == 0 {
            return None;
        }
        let quantiles = gates
            .iter()
            .map(|(name, g)| {
                let mut sorted: Vec<f32> = g.iter().copied().filter(|x| x.is_finite()).collect();
                sorted.sort_by(f32::total_cmp);
                let last = sorted.len().saturating_sub(1) as f64;
                let q = (0..=100)
                    .map(|p| {
                        let at = last * p as f64 / 100.0;
                        let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
                        let t = (at - lo as f64) as f32;
                        sorted.get(lo).map_or(f32::NAN, |&a| a + (sorted[hi] - a) * t)
                    })
                    .collect();
                (name.clone(), q)
            })
            .collect();
        Some(GateReference { rows, quantiles })
    }

    /// How much less than usual the model trusts `view` in a sample whose
    /// gate for it is `gate`: the share of clean training rows whose gate for
    /// the view was higher (1 − the empirical CDF, linear between quantiles).
    /// 0.99: trusted less than on 99 % of clean samples. `None` for a view
    /// the reference does not hold; NaN for a NaN gate (a missing view).
    pub fn suspect(&self, view: &str, gate: f32) -> Option<f32> {
        let q = self.quantiles.get(view)?;
        if gate.is_nan() || q.iter().any(|x| x.is_nan()) {
            return Some(f32::NAN);
        }
        let n = q.len() - 1;
        // The CDF at `gate`: the last quantile at or below it, and the way to the next.
        let below = q.partition_point(|&x| x <= gate);
        let cdf = if below == 0 {
            0.0
        } else if below > n {
            1.0
        } else {
            let (a, b) = (q[below - 1], q[below]);
            let within = if b > a { (gate - a) / (b - a) } else { 0.0 };
            ((below - 1) as f32 + within) / n as f32
        };
        Some(1.0 - cdf)
    }
}

fn store_error(path: &Path, message: impl Into<String>) -> GmuError {
    GmuError::Store { path: path.to_path_buf(), message: message.into() }
}

impl ModelConfig {
    /// Checks the config against itself: at least one view and one member,
    /// each member's spec valid and fed by views of the right widths, one
    /// valid scaler per view, as many outputs as the specs have.
    /// `path` names the file in errors.
    pub fn check(&self, path: &Path) -> Result<()> {
        if self.views.is_empty() {
            return Err(store_error(path, "no view"));
        }
        if self.members.is_empty() {
            return Err(store_error(path, "no member network"));
        }
        if self.outputs.is_empty() {
            return Err(store_error(path, "no output (class or label) name"));
        }
        for (i, v) in self.views.iter().enumerate() {
            if v.width == 0 {
                return Err(store_error(path, format!("view '{}' has width 0", v.name)));
            }
            if self.views[..i].iter().any(|w| w.name == v.name) {
                return Err(store_error(path, format!("view '{}' is listed twice", v.name)));
            }
        }
        for (m, member) in self.members.iter().enumerate() {
            let at = |message: String| store_error(path, format!("member {m}: {message}"));
            member.spec.validate().map_err(|e| at(e.to_string()))?;
            if member.views.len() != member.spec.d_inputs.len() || member.scalers.len() != member.views.len() {
                return Err(at(format!(
                    "{} views, {} scalers and {} spec inputs do not match",
                    member.views.len(),
                    member.scalers.len(),
                    member.spec.d_inputs.len()
                )));
            }
            for ((&v, &d), scaler) in member.views.iter().zip(&member.spec.d_inputs).zip(&member.scalers) {
                let view = self.views.get(v).ok_or_else(|| at(format!("view index {v} of {}", self.views.len())))?;
                if view.width != d {
                    return Err(at(format!("view '{}' is {} wide, the spec reads {d}", view.name, view.width)));
                }
                scaler.check(d).map_err(|e| at(format!("scaler of view '{}': {e}", view.name)))?;
            }
            if member.spec.n_outputs != self.outputs.len() || member.spec.task != self.task {
                return Err(at(format!(
                    "{} {:?} outputs, the model has {} {:?}",
                    member.spec.n_outputs,
                    member.spec.task,
                    self.outputs.len(),
                    self.task
                )));
            }
        }
        // Every size the config implies is budgeted before a tensor is made
        // (a width of 2^64 − 1 would otherwise overflow an allocation).
        for (m, member) in self.members.iter().enumerate() {
            let spec = &member.spec;
            let bytes = spec.memory_bound(1);
            crate::budget::check(
                &format!(
                    "member {m}: a {} model of {} hidden units over inputs {:?}",
                    spec.kind, spec.hidden, spec.d_inputs
                ),
                bytes,
            )
            .map_err(|e| store_error(path, e))?;
        }
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return Err(store_error(path, format!("threshold {} (expected a number in (0, 1))", self.threshold)));
        }
        Ok(())
    }
}

/// Writes `nets` (one per member) and `config` into `dir`, created if needed.
pub fn save(dir: &Path, config: &ModelConfig, nets: &[&FusionNet]) -> Result<()> {
    assert_eq!(nets.len(), config.members.len(), "one net per member");
    config.check(&dir.join(CONFIG_FILE))?;
    std::fs::create_dir_all(dir).map_err(|e| GmuError::io(dir, e))?;
    let mut config = config.clone();
    config.weights_sha256.clear();
    for (i, net) in nets.iter().enumerate() {
        if let Some(name) = first_non_finite(net) {
            return Err(GmuError::NonFinite(format!(
                "member {i}: tensor {name} holds NaN or infinity; nothing was saved"
            )));
        }
        let path = dir.join(weights_file(i));
        config.weights_sha256.push(write_weights(&path, net)?);
    }
    let json = serde_json::to_string_pretty(&config).expect("the config serialises");
    write_atomic(&dir.join(CONFIG_FILE), json.as_bytes())
}

/// Writes `net`'s weights to `path`: burn's safetensors in one canonical byte
/// layout ([`canonical_safetensors`]), atomically. Returns the sha256 of the
/// bytes written (what [`ModelConfig::weights_sha256`] records).
pub(crate) fn write_weights(path: &Path, net: &FusionNet) -> Result<String> {
    use sha2::{Digest, Sha256};
    // In memory: no scratch file to write, read back and remove (an epoch checkpoint of
    // MM-IMDb's paper model is 22 MB, written on every epoch that improves).
    let mut store = SafetensorsStore::from_bytes(None);
    net.save_into(&mut store).map_err(|e| store_error(path, e.to_string()))?;
    let bytes = store.get_bytes().map_err(|e| store_error(path, e.to_string()))?;
    let canonical = canonical_safetensors(&bytes).map_err(|m| store_error(path, m))?;
    write_atomic(path, &canonical)?;
    Ok(crate::encoders::fetch::hex(&Sha256::digest(&canonical)))
}

/// A fresh `spec` model on `device` holding the weights [`write_weights`]
/// wrote to `path`; every tensor must be there with its shape.
pub(crate) fn read_weights(path: &Path, spec: &FusionSpec, device: &Device) -> Result<FusionNet> {
    if !path.is_file() {
        return Err(store_error(path, "missing weights file"));
    }
    let mut net = spec.init(device)?;
    let mut store = SafetensorsStore::from_file(path);
    let result = net.load_from(&mut store).map_err(|e| {
        let message = e.to_string();
        if message.starts_with("Tensor not found") {
            return store_error(path, mismatch(path, &net));
        }
        store_error(path, one_line(&message))
    })?;
    if !result.is_success() {
        let missing: Vec<String> = result.missing.iter().map(|(name, _)| name.clone()).take(3).collect();
        return Err(store_error(
            path,
            format!(
                "the weights do not match the config (missing: {}; {} errors)",
                missing.join(", "),
                result.errors.len()
            ),
        ));
    }
    Ok(net)
}

/// Which tensors the model that `config.json` describes wants and the file
/// lacks, and which the file holds instead (the first few of each).
fn mismatch(path: &Path, net: &FusionNet) -> String {
    struct Names(Vec<String>, Vec<String>);
    impl burn::module::ModuleVisitor for Names {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, _: &burn::module::Param<Tensor<D>>) {
            self.1.push(self.0.join("."));
        }
    }
    let mut wanted = Names(vec![], vec![]);
    net.visit(&mut wanted);
    let held: Vec<String> = std::fs::read(path)
        .ok()
        .and_then(|bytes| {
            safetensors::SafeTensors::read_metadata(&bytes)
                .ok()
                .map(|(_, meta)| meta.tensors().keys().filter(|k| !k.starts_with("__")).cloned().collect())
        })
        .unwrap_or_default();
    let short = |names: Vec<&String>| {
        let n = names.len();
        let mut shown: Vec<String> = names.into_iter().take(3).cloned().collect();
        if n > 3 {
            shown.push(format!("… {} in all", n));
        }
        shown.join(", ")
    };
    let missing: Vec<&String> = wanted.1.iter().filter(|w| !held.iter().any(|h| h.ends_with(w.as_str()))).collect();
    let extra: Vec<&String> = held.iter().filter(|h| !wanted.1.iter().any(|w| h.ends_with(w.as_str()))).collect();
    format!(
        "the weights are not those of the model config.json describes: tensors missing: {}; tensors the file holds instead: {}",
        short(missing),
        short(extra)
    )
}

/// The same safetensors file in one canonical byte layout: header keys
/// sorted (burn writes its `__metadata__` from a hash map, in a different
/// order each run), tensors laid out in name order, the header padded with
/// spaces to 8 bytes as the format allows. Same weights, same bytes.
pub fn canonical_safetensors(bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let n = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .ok_or("shorter than its header length")?;
    let end = 8usize
        .checked_add(usize::try_from(n).map_err(|_| "header length beyond memory")?)
        .ok_or("header length overflows")?;
    let header = bytes.get(8..end).ok_or("header longer than the file")?;
    let data = &bytes[end..];
    // serde_json's map is ordered by key: parsing and printing sorts every level.
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| format!("header is not JSON: {e}"))?;
    let mut out_data = Vec::with_capacity(data.len());
    for (name, entry) in header.iter_mut().filter(|(k, _)| *k != "__metadata__") {
        let offsets = entry
            .get("data_offsets")
            .and_then(|o| o.as_array())
            .ok_or_else(|| format!("tensor {name}: no data_offsets"))?;
        let (a, b) = match offsets[..] {
            [ref a, ref b] => (a.as_u64().ok_or("bad offset")? as usize, b.as_u64().ok_or("bad offset")? as usize),
            _ => return Err(format!("tensor {name}: data_offsets is not [begin, end]")),
        };
        let slice =
            data.get(a..b).filter(|_| a <= b).ok_or_else(|| format!("tensor {name}: data_offsets beyond the data"))?;
        let start = out_data.len();
        out_data.extend_from_slice(slice);
        entry["data_offsets"] = serde_json::json!([start, out_data.len()]);
    }
    let mut text = serde_json::to_vec(&header).expect("a JSON map serialises");
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + out_data.len());
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&out_data);
    Ok(out)
}

/// Reads and checks `DIR/config.json` alone (no weights).
pub fn read_config(dir: &Path) -> Result<ModelConfig> {
    let path = dir.join(CONFIG_FILE);
    if !dir.is_dir() {
        return Err(store_error(
            dir,
            "not a model directory (expected a folder with config.json and model-0.safetensors)",
        ));
    }
    // A config is a few kB (a model of many views, tens of kB): 64 MiB is far past any real one.
    let text = crate::io::read_text_capped(&path, 64 << 20)?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| store_error(&path, format!("not JSON: {e}")))?;
    match value.get("format_version").map(|v| v.as_u64()) {
        None => {
            return Err(store_error(
                &path,
                format!(
                    "written by gmu 0.1 (no format_version); this gmu {} reads model format {FORMAT_VERSION}: train the model again",
                    env!("CARGO_PKG_VERSION")
                ),
            ));
        }
        Some(Some(v)) if v == u64::from(FORMAT_VERSION) => {}
        Some(Some(1)) => {}
        Some(v) => {
            let shown = v.map_or_else(|| value["format_version"].to_string(), |v| v.to_string());
            return Err(store_error(
                &path,
                format!("model format {shown}; this gmu {} reads format {FORMAT_VERSION}", env!("CARGO_PKG_VERSION")),
            ));
        }
    }
    let mut value = value;
    if value["format_version"] == 1 {
        upgrade_v1(&mut value).map_err(|e| store_error(&path, format!("not a gmu model config (format 1): {e}")))?;
    }
    let config: ModelConfig =
        serde_json::from_value(value).map_err(|e| store_error(&path, format!("not a gmu model config: {e}")))?;
    config.check(&path)?;
    Ok(config)
}

/// Converts a format-1 config in place to the current format: its training
/// record (`{"kind": "epochs", "config": <the old FitConfig>}` or `{"kind":
/// "steps", "config": <the synthetic experiment's old config>, "history",
/// "restart_losses"}`) becomes one [`TrainingConfig`], and the steps log moves
/// to the member. Weights, views, scalers and outputs are unchanged.
fn upgrade_v1(value: &mut serde_json::Value) -> std::result::Result<(), String> {
    use serde_json::{Value, json};
    let record = value.get_mut("training").map(Value::take).ok_or("no training record")?;
    let old = &record["config"];
    let field = |name: &str| old.get(name).cloned().ok_or_else(|| format!("training config without '{name}'"));
    let or = |name: &str, default: Value| old.get(name).cloned().unwrap_or(default);
    let adam = |lr: Value| json!({"lr": lr, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8});
    let training = match record["kind"].as_str() {
        Some("epochs") => {
            let fusion = field("fusion")?;
            // Format 1 applied the head to the GMU only.
            let head = if fusion == "gmu" { or("head", json!("maxout")) } else { json!("maxout") };
            json!({
                "model": {
                    "fusion": fusion, "head": head, "hidden": field("hidden")?, "bias": true,
                    "dropout": field("dropout")?, "max_norm": field("max_norm")?, "experts": field("experts")?,
                    "tied_gates": field("tied_gates")?, "normalize_gates": or("normalize_gates", json!(false)),
                    "image_features": field("image_features")?,
                },
                "optimizer": adam(field("lr")?),
                "schedule": {"kind": "epochs", "max_epochs": field("max_epochs")?, "patience": field("patience")?, "batch_size": field("batch_size")?},
                "loss": null, "scaling": "standardize", "threshold": field("threshold")?,
                "impute": or("impute", json!(false)), "modality_dropout": or("modality_dropout", json!(0.0)),
                "engine": or("engine", json!("auto")), "seed": field("seed")?,
            })
        }
        Some("steps") => {
            let model = field("model")?;
            let (fusion, head) = match model["kind"].as_str() {
                Some("gmu") => ("gmu", "linear"),
                Some("ff") => ("concat", "tanh"),
                Some("logreg") => ("concat", "linear"),
                other => return Err(format!("unknown synthetic model kind {other:?}")),
            };
            let hidden = model["hidden"].as_u64().unwrap_or(1).max(1);
            if let Some(member) = value.get_mut("members").and_then(|m| m.get_mut(0)) {
                member["step_losses"] = record["history"].clone();
                member["restart_losses"] = record["restart_losses"].clone();
            }
            let optimizer = field("optimizer")?;
            json!({
                "model": {
                    "fusion": fusion, "head": head, "hidden": hidden, "bias": model["bias"].clone(),
                    "dropout": 0.0, "max_norm": null, "experts": "maxout", "tied_gates": false,
                    "normalize_gates": false, "image_features": 64,
                },
                "optimizer": optimizer,
                "schedule": {"kind": "steps", "steps": field("steps")?, "batch_size": field("batch_size")?, "restarts": field("restarts")?},
                "loss": field("loss")?, "scaling": field("scaling")?, "threshold": 0.5,
                "impute": false, "modality_dropout": 0.0, "engine": field("engine")?, "seed": field("seed")?,
            })
        }
        other => return Err(format!("unknown training kind {other:?}")),
    };
    value["training"] = training;
    value["format_version"] = json!(FORMAT_VERSION);
    Ok(())
}

/// Loads a model directory: its config and one net per member, on `device`.
pub fn load(dir: &Path, device: &Device) -> Result<(ModelConfig, Vec<FusionNet>)> {
    let config = read_config(dir)?;
    let mut nets = Vec::with_capacity(config.members.len());
    for (i, member) in config.members.iter().enumerate() {
        let path: PathBuf = dir.join(weights_file(i));
        if !path.is_file() {
            return Err(store_error(&path, "missing weights file"));
        }
        if let Some(expected) = config.weights_sha256.get(i) {
            let found = crate::encoders::fetch::sha256_file(&path)?;
            if &found != expected {
                return Err(store_error(
                    &path,
                    format!(
                        "sha256 {found}, but config.json records {expected}: the weights were changed or damaged after they were saved"
                    ),
                ));
            }
        } else if !config.weights_sha256.is_empty() {
            return Err(store_error(
                &dir.join(CONFIG_FILE),
                format!("{} weight checksums for {} members", config.weights_sha256.len(), config.members.len()),
            ));
        }
        let net = read_weights(&path, &member.spec, device)?;
        if let Some(name) = first_non_finite(&net) {
            return Err(GmuError::NonFinite(format!("{}: tensor {name} holds NaN or infinity", path.display())));
        }
        nets.push(net);
    }
    Ok((config, nets))
}

/// A message on one line (burn's store errors run over several, and put the
/// tensor's name on the second: "Tensor not found:\n  name"), at most 400 characters.
fn one_line(message: &str) -> String {
    let joined = message.split_whitespace().collect::<Vec<_>>().join(" ");
    match joined.char_indices().nth(400) {
        Some((at, _)) => format!("{}…", &joined[..at]),
        None => joined,
    }
}

/// The path of the first parameter holding a NaN or an infinity.
pub(crate) fn first_non_finite(net: &FusionNet) -> Option<String> {
    struct Finder {
        path: Vec<String>,
        found: Option<String>,
    }
    impl burn::module::ModuleVisitor for Finder {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            if self.found.is_none() {
                let values = param.val().into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
                if values.iter().any(|v| !v.is_finite()) {
                    self.found = Some(self.path.join("."));
                }
            }
        }
    }
    let mut finder = Finder { path: vec![], found: None };
    net.visit(&mut finder);
    finder.found
}

#[cfg(test)]
mod tests {
    use super::GateReference;

    /// Gates 0, 0.01, …, 1 on 101 rows: the quantiles are the gates, and a
    /// gate's suspicion is the share of rows above it.
    #[test]
    fn suspicion_is_the_share_of_clean_rows_that_trusted_the_view_more() {
        let g: Vec<f32> = (0..=100).map(|i| i as f32 / 100.0).collect();
        let r = GateReference::new(&[("v".into(), g.clone())]).unwrap();
        assert_eq!(r.rows, 101);
        assert_eq!(r.quantiles["v"], g);
        let close = |a: f32, b: f32| (a - b).abs() < 1e-5;
        assert!(close(r.suspect("v", 0.25).unwrap(), 0.75));
        assert!(close(r.suspect("v", 0.255).unwrap(), 0.745));
        assert_eq!(r.suspect("v", -1.0), Some(1.0), "below every clean gate");
        assert_eq!(r.suspect("v", 2.0), Some(0.0), "above every clean gate");
        assert!(r.suspect("v", f32::NAN).unwrap().is_nan());
        assert_eq!(r.suspect("w", 0.5), None);
        // Four rows 0.2, 0.4, 0.6, 0.8: quantile p at 0.2 + 0.6 p, so 0.5 is the median.
        let r = GateReference::new(&[("v".into(), vec![0.8, 0.2, 0.6, 0.4])]).unwrap();
        assert!(close(r.quantiles["v"][50], 0.5) && close(r.suspect("v", 0.5).unwrap(), 0.5));
        assert!(close(r.suspect("v", 0.26).unwrap(), 0.9));
    }
}
