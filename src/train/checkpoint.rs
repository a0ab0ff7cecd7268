//! Checkpoints of a member's training under the epochs schedule, so a run
//! killed at any point resumes where it stopped and ends with the same bits
//! as an uninterrupted one. After every epoch, atomically:
//!
//! ```text
//! DIR/current-<e>.*       epoch e's weights under training and the optimiser's state:
//!                         burn: current-<e>.safetensors + current-<e>-ids.json (parameter ids by path,
//!                         which key burn's Adam state) + current-<e>.optim (burn's optimiser record);
//!                         dense/native engines: current-<e>.flat (weights, Adam's step and moments)
//! DIR/best-<b>.safetensors    the weights of the best epoch so far, b
//! DIR/state.json          epochs done, early-stopping state, the log, finished or not
//! ```
//!
//! Each epoch's randomness (batch order, modality dropout, burn's dropout
//! masks) is drawn from a generator seeded by the run's seed and the epoch,
//! so nothing random needs saving. Every file carries the epoch it belongs
//! to and `state.json`, the manifest, is renamed last: a kill between any
//! two files leaves the previous manifest, which names the previous epoch's
//! files, still there; the files of other epochs are removed only after the
//! new manifest is in place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{GmuError, Result, write_atomic};
use crate::fusion::{FusionNet, FusionSpec};
use crate::store::EpochLog;

/// Whether `name` is one of the files `current-<e>.*` / `current-<e>-ids.json`
/// for the `current-<e>` given as `stem`.
fn is_epoch_file(name: &str, stem: &str) -> bool {
    name.strip_prefix(stem).is_some_and(|rest| rest.starts_with('.') || rest.starts_with('-'))
}

/// A test hook for the resume tests, which kill real runs with it: with
/// `VAR=N` in the environment, the process aborts (no cleanup, as a `kill -9`
/// leaves it) at its N-th [`tick`](Self::tick).
pub(super) struct AbortHook {
    var: &'static str,
    limit: std::sync::OnceLock<Option<usize>>,
    ticks: std::sync::atomic::AtomicUsize,
}

impl AbortHook {
    pub const fn new(var: &'static str) -> Self {
        AbortHook { var, limit: std::sync::OnceLock::new(), ticks: std::sync::atomic::AtomicUsize::new(0) }
    }

    /// Counts one event, and aborts at the N-th.
    pub fn tick(&self) {
        if let Some(limit) = *self.limit.get_or_init(|| std::env::var(self.var).ok().and_then(|v| v.parse().ok()))
            && self.ticks.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 >= limit
        {
            std::process::abort();
        }
    }
}

