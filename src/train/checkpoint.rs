//! Checkpoints of a member's training under the epochs schedule, so a run
//! killed at any point resumes where it stopped and ends with the same bits
//! as an uninterrupted one. After every epoch, atomically:
//!
//! ```text
//! DIR/state.json          epochs done, early-stopping state, the log, finished or not
//! DIR/current.*           the weights under training and the optimiser's state:
//!                         burn: current.safetensors + current-ids.json (parameter ids by path,
//!                         which key burn's Adam state) + current.optim (burn's optimiser record);
//!                         dense/native engines: current.flat (weights, Adam's step and moments)
//! DIR/best.safetensors    the best epoch's weights so far
//! ```
//!
//! Each epoch's randomness (batch order, modality dropout, burn's dropout
//! masks) is drawn from a generator seeded by the run's seed and the epoch,
//! so nothing random needs saving. `state.json` is written last: a kill
//! between two files leaves the previous epoch's state, which names the
//! files it goes with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{GmuError, Result, write_atomic};
use crate::fusion::{FusionNet, FusionSpec};
use crate::store::EpochLog;

/// The early-stopping state after an epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct State {
    /// Epochs done.
    pub epoch: usize,
    /// Epochs since the best one.
    pub since_best: usize,
    /// The best epoch so far and its dev macro-F1.
    pub best_epoch: usize,
    pub best_score: f64,
    /// The log so far.
    pub history: Vec<EpochLog>,
    /// Training ended (early stop or the last epoch); `current.*` hold
    /// epoch `epoch`'s state exactly when it did not.
    pub finished: bool,
}

/// Flat weights, Adam's step count, its two moments, and the running
/// statistics (batch norms' means and variances) of an engine that keeps them.
pub(super) type FlatState = (Vec<f32>, i32, Vec<f32>, Vec<f32>, Vec<f32>);

/// A member's checkpoint folder.
pub(super) struct Checkpoint {
    dir: PathBuf,
}

fn err(path: &Path, message: impl Into<String>) -> GmuError {
    GmuError::Store { path: path.to_path_buf(), message: message.into() }
}

/// Every float parameter's path and id.
fn param_ids(net: &FusionNet) -> BTreeMap<String, u64> {
    struct Ids {
        path: Vec<String>,
        out: BTreeMap<String, u64>,
    }
    impl ModuleVisitor for Ids {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.out.insert(self.path.join("."), param.id.val());
        }
    }
    let mut ids = Ids { path: vec![], out: BTreeMap::new() };
    net.visit(&mut ids);
    ids.out
}

/// `net` with each parameter's id set to the one recorded for its path.
fn with_ids(net: FusionNet, ids: &BTreeMap<String, u64>) -> FusionNet {
    struct SetIds<'a> {
        path: Vec<String>,
        ids: &'a BTreeMap<String, u64>,
    }
    impl ModuleMapper for SetIds<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn map_float<const D: usize>(&mut self, mut param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            if let Some(&id) = self.ids.get(&self.path.join(".")) {
                param.id = ParamId::from(id);
            }
            param
        }
    }
    net.map(&mut SetIds { path: vec![], ids })
}

impl Checkpoint {
    /// The checkpoint in `dir` (created if needed).
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| GmuError::io(dir, e))?;
        Ok(Checkpoint { dir: dir.to_path_buf() })
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The saved state, if an epoch was checkpointed.
    pub fn state(&self) -> Result<Option<State>> {
        let path = self.file("state.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                serde_json::from_str(&text).map(Some).map_err(|e| err(&path, format!("not a checkpoint state: {e}")))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(GmuError::io(&path, e)),
        }
    }

    /// Writes the state (last, after the files it names).
    pub fn save_state(&self, state: &State) -> Result<()> {
        write_atomic(&self.file("state.json"), serde_json::to_string(state).expect("serialises").as_bytes())
    }

    fn save_net(&self, name: &str, net: &FusionNet) -> Result<()> {
        crate::store::write_weights(&self.file(name), net)
    }

    fn load_net(&self, name: &str, spec: &FusionSpec, device: &Device) -> Result<FusionNet> {
        crate::store::read_weights(&self.file(name), spec, device)
    }

    /// Saves the best epoch's weights.
    pub fn save_best(&self, net: &FusionNet) -> Result<()> {
        self.save_net("best.safetensors", net)
    }

    /// The best epoch's weights.
    pub fn load_best(&self, spec: &FusionSpec, device: &Device) -> Result<FusionNet> {
        self.load_net("best.safetensors", spec, device)
    }

    /// Saves a burn model under training and its optimiser.
    pub fn save_burn(&self, model: &FusionNet, optim: &burn::optim::ModuleOptimizer) -> Result<()> {
        self.save_net("current.safetensors", model)?;
        let ids = serde_json::to_string(&param_ids(model)).expect("serialises");
        write_atomic(&self.file("current-ids.json"), ids.as_bytes())?;
        let path = self.file("current.optim");
        let tmp = crate::error::temp_path(&path);
        optim.save(&tmp).map_err(|e| err(&path, e.to_string()))?;
        std::fs::rename(&tmp, &path).map_err(|e| GmuError::io(&path, e))
    }

    /// The burn model under training (on the autodiff `device`, with its
    /// parameters' recorded ids) and its optimiser's state loaded into `optim`.
    pub fn load_burn(
        &self,
        spec: &FusionSpec,
        optim: burn::optim::ModuleOptimizer,
        device: &Device,
    ) -> Result<(FusionNet, burn::optim::ModuleOptimizer)> {
        let net = self.load_net("current.safetensors", spec, device)?;
        let path = self.file("current-ids.json");
        let text = std::fs::read_to_string(&path).map_err(|e| GmuError::io(&path, e))?;
        let ids: BTreeMap<String, u64> = serde_json::from_str(&text).map_err(|e| err(&path, e.to_string()))?;
        let path = self.file("current.optim");
        let optim = optim.load(&path).map_err(|e| err(&path, e.to_string()))?;
        Ok((with_ids(net, &ids), optim))
    }

    /// Saves flat weights with Adam's step count and moments.
    pub fn save_flat(&self, params: &[f32], t: i32, m: &[f32], v: &[f32], running: &[f32]) -> Result<()> {
        let mut bytes = Vec::with_capacity(12 + 12 * params.len() + 4 * running.len());
        bytes.extend_from_slice(&t.to_le_bytes());
        bytes.extend_from_slice(&(params.len() as u64).to_le_bytes());
        for x in params.iter().chain(m).chain(v).chain(running) {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        write_atomic(&self.file("current.flat"), &bytes)
    }

    /// Flat weights, Adam's step count and moments, for `n` parameters and
    /// `n_running` running statistics.
    pub fn load_flat(&self, n: usize, n_running: usize) -> Result<FlatState> {
        let path = self.file("current.flat");
        let bytes = std::fs::read(&path).map_err(|e| GmuError::io(&path, e))?;
        let stored = bytes.get(4..12).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
        if stored != Some(n as u64) || bytes.len() as u64 != 12 + 12 * n as u64 + 4 * n_running as u64 {
            return Err(err(&path, format!("not a checkpoint of {n} parameters and {n_running} running statistics")));
        }
        let t = i32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
        let floats: Vec<f32> =
            bytes[12..].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect();
        let (params, rest) = floats.split_at(n);
        let (m, rest) = rest.split_at(n);
        let (v, running) = rest.split_at(n);
        Ok((params.to_vec(), t, m.to_vec(), v.to_vec(), running.to_vec()))
    }
}
