//! The one trained model, [`Model`]: what every training command returns and
//! writes, what `gmu predict`, the comparison tables, the robustness and
//! missing-view sweeps and the synthetic experiment's maps load. It runs on new
//! data: probabilities, gates, each view's contribution share and its
//! occlusion importance, with views missing for some samples.
//!
//! ```
//! use burn::tensor::Device;
//! use gmu::data::DataSource;
//! use gmu::predict::Model;
//!
//! let device = Device::default();
//! // A GMU trained by `gmu multiview --modalities fou,zer` (a test fixture; any model directory).
//! let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/model_v2/mfeat-gmu");
//! let model = Model::load(dir.as_ref(), &device)?;
//! let views = DataSource::Mfeat.load(&device)?.views;
//! let p = model.predict(&views)?; // picks the model's views by name
//! println!("P(class 0 | row 0) = {}, share of fou = {:?}", p.probs[0], p.shares.as_ref().map(|s| s[0]));
//! let row: f32 = p.probs[..10].iter().sum();
//! assert!((row - 1.0).abs() < 1e-5, "ten class probabilities sum to one");
//! assert!(p.shares.unwrap()[..2].iter().all(|s| (0.0..=1.0).contains(s)));
//! # Ok::<(), gmu::GmuError>(())
//! ```
//!
//! **Missing views.** A sample's view is missing when its row in that view is
//! entirely NaN (an empty CSV row reads as NaN); a row with only some cells
//! missing is an error. Each method's rule is in
//! [`FusionNet::forward_present`]; `avg-probs` averages the members whose
//! view is present. A sample with every view missing is an error, unless the
//! model carries its training rows' label frequencies ([`Model::prior`]), as a
//! model just trained does: such a sample then gets those.
//!
//! **Occlusion importance** of view `v` for a sample: how much the
//! probability of the predicted class falls when `v` is treated as missing
//! (multilabel: the mean absolute change of the label probabilities). It is
//! 0 where `v` is already missing and NaN where `v` is the only view present.

mod forward;

pub use forward::{BATCH, Evaluation, MemberRef, Prediction, decide, prepare, row_missing, run, score};

use std::path::Path;
use std::sync::{Arc, OnceLock};

use burn::tensor::Device;

use crate::config::TrainingConfig;
use crate::data::{MultiviewData, Scaler, View};
use crate::error::{GmuError, Result};
use crate::fusion::FusionNet;
use crate::store::{self, ModelConfig};

/// A trained model: its record (`config.json`: views, outputs, members with
/// their specs, scalers and training logs, the training config) and one
/// network per member, on a device. Training returns one
/// (`train::train`); [`Model::load`] reads one back.
#[derive(Clone, Debug)]
pub struct Model {
    /// Its record, as `config.json` holds it.
    pub config: ModelConfig,
    /// One network per member (`config.members[i]` is `nets[i]`'s record).
    nets: Vec<FusionNet>,
    /// The training rows' label frequencies: what the model predicts for a
    /// sample in which it sees none of its views. A model just trained has
    /// them; one loaded from disk has none (such a sample is then an error).
    pub prior: Option<Vec<f32>>,
    device: Device,
    /// Each member's flat inference form ([`prepare`]), made on the first
    /// prediction and kept: the networks never change after construction.
    prepared: OnceLock<Arc<Vec<Option<crate::engine::maxout::Inference>>>>,
    /// Each view's encoder, loaded on the first raw input and kept.
    encoders: EncoderCache,
}

/// The encoders a model has loaded, by view (shared by its clones).
#[derive(Clone, Default)]
struct EncoderCache(Arc<std::sync::Mutex<Vec<Option<Arc<crate::encoders::Encoder>>>>>);

impl std::fmt::Debug for EncoderCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let loaded = self.0.lock().map_or(0, |v| v.iter().flatten().count());
        write!(f, "EncoderCache({loaded} loaded)")
    }
}

impl Model {
    /// A model of `config` with `nets` (on `device`), without a prior.
    pub fn new(config: ModelConfig, nets: Vec<FusionNet>, device: &Device) -> Model {
        assert_eq!(config.members.len(), nets.len(), "one network per member");
        Model {
            config,
            nets,
            prior: None,
            device: device.clone(),
            prepared: OnceLock::new(),
            encoders: EncoderCache::default(),
        }
    }

    /// One network per member (`config.members[i]` is `nets()[i]`'s record).
    pub fn nets(&self) -> &[FusionNet] {
        &self.nets
    }

    /// Its networks, giving the model up.
    pub fn into_nets(self) -> Vec<FusionNet> {
        self.nets
    }

