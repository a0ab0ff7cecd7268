//! Running a trained model on new data: probabilities, gates, each view's
//! contribution share and its occlusion importance, with views missing for
//! some samples.
//!
//! ```no_run
//! use burn::tensor::Device;
//! use gmu::data::DataSource;
//! use gmu::predict::Predictor;
//!
//! let device = Device::default();
//! let model = Predictor::load("runs/multiview-mfeat/fou+zer/gmu".as_ref(), &device)?;
//! let views = DataSource::Mfeat.load()?.views;
//! let p = model.predict(&views)?; // picks the model's views by name
//! println!("P(class 0 | row 0) = {}, share of fou = {:?}", p.probs[0], p.shares.as_ref().map(|s| s[0]));
//! # Ok::<(), gmu::GmuError>(())
//! ```
//!
//! **Missing views.** A sample's view is missing when its row in that view is
//! entirely NaN (an empty CSV row reads as NaN); a row with only some cells
//! missing is an error. Each method's rule is in
//! [`FusionNet::forward_present`]; `avg-probs` averages the members whose
//! view is present. A sample with every view missing is an error.
//!
//! **Occlusion importance** of view `v` for a sample: how much the
//! probability of the predicted class falls when `v` is treated as missing
//! (multilabel: the mean absolute change of the label probabilities). It is
//! 0 where `v` is already missing and NaN where `v` is the only view present.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};

use crate::data::{Scaler, Targets, View};
use crate::error::{GmuError, Result};
use crate::fusion::{FusionNet, Task};
use crate::metrics::{F1Scores, multiclass_f1, multilabel_f1};
use crate::store::{self, ModelConfig};

/// Rows scored per forward pass.
pub const BATCH: usize = 512;

/// One network of a model and the views it reads.
#[derive(Clone, Copy, Debug)]
pub struct MemberRef<'a> {
    /// Indices into the views given to [`run`].
    pub views: &'a [usize],
    /// The scaling of each view it reads.
    pub scalers: &'a [Scaler],
    /// The network.
    pub net: &'a FusionNet,
}

/// What a model says about some rows. Per-view arrays are row-major
/// `[rows, K]` over the model's K views.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Prediction {
    /// Number of outputs C.
    pub width: usize,
    /// Number of views K.
    pub n_views: usize,
    /// `[rows, C]` probabilities.
    pub probs: Vec<f32>,
    /// Mean raw gate of each view (over units or labels), where the model has gates.
    pub gate_means: Option<Vec<f32>>,
    /// Each view's share of the gated signal (`Σ|z_i ⊙ h_i|` over the total; the
    /// mixture weight for a mixture of experts); each row sums to 1.
    pub shares: Option<Vec<f32>>,
    /// Occlusion importance of each view (see the [module docs](self)), when asked for.
    pub importance: Option<Vec<f32>>,
    /// Whether each view was present.
    pub present: Vec<bool>,
}

impl Prediction {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.probs.len().checked_div(self.width).unwrap_or(0)
    }

    /// True with no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn append(&mut self, other: Prediction) {
        self.width = other.width;
        self.n_views = other.n_views;
        self.probs.extend(other.probs);
        self.present.extend(other.present);
        for (mine, theirs) in [
            (&mut self.gate_means, other.gate_means),
            (&mut self.shares, other.shares),
            (&mut self.importance, other.importance),
        ] {
            if let Some(t) = theirs {
                mine.get_or_insert_with(Vec::new).extend(t);
            }
        }
    }
}

/// Scores of probabilities against targets.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    /// F1 averages and per-label F1.
    pub f1: F1Scores,
    /// Accuracy (single-label tasks) or subset accuracy (multilabel).
    pub accuracy: f64,
}

/// The 0/1 decision for each output: the arg-max class (single-label) or
/// every label at or above `threshold` (multilabel).
pub fn decide(task: Task, probs: &[f32], width: usize, threshold: f32) -> Vec<u8> {
    match task {
        Task::Multiclass => probs
            .chunks(width)
            .flat_map(|row| {
                let best = argmax(row);
                (0..width).map(move |c| u8::from(c == best))
            })
            .collect(),
        Task::Multilabel => probs.iter().map(|&p| u8::from(p >= threshold)).collect(),
    }
}

fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold(0, |b, (i, &p)| if p > row[b] { i } else { b })
}