/// Dies right after the process's N-th checkpoint file (`GMU_ABORT_AFTER_WRITES=N`).
static WRITES: AbortHook = AbortHook::new("GMU_ABORT_AFTER_WRITES");

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
#[derive(Clone)]
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

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
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

    /// Writes the state (last, after the files it names), then removes the
    /// files of every other epoch.
    pub fn save_state(&self, state: &State) -> Result<()> {
        self.write(&self.file("state.json"), serde_json::to_string(state).expect("serialises").as_bytes())?;
        let keep_current = format!("current-{}", state.epoch);
        let keep_best = format!("best-{}.", state.best_epoch);
        for entry in std::fs::read_dir(&self.dir).map_err(|e| GmuError::io(&self.dir, e))? {
            let entry = entry.map_err(|e| GmuError::io(&self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale = (name.starts_with("current-") && !is_epoch_file(&name, &keep_current))
                || (name.starts_with("best-") && !name.starts_with(&keep_best));
            if stale {
                std::fs::remove_file(entry.path()).map_err(|e| GmuError::io(entry.path(), e))?;
            }
        }
        Ok(())
    }

    /// One checkpoint file, atomically; under `GMU_ABORT_AFTER_WRITES=k` (a
    /// test hook, as `kill -9`) the process dies right after its k-th.
    fn write(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        write_atomic(path, bytes)?;
        WRITES.tick();
        Ok(())
    }

    fn save_net(&self, name: &str, net: &FusionNet) -> Result<()> {
        crate::store::write_weights(&self.file(name), net)?;
        WRITES.tick();
        Ok(())
    }

    fn load_net(&self, name: &str, spec: &FusionSpec, device: &Device) -> Result<FusionNet> {
        crate::store::read_weights(&self.file(name), spec, device)
    }

    /// Saves the weights of `epoch`, the best so far.
    pub fn save_best(&self, epoch: usize, net: &FusionNet) -> Result<()> {
        self.save_net(&format!("best-{epoch}.safetensors"), net)
    }

    /// The weights of the best epoch, `epoch`.
    pub fn load_best(&self, epoch: usize, spec: &FusionSpec, device: &Device) -> Result<FusionNet> {
        self.load_net(&format!("best-{epoch}.safetensors"), spec, device)
    }

    /// Saves a burn model under training and its optimiser.
    pub fn save_burn(&self, epoch: usize, model: &FusionNet, optim: &burn::optim::ModuleOptimizer) -> Result<()> {
        self.save_net(&format!("current-{epoch}.safetensors"), model)?;
        let ids = serde_json::to_string(&param_ids(model)).expect("serialises");
        self.write(&self.file(&format!("current-{epoch}-ids.json")), ids.as_bytes())?;
        let path = self.file(&format!("current-{epoch}.optim"));
        let tmp = crate::error::temp_path(&path);
        optim.save(&tmp).map_err(|e| err(&path, e.to_string()))?;
        std::fs::rename(&tmp, &path).map_err(|e| GmuError::io(&path, e))?;
        WRITES.tick();
        Ok(())
    }

    /// The burn model under training (on the autodiff `device`, with its
    /// parameters' recorded ids) and its optimiser's state loaded into `optim`.
    pub fn load_burn(
        &self,
        epoch: usize,
        spec: &FusionSpec,
        optim: burn::optim::ModuleOptimizer,
        device: &Device,
    ) -> Result<(FusionNet, burn::optim::ModuleOptimizer)> {
        let net = self.load_net(&format!("current-{epoch}.safetensors"), spec, device)?;
        let path = self.file(&format!("current-{epoch}-ids.json"));
        let text = std::fs::read_to_string(&path).map_err(|e| GmuError::io(&path, e))?;
        let ids: BTreeMap<String, u64> = serde_json::from_str(&text).map_err(|e| err(&path, e.to_string()))?;
        let path = self.file(&format!("current-{epoch}.optim"));
        let optim = optim.load(&path).map_err(|e| err(&path, e.to_string()))?;
        Ok((with_ids(net, &ids), optim))
    }

    /// Saves flat weights with Adam's step count and moments.
    pub fn save_flat(&self, epoch: usize, params: &[f32], t: i32, m: &[f32], v: &[f32], running: &[f32]) -> Result<()> {
        use std::io::Write;
        let path = self.file(&format!("current-{epoch}.flat"));
        let mut file = crate::error::AtomicFile::create(&path)?;
        let mut header = t.to_le_bytes().to_vec();
        header.extend_from_slice(&(params.len() as u64).to_le_bytes());
        file.write_all(&header).map_err(|e| GmuError::io(&path, e))?;
        // Straight from the slices (tens of MB at MM-IMDb's shape), in little-endian order.
        for part in [params, m, v, running] {
            for chunk in part.chunks(1 << 16) {
                let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
                file.write_all(&bytes).map_err(|e| GmuError::io(&path, e))?;
            }
        }
        file.commit()?;
        WRITES.tick();
        Ok(())
    }

    /// Flat weights, Adam's step count and moments, for `n` parameters and
    /// `n_running` running statistics.
    pub fn load_flat(&self, epoch: usize, n: usize, n_running: usize) -> Result<FlatState> {
        let path = self.file(&format!("current-{epoch}.flat"));
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