    /// Loads a model directory (see [`store`](crate::store)) onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Model> {
        let (config, nets) = store::load(dir, device)?;
        Ok(Model::new(config, nets, device))
    }

    /// Writes the model directory (see [`store`](crate::store)) into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let nets: Vec<&FusionNet> = self.nets.iter().collect();
        store::save(dir, &self.config, &nets)
    }

    /// The same model, predicting `prior` for a sample with none of its views.
    pub fn with_prior(mut self, prior: Vec<f32>) -> Model {
        self.prior = Some(prior);
        self
    }

    /// The device its networks live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The late fusion of single-view models (`avg-probs`): every member of
    /// every part, their probabilities averaged over the members whose view is
    /// present, recorded under `training`. The views are the parts' views in
    /// order; the prior is the first part's (the parts share their training rows).
    pub fn late_fusion(parts: Vec<Model>, training: TrainingConfig) -> Model {
        let first = parts.first().expect("at least one part");
        let (device, prior) = (first.device.clone(), first.prior.clone());
        let mut config = ModelConfig {
            method: training.label(),
            views: Vec::new(),
            members: Vec::new(),
            threshold: training.threshold,
            seconds: parts.iter().map(|p| p.config.seconds).sum(),
            data: None,
            results: serde_json::Value::Null,
            weights_sha256: Vec::new(),
            gate_reference: None,
            training,
            ..first.config.clone()
        };
        let mut nets = Vec::new();
        for part in parts {
            for (mut member, net) in part.config.members.into_iter().zip(part.nets) {
                for v in &mut member.views {
                    let spec = &part.config.views[*v];
                    *v = match config.views.iter().position(|w| w.name == spec.name) {
                        Some(at) => at,
                        None => {
                            config.views.push(spec.clone());
                            config.views.len() - 1
                        }
                    };
                }
                config.members.push(member);
                nets.push(net);
            }
        }
        Model { config, nets, prior, device, prepared: OnceLock::new(), encoders: EncoderCache::default() }
    }

    /// Each member as the prediction code takes it (view indices into the
    /// model's views), with its flat inference form, prepared on first use.
    fn members(&self) -> Vec<MemberRef<'_>> {
        let prepared =
            self.prepared.get_or_init(|| Arc::new(self.nets.iter().map(|net| prepare(net, &self.device)).collect()));
        self.config
            .members
            .iter()
            .zip(&self.nets)
            .zip(prepared.iter())
            .map(|((m, net), flat)| MemberRef { views: &m.views, scalers: &m.scalers, net, flat: flat.as_ref() })
            .collect()
    }

    /// The model's views among `views`, by name, in the model's order. An
    /// unknown name or a wrong width is an error naming the view and the widths.
    pub fn select_views<'a>(&self, views: &'a [View]) -> Result<Vec<&'a View>> {
        self.select(views.iter())
    }

    fn select<'a>(&self, views: impl Iterator<Item = &'a View> + Clone) -> Result<Vec<&'a View>> {
        let given: Vec<String> = views.clone().map(|v| format!("{} ({} columns)", v.name, v.dim)).collect();
        self.config
            .views
            .iter()
            .map(|spec| {
                let view = views.clone().find(|v| v.name == spec.name).ok_or_else(|| {
                    GmuError::invalid(
                        "views",
                        format!(
                            "the model reads view '{}' ({} columns); the data have {}",
                            spec.name,
                            spec.width,
                            given.join(", ")
                        ),
                    )
                })?;
                if view.dim != spec.width {
                    return Err(GmuError::invalid(
                        "views",
                        format!(
                            "view '{}' has {} columns; the model was trained on {}",
                            spec.name, view.dim, spec.width
                        ),
                    ));
                }
                Ok(view)
            })
            .collect()
    }

    /// The model's views made from raw inputs: `inputs[i]` holds the texts or
    /// image files of the model's view `i` (`None`: that view is missing for
    /// every row), run through the encoder the view records. A row whose input
    /// gives no features (empty text, undecodable image) is a missing view of
    /// that row, listed in the second return value.
    pub fn encode_raw(
        &self,
        inputs: &[Option<Vec<crate::encoders::RawInput<'_>>>],
    ) -> Result<(Vec<View>, Vec<crate::encoders::encode::ViewMissingRow>)> {
        self.encode_raw_with(inputs, &mut |_, _, _| {})
    }

    /// [`encode_raw`](Self::encode_raw), calling `progress(view, done, total)`
    /// as each view's rows are encoded.
    pub fn encode_raw_with(
        &self,
        inputs: &[Option<Vec<crate::encoders::RawInput<'_>>>],
        progress: &mut dyn FnMut(&str, usize, usize),
    ) -> Result<(Vec<View>, Vec<crate::encoders::encode::ViewMissingRow>)> {
        if inputs.len() != self.config.views.len() {
            return Err(GmuError::invalid(
                "views",
                format!("{} raw inputs for a model of {} views", inputs.len(), self.config.views.len()),
            ));
        }
        let n = inputs
            .iter()
            .flatten()
            .map(Vec::len)
            .max()
            .ok_or_else(|| GmuError::invalid("views", "no raw input for any view"))?;
        let mut views = Vec::with_capacity(inputs.len());
        let mut missing = Vec::new();
        for (k, (spec, input)) in self.config.views.iter().zip(inputs).enumerate() {
            let values = match input {
                None => vec![f32::NAN; n * spec.width],
                Some(input) => {
                    if input.len() != n {
                        return Err(GmuError::invalid(
                            "views",
                            format!("{} raw inputs for view '{}', {n} for another view", input.len(), spec.name),
                        ));
                    }
                    let (values, rows) =
                        self.encode_view(k, input, &mut |done, total| progress(&spec.name, done, total))?;
                    missing.extend(rows.into_iter().map(|m| (spec.name.clone(), m)));
                    values
                }
            };
            views.push(self.encoded_view(k, values));
        }
        Ok((views, missing))
    }

    /// The model's view `k` holding `values` `[rows, width]`, made by the
    /// encoder the view records (or NaN where missing).
    pub fn encoded_view(&self, k: usize, values: Vec<f32>) -> View {
        let spec = &self.config.views[k];
        View {
            name: spec.name.clone(),
            dim: spec.width,
            values,
            image: None,
            prescaled: false,
            encoder: spec.encoder.clone(),
            tokens: spec.tokens,
        }
    }

    /// The model's view `k` from raw inputs (texts or images), through the
    /// encoder the view records: `[input.len(), width]` row-major, NaN rows
    /// where an input gives no features (listed in the second return value).
    /// Each row's features are the same bits whatever the other inputs.
    pub fn encode_view(
        &self,
        k: usize,
        input: &[crate::encoders::RawInput<'_>],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(Vec<f32>, Vec<crate::encoders::encode::MissingRow>)> {
        let spec = &self.config.views[k];
        let Some(enc) = &spec.encoder else {
            return Err(GmuError::invalid(
                "views",
                format!(
                    "view '{}' was not made by a pretrained encoder (the model records none); give its features instead of raw input",
                    spec.name
                ),
            ));
        };
        let encoder = self.encoder(k)?;
        if encoder.dim() != spec.width {
            return Err(GmuError::invalid(
                "views",
                format!(
                    "view '{}' is {} wide but its encoder {} gives {}",
                    spec.name,
                    spec.width,
                    enc.encoder,
                    encoder.dim()
                ),
            ));
        }
        crate::encoders::encode::encode_all_with(&encoder, input, crate::encoders::encode::BATCH, progress)
    }

    /// Whether each row's prediction is the same bits alone or batched with
    /// any other rows: every member runs on the flat inference path
    /// ([`prepare`]); burn's forward may round a row differently by batch.
    pub fn rows_independent(&self) -> bool {
        self.members().iter().all(|m| m.flat.is_some())
    }

    /// The encoder of the model's view `k` (which records one), loaded on
    /// first use and kept for the model's life.
    pub fn encoder(&self, k: usize) -> Result<Arc<crate::encoders::Encoder>> {
        let spec = self.config.views[k].encoder.as_ref().ok_or_else(|| {
            GmuError::invalid("views", format!("view '{}' records no encoder", self.config.views[k].name))
        })?;
        let mut cache = self.encoders.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.resize(self.config.views.len(), None);
        if let Some(e) = &cache[k] {
            return Ok(e.clone());
        }
        let encoder = Arc::new(crate::encoders::Encoder::load(spec, &self.device)?);
        cache[k] = Some(encoder.clone());
        Ok(encoder)
    }

    /// Probabilities, gates, shares and occlusion importance for every row
    /// of `views` (the model's views are picked by name; others are ignored).
    pub fn predict(&self, views: &[View]) -> Result<Prediction> {
        let selected = self.select_views(views)?;
        let n = selected[0].len();
        if let Some(v) = selected.iter().find(|v| v.len() != n) {
            return Err(GmuError::invalid(
                "views",
                format!("view '{}' has {} rows, view '{}' has {n}", v.name, v.len(), selected[0].name),
            ));
        }
        let rows: Vec<usize> = (0..n).collect();
        self.predict_rows(&selected, &rows, true)
    }

    /// As [`predict`](Self::predict), on `rows` of views already selected
    /// with [`select_views`](Self::select_views).
    ///
    /// A row in which every view is missing gets the [`prior`](Self::prior)
    /// (its gates, shares and importance NaN), or is an error without one.
    ///
    /// Every probability is finite, or the call fails naming the row and the
    /// output: a damaged model never yields a NaN prediction with success.
    pub fn predict_rows(&self, views: &[&View], rows: &[usize], importance: bool) -> Result<Prediction> {
        let p = self.predict_rows_unchecked(views, rows, importance)?;
        let width = p.width.max(1);
        if let Some(i) = p.probs.iter().position(|x| !x.is_finite()) {
            return Err(GmuError::NonFinite(format!(
                "row {}: the probability of '{}' is {}; the model's weights or scalers give non-finite values on this input",
                rows.get(i / width).copied().unwrap_or(i / width),
                self.config.outputs.get(i % width).map_or("?", String::as_str),
                p.probs[i]
            )));
        }
        Ok(p)
    }

    fn predict_rows_unchecked(&self, views: &[&View], rows: &[usize], importance: bool) -> Result<Prediction> {
        Self::check_no_infinity(views, rows)?;
        self.check_token_views(views, rows)?;
        let members = self.members();
        let k = views.len();
        let model_views: Vec<usize> = (0..k).collect();
        let blind: Vec<bool> =
            rows.iter().map(|&r| views.iter().all(|v| v.row(r).iter().all(|x| x.is_nan()))).collect();
        let Some(prior) = self.prior.as_deref().filter(|_| blind.contains(&true)) else {
            return run(&members, views, &model_views, rows, self.config.task, importance, &self.device);
        };
        // Rows where the model sees none of its views get the training label frequencies.
        let visible: Vec<usize> = rows.iter().zip(&blind).filter(|(_, b)| !**b).map(|(&r, _)| r).collect();
        let seen = run(&members, views, &model_views, &visible, self.config.task, importance, &self.device)?;
        let gated = self.nets.iter().any(FusionNet::has_gates);
        Ok(seen.with_blind_rows(&blind, prior, k, gated, importance))
    }

    /// No value of `rows` is infinite (NaN is a missing value; the file readers
    /// refuse infinities, and this refuses them from every other caller).
    fn check_no_infinity(views: &[&View], rows: &[usize]) -> Result<()> {
        for v in views {
            for &r in rows {
                if let Some(c) = v.row(r).iter().position(|x| x.is_infinite()) {
                    return Err(GmuError::invalid(
                        "views",
                        format!(
                            "view '{}' holds {} at row {r}, column {c} (NaN marks a missing value; infinities are refused)",
                            v.name,
                            v.row(r)[c]
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every view an LSTM reads holds ids its embedding can look up (an id
    /// past the vocabulary would index outside it).
    fn check_token_views(&self, views: &[&View], rows: &[usize]) -> Result<()> {
        for member in &self.config.members {
            for (&k, subnet) in member.views.iter().zip(&member.spec.encoders) {
                if let crate::fusion::SubnetSpec::Lstm { vocab, .. } = subnet {
                    views[k].check_tokens(rows.iter().copied(), *vocab).map_err(|m| GmuError::invalid("views", m))?;
                }
            }
        }
        Ok(())
    }

    /// As [`predict_rows`](Self::predict_rows) on `rows` of `views`, any
    /// views among which the model's are found by name.
    pub fn predict_views(&self, views: &[&View], rows: &[usize], importance: bool) -> Result<Prediction> {
        let selected = self.select(views.iter().copied())?;
        self.predict_rows(&selected, rows, importance)
    }

    /// The scores and predictions on `rows` of `data` (the model's views
    /// found by name), with each view's occlusion importance if asked.
    ///
    /// A model trained with `impute = mean` fills the partly missing rows
    /// with its training means first, as its training did (a row of the dev
    /// or test split is scored as the model would predict it).
    pub fn evaluate(&self, data: &MultiviewData, rows: &[usize], importance: bool) -> Result<(Evaluation, Prediction)> {
        let views: Vec<&View> = data.views.iter().collect();
        let selected = self.select(views.iter().copied())?;
        let p = self.predict_as_trained(&selected, rows, importance)?;
        Ok((score(&data.targets, rows, &p.probs, self.config.threshold), p))
    }

    /// [`predict_rows`](Self::predict_rows), imputing partly missing rows
    /// first where the model was trained with `impute = mean`.
    pub fn predict_as_trained(&self, views: &[&View], rows: &[usize], importance: bool) -> Result<Prediction> {
        Ok(self.predict_imputed(views, rows, importance, self.config.training.impute)?.0)
    }

    /// [`predict_rows`](Self::predict_rows), with `impute` first filling the
    /// missing cells of partly missing rows with the training means
    /// ([`impute`](Self::impute)); also returns how many rows were filled.
    pub fn predict_imputed(
        &self,
        views: &[&View],
        rows: &[usize],
        importance: bool,
        impute: bool,
    ) -> Result<(Prediction, usize)> {
        if !impute {
            return Ok((self.predict_rows(views, rows, importance)?, 0));
        }
        let (filled, n) = self.impute(views, rows)?;
        let refs: Vec<&View> = filled.iter().collect();
        let local: Vec<usize> = (0..rows.len()).collect();
        Ok((self.predict_rows(&refs, &local, importance)?, n))
    }

    /// The scaler the model applies to its view `name` (that of its first member reading it).
    pub fn scaler(&self, name: &str) -> Option<&Scaler> {
        let k = self.config.views.iter().position(|v| v.name == name)?;
        self.config.members.iter().find_map(|m| m.views.iter().position(|&v| v == k).map(|i| &m.scalers[i]))
    }

    /// `rows` of `views` (selected with [`select_views`](Self::select_views))
    /// as views of their own, with the missing cells of every partly missing
    /// row filled with the training means saved with the model. Returns them
    /// and the number of cells filled.
    pub fn impute(&self, views: &[&View], rows: &[usize]) -> Result<(Vec<View>, usize)> {
        let mut filled = 0;
        let mut out = Vec::with_capacity(views.len());
        for view in views {
            let mut sub = view.select(rows);
            let scaler = self.scaler(&view.name).expect("selected views are the model's");
            filled += scaler.impute_partial_rows(&mut sub.values).ok_or_else(|| {
                GmuError::invalid(
                    "impute",
                    format!("the model has no training means for view '{}' (trained before gmu saved them)", view.name),
                )
            })?;
            out.push(sub);
        }
        Ok((out, filled))
    }

    /// The same model with the reference its `suspect_<view>` is read
    /// against ([`GateReference`](crate::store::GateReference)): each view's
    /// gate on `rows` of `views` (the clean training rows), over the rows
    /// where every view is present. A model without gates is returned as is.
    pub fn with_gate_reference(mut self, views: &[View], rows: &[usize]) -> Result<Model> {
        if !self.nets.iter().any(FusionNet::has_gates) {
            return Ok(self);
        }
        let selected = self.select_views(views)?;
        let complete: Vec<usize> =
            rows.iter().copied().filter(|&r| selected.iter().all(|v| !v.row(r).iter().any(|x| x.is_nan()))).collect();
        // A reference is an extra: a model whose training rows cannot be predicted again
        // (none should exist) is kept without one rather than lost.
        let Ok(Prediction { gate_means: Some(g), .. }) = self.predict_as_trained(&selected, &complete, false) else {
            return Ok(self);
        };
        let k = selected.len();
        let gates: Vec<(String, Vec<f32>)> = selected
            .iter()
            .enumerate()
            .map(|(j, v)| (v.name.clone(), (0..complete.len()).map(|i| g[i * k + j]).collect()))
            .collect();
        self.config.gate_reference = crate::store::GateReference::new(&gates);
        Ok(self)
    }

    /// Each row's suspicion of each view, `[rows, K]` (see
    /// [`GateReference::suspect`](crate::store::GateReference::suspect)): where
    /// the row's gate for the view falls among the clean training rows'. NaN
    /// where the view is missing; `None` for a model without gates or without
    /// a recorded reference.
    pub fn suspect(&self, p: &Prediction) -> Option<Vec<f32>> {
        let reference = self.config.gate_reference.as_ref()?;
        let gates = p.gate_means.as_ref()?;
        let k = p.n_views;
        (0..p.len() * k)
            .map(|at| {
                let name = &self.config.views[at % k].name;
                let g = if p.present[at] { gates[at] } else { f32::NAN };
                reference.suspect(name, g)
            })
            .collect()
    }

    /// The decisions for `probs`: per row, the predicted class or labels.
    pub fn decide(&self, probs: &[f32]) -> Vec<u8> {
        decide(self.config.task, probs, self.config.outputs.len(), self.config.threshold)
    }
}