/// Scores `probs` (`[rows.len(), C]`) against the targets of `rows`.
pub fn score(targets: &Targets, rows: &[usize], probs: &[f32], threshold: f32) -> Evaluation {
    let width = targets.width();
    let task = if targets.is_multilabel() { Task::Multilabel } else { Task::Multiclass };
    let predicted = decide(task, probs, width, threshold);
    match targets {
        Targets::Classes { y, .. } => {
            let truth: Vec<usize> = rows.iter().map(|&r| y[r]).collect();
            let pred: Vec<usize> =
                predicted.chunks(width).map(|row| row.iter().position(|&x| x == 1).unwrap_or(0)).collect();
            let f1 = multiclass_f1(&truth, &pred, width);
            let accuracy = truth.iter().zip(&pred).filter(|(a, b)| a == b).count() as f64 / truth.len().max(1) as f64;
            Evaluation { f1, accuracy }
        }
        Targets::Labels { .. } => {
            let truth: Vec<u8> = rows.iter().flat_map(|&r| targets.indicator_row(r)).collect();
            let f1 = multilabel_f1(&truth, &predicted, width);
            let exact = truth.chunks(width).zip(predicted.chunks(width)).filter(|(a, b)| a == b).count();
            Evaluation { f1, accuracy: exact as f64 / rows.len().max(1) as f64 }
        }
    }
}

/// Whether row `r` of `view` is missing: `Ok(true)` when every cell is NaN,
/// `Ok(false)` when none is, and `Err(column)` for the first NaN of a row
/// that is only partly missing.
pub fn row_missing(view: &View, r: usize) -> std::result::Result<bool, usize> {
    let row = view.row(r);
    match row.iter().position(|x| x.is_nan()) {
        None => Ok(false),
        Some(_) if row.iter().all(|x| x.is_nan()) => Ok(true),
        Some(c) => Err(c),
    }
}

/// Runs `members` on `rows` of `views`, in batches of [`BATCH`] rows.
/// `model_views` are the model's K views (indices into `views`): presence
/// and importance are reported over them, in that order. Probabilities are
/// averaged over the members whose views are present.
pub fn run(
    members: &[MemberRef<'_>],
    views: &[&View],
    model_views: &[usize],
    rows: &[usize],
    task: Task,
    importance: bool,
    device: &Device,
) -> Result<Prediction> {
    let mut out = Prediction::default();
    for chunk in rows.chunks(BATCH) {
        out.append(run_batch(members, views, model_views, chunk, task, importance, device)?);
    }
    out.n_views = model_views.len();
    Ok(out)
}

fn run_batch(
    members: &[MemberRef<'_>],
    views: &[&View],
    model_views: &[usize],
    rows: &[usize],
    task: Task,
    importance: bool,
    device: &Device,
) -> Result<Prediction> {
    let k = model_views.len();
    let b = rows.len();
    // Presence of each model view, and each view's scaled rows (missing rows zeroed).
    let mut present = vec![true; b * k];
    for (j, &v) in model_views.iter().enumerate() {
        for (i, &r) in rows.iter().enumerate() {
            match row_missing(views[v], r) {
                Ok(missing) => present[i * k + j] = !missing,
                Err(c) => {
                    return Err(GmuError::invalid(
                        "views",
                        format!(
                            "view '{}', row {r}, column {c}: a missing cell in a row that is not entirely missing \
                             (leave the whole row empty to mark the view missing, or impute it with the training means: impute = mean)",
                            views[v].name
                        ),
                    ));
                }
            }
        }
    }
    if let Some(i) = (0..b).find(|&i| present[i * k..(i + 1) * k].iter().all(|p| !p)) {
        return Err(GmuError::invalid("views", format!("row {}: every view is missing", rows[i])));
    }
    let full = forward_all(members, views, model_views, rows, &present, device);
    let width = full.probs.len() / b.max(1);
    let mut result = Prediction { width, n_views: k, present: present.clone(), ..full };
    if importance {
        let mut imp = vec![0.0f32; b * k];
        for j in 0..k {
            let mut occluded = present.clone();
            let mut any = false;
            for i in 0..b {
                let others = (0..k).any(|o| o != j && present[i * k + o]);
                if present[i * k + j] && others {
                    occluded[i * k + j] = false;
                    any = true;
                } else if present[i * k + j] {
                    imp[i * k + j] = f32::NAN;
                }
            }
            if !any {
                continue;
            }
            let without = forward_all(members, views, model_views, rows, &occluded, device).probs;
            for i in 0..b {
                if occluded[i * k + j] == present[i * k + j] {
                    continue;
                }
                let (p, q) = (&result.probs[i * width..(i + 1) * width], &without[i * width..(i + 1) * width]);
                imp[i * k + j] = match task {
                    Task::Multiclass => {
                        let c = argmax(p);
                        p[c] - q[c]
                    }
                    Task::Multilabel => p.iter().zip(q).map(|(a, b)| (a - b).abs()).sum::<f32>() / width as f32,
                };
            }
        }
        result.importance = Some(imp);
    }
    Ok(result)
}

/// One pass of every member over one batch with the given presence.
fn forward_all(
    members: &[MemberRef<'_>],
    views: &[&View],
    model_views: &[usize],
    rows: &[usize],
    present: &[bool],
    device: &Device,
) -> Prediction {
    let k = model_views.len();
    let b = rows.len();
    let mut probs: Vec<f32> = Vec::new();
    let mut weight = vec![0.0f32; b];
    let (mut gate_means, mut shares) = (None, None);
    for member in members {
        // Where each of the member's views sits among the model's views.
        let at: Vec<usize> = member
            .views
            .iter()
            .map(|v| model_views.iter().position(|m| m == v).expect("a member reads the model's views"))
            .collect();
        let member_present: Vec<f32> = (0..b)
            .flat_map(|i| at.iter().map(move |&j| (i, j)))
            .map(|(i, j)| f32::from(u8::from(present[i * k + j])))
            .collect();
        let inputs: Vec<Tensor<2>> = member
            .views
            .iter()
            .zip(member.scalers)
            .enumerate()
            .map(|(m, (&v, scaler))| {
                let view = views[v];
                let mut values = Vec::with_capacity(b * view.dim);
                for (i, &r) in rows.iter().enumerate() {
                    if member_present[i * at.len() + m] == 1.0 {
                        values.extend_from_slice(view.row(r));
                    } else {
                        // Missing: scaled to zero below is the training mean; zero it after scaling.
                        values.extend(std::iter::repeat_n(f32::NAN, view.dim));
                    }
                }
                scaler.apply(&mut values);
                values.iter_mut().filter(|x| x.is_nan()).for_each(|x| *x = 0.0);
                Tensor::from_data(TensorData::new(values, [b, view.dim]), device)
            })
            .collect();
        let all_present = member_present.iter().all(|&p| p == 1.0);
        let mask = (!all_present)
            .then(|| Tensor::<2>::from_data(TensorData::new(member_present.clone(), [b, at.len()]), device));
        let out = member.net.forward_present(&inputs, mask.as_ref());
        let p: Vec<f32> =
            member.net.probabilities(out.scores).into_data().try_to_vec::<f32>().expect("f32 probabilities");
        let c = p.len() / b.max(1);
        if probs.is_empty() {
            probs = vec![0.0; b * c];
        }
        for i in 0..b {
            if member_present[i * at.len()..(i + 1) * at.len()].contains(&1.0) {
                weight[i] += 1.0;
                for (acc, x) in probs[i * c..(i + 1) * c].iter_mut().zip(&p[i * c..(i + 1) * c]) {
                    *acc += x;
                }
            }
        }
        if gate_means.is_none()
            && let (Some(g), Some(contrib)) = (out.gates, out.contributions)
        {
            let [_, kk, _] = g.dims();
            gate_means = Some(g.mean_dim(2).reshape([b, kk]).into_data().try_to_vec::<f32>().expect("f32"));
            let per_view = contrib.sum_dim(2).reshape([b, kk]);
            let total = per_view.clone().sum_dim(1).clamp_min(1e-12);
            shares = Some((per_view / total).into_data().try_to_vec::<f32>().expect("f32"));
        }
    }
    let c = probs.len() / b.max(1);
    for i in 0..b {
        let w = weight[i].max(1.0);
        probs[i * c..(i + 1) * c].iter_mut().for_each(|x| *x /= w);
    }
    Prediction { width: c, n_views: k, probs, gate_means, shares, importance: None, present: vec![] }
}

/// A trained model loaded for prediction.
#[derive(Debug)]
pub struct Predictor {
    /// Its `config.json`.
    pub config: ModelConfig,
    /// One network per member.
    pub nets: Vec<FusionNet>,
    device: Device,
}

impl Predictor {
    /// Loads a model directory (see [`store`](crate::store)) onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let (config, nets) = store::load(dir, device)?;
        Ok(Predictor { config, nets, device: device.clone() })
    }

    /// The model's views among `views`, by name, in the model's order. An
    /// unknown name or a wrong width is an error naming the view and the widths.
    pub fn select_views<'a>(&self, views: &'a [View]) -> Result<Vec<&'a View>> {
        let given: Vec<String> = views.iter().map(|v| format!("{} ({} columns)", v.name, v.dim)).collect();
        self.config
            .views
            .iter()
            .map(|spec| {
                let view = views.iter().find(|v| v.name == spec.name).ok_or_else(|| {
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
        for (spec, input) in self.config.views.iter().zip(inputs) {
            let values = match input {
                None => vec![f32::NAN; n * spec.width],
                Some(input) => {
                    let Some(enc) = &spec.encoder else {
                        return Err(GmuError::invalid(
                            "views",
                            format!(
                                "view '{}' was not made by a pretrained encoder (the model records none); give its features instead of raw input",
                                spec.name
                            ),
                        ));
                    };
                    if input.len() != n {
                        return Err(GmuError::invalid(
                            "views",
                            format!("{} raw inputs for view '{}', {n} for another view", input.len(), spec.name),
                        ));
                    }
                    let encoder = crate::encoders::Encoder::load(enc, &self.device)?;
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
                    let (values, rows) =
                        crate::encoders::encode::encode_all(&encoder, input, crate::encoders::encode::BATCH)?;
                    missing.extend(rows.into_iter().map(|m| (spec.name.clone(), m)));
                    values
                }
            };
            views.push(View {
                name: spec.name.clone(),
                dim: spec.width,
                values,
                image: None,
                prescaled: false,
                encoder: spec.encoder.clone(),
                tokens: spec.tokens,
            });
        }
        Ok((views, missing))
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
    pub fn predict_rows(&self, views: &[&View], rows: &[usize], importance: bool) -> Result<Prediction> {
        let members: Vec<MemberRef<'_>> = self
            .config
            .members
            .iter()
            .zip(&self.nets)
            .map(|(m, net)| MemberRef { views: &m.views, scalers: &m.scalers, net })
            .collect();
        let model_views: Vec<usize> = (0..views.len()).collect();
        run(&members, views, &model_views, rows, self.config.task, importance, &self.device)
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

    /// The decisions for `probs`: per row, the predicted class or labels.
    pub fn decide(&self, probs: &[f32]) -> Vec<u8> {
        decide(self.config.task, probs, self.config.outputs.len(), self.config.threshold)
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Param;
    use burn::nn::Linear;

    use super::*;
    use crate::fusion::network::FusionHead;
    use crate::fusion::{FusionKind, FusionSpec, HeadKind};

    fn set(l: &mut Linear, w: Vec<f32>, b: Vec<f32>, device: &Device) {
        let [i, o] = l.weight.dims();
        l.weight = Param::from_data(TensorData::new(w, [i, o]), device);
        l.bias = Some(Param::from_data(TensorData::new(b, [o]), device));
    }

    fn view(name: &str, values: Vec<f32>) -> View {
        View { name: name.into(), dim: 1, values, image: None, prescaled: false, encoder: None, tokens: None }
    }

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// The GMU of the network tests: `h_v = tanh(0.5 x_v + 0.1)`,
    /// `h_t = tanh(−x_t − 0.2)`, `z = σ(2 x_v − x_t + 0.3)`, logits `(h, −h)`.
    fn hand_gmu(device: &Device) -> FusionNet {
        let mut spec = FusionSpec::new(FusionKind::Gmu, vec![1, 1], 1, 2, Task::Multiclass);
        spec.head = HeadKind::Linear;
        let mut net = spec.init(device).unwrap();
        let FusionHead::GmuLinear(head) = &mut net.head else { panic!("linear head") };
        set(&mut head.gmu.transforms[0], vec![0.5], vec![0.1], device);
        set(&mut head.gmu.transforms[1], vec![-1.0], vec![-0.2], device);
        set(&mut head.gmu.gate, vec![2.0, -1.0], vec![0.3], device);
        set(&mut head.output, vec![1.0, -1.0], vec![0.0, 0.0], device);
        net
    }

    /// Row 0 has both views; row 1 has no text (an all-NaN row).
    #[test]
    fn importance_and_shares_on_a_hand_set_gmu() {
        let device = Device::default();
        let net = hand_gmu(&device);
        let scalers = [Scaler::identity(1), Scaler::identity(1)];
        let views = [view("v", vec![-2.0, 1.0]), view("t", vec![3.0, f32::NAN])];
        let refs: Vec<&View> = views.iter().collect();
        let member = MemberRef { views: &[0, 1], scalers: &scalers, net: &net };
        let p = run(&[member], &refs, &[0, 1], &[0, 1], Task::Multiclass, true, &device).unwrap();
        let (h_v, h_t) = ((0.5f64 * -2.0 + 0.1).tanh(), (-3.0f64 - 0.2).tanh());
        let z = sig(2.0 * -2.0 - 3.0 + 0.3);
        let h = z * h_v + (1.0 - z) * h_t;
        // Softmax of (h, −h): P(class 1) = σ(−2h); h < 0, so class 1 is predicted.
        let p1 = sig(-2.0 * h);
        assert!((p.probs[1] as f64 - p1).abs() < 1e-6, "{:?}", p.probs);
        let imp = p.importance.as_ref().unwrap();
        assert!((imp[0] as f64 - (p1 - sig(-2.0 * h_t))).abs() < 1e-6, "importance of v: {imp:?}");
        assert!((imp[1] as f64 - (p1 - sig(-2.0 * h_v))).abs() < 1e-6, "importance of t: {imp:?}");
        let shares = p.shares.as_ref().unwrap();
        let (a, b) = ((z * h_v).abs(), ((1.0 - z) * h_t).abs());
        assert!((shares[0] as f64 - a / (a + b)).abs() < 1e-6 && (shares[0] + shares[1] - 1.0).abs() < 1e-6);
        // Row 1: text missing. The visual view decides alone: gate and share 1,
        // importance of v undefined (it is the only view), of t zero.
        let h1 = (0.5f64 + 0.1).tanh();
        assert!((p.probs[2] as f64 - sig(2.0 * h1)).abs() < 1e-6);
        assert_eq!(p.present, vec![true, true, true, false]);
        assert!(imp[2].is_nan() && imp[3] == 0.0, "{imp:?}");
        assert!((shares[2] - 1.0).abs() < 1e-6 && (p.gate_means.as_ref().unwrap()[2] - 1.0).abs() < 1e-6);
    }

    /// `avg-probs`: two single-view members; a row whose second view is
    /// missing takes the first member's probabilities alone.
    #[test]
    fn late_fusion_averages_the_present_members() {
        let device = Device::default();
        let single = |w: f32| {
            let mut spec = FusionSpec::new(FusionKind::Concat, vec![1], 1, 2, Task::Multiclass);
            spec.head = HeadKind::Linear;
            let mut net = spec.init(&device).unwrap();
            let FusionHead::Linear(l) = &mut net.head else { panic!("linear head") };
            set(l, vec![w, -w], vec![0.0, 0.0], &device);
            net
        };
        let (a, b) = (single(1.0), single(-0.5));
        let scalers = [Scaler::identity(1)];
        let views = [view("a", vec![1.0, 1.0]), view("b", vec![2.0, f32::NAN])];
        let refs: Vec<&View> = views.iter().collect();
        let members = [
            MemberRef { views: &[0], scalers: &scalers, net: &a },
            MemberRef { views: &[1], scalers: &scalers, net: &b },
        ];
        let p = run(&members, &refs, &[0, 1], &[0, 1], Task::Multiclass, false, &device).unwrap();
        // softmax(w x, −w x)[0] = σ(2 w x)
        let both = (sig(2.0) + sig(-2.0)) / 2.0;
        assert!((p.probs[0] as f64 - both).abs() < 1e-6, "{:?}", p.probs);
        assert!((p.probs[2] as f64 - sig(2.0)).abs() < 1e-6, "{:?}", p.probs);
    }

    #[test]
    fn partly_missing_rows_and_rows_with_nothing_are_errors() {
        let device = Device::default();
        let net = hand_gmu(&device);
        let scalers = [Scaler::identity(1), Scaler::identity(1)];
        let member = MemberRef { views: &[0, 1], scalers: &scalers, net: &net };
        let nothing = [view("v", vec![1.0, f32::NAN]), view("t", vec![1.0, f32::NAN])];
        let refs: Vec<&View> = nothing.iter().collect();
        let err = run(&[member], &refs, &[0, 1], &[0, 1], Task::Multiclass, false, &device).unwrap_err().to_string();
        assert!(err.contains("row 1: every view is missing"), "{err}");
        let partly = View {
            name: "w".into(),
            dim: 2,
            values: vec![1.0, f32::NAN],
            image: None,
            prescaled: false,
            encoder: None,
            tokens: None,
        };
        assert_eq!(row_missing(&partly, 0), Err(1));
        let empty = View {
            name: "w".into(),
            dim: 2,
            values: vec![f32::NAN, f32::NAN],
            image: None,
            prescaled: false,
            encoder: None,
            tokens: None,
        };
        assert_eq!(row_missing(&empty, 0), Ok(true));
    }
}
