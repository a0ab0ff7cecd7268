//! The forward passes behind every prediction: members run batch by batch
//! over the model's views, missing views masked as each method's rule says,
//! probabilities averaged over the members, gates, shares and occlusion
//! importance collected ([`run`]); the decisions and scores of probabilities
//! ([`decide`], [`score`]). On the CPU the paper's maxout-MLP models (GMU,
//! concatenation, linear sum, and `avg-probs`' members) run on the maxout
//! engine's flat inference pass ([`Inference`]); every other model, and
//! every model on another device, on burn's forward.

use burn::tensor::{Device, Tensor, TensorData};

use crate::engine::maxout::{Inference, MaxoutNet};

use crate::data::{Scaler, Targets, View};
use crate::error::{GmuError, Result};
use crate::fusion::{FusionNet, Task};
use crate::metrics::{F1Scores, multiclass_f1, multilabel_f1};

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
    /// Its flat inference form where it has one, prepared once ([`prepare`]);
    /// `None`: [`run`] prepares it for the call (or runs burn's forward).
    pub flat: Option<&'a Inference>,
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
    /// How much each view disagrees with the others, computed with the
    /// importance: the total-variation distance between the prediction from
    /// that view alone and the prediction without it (for multilabel tasks,
    /// the mean absolute difference over labels), in [0, 1]; NaN where the view
    /// is missing or no other view is present. A misaligned pair (a swapped
    /// view) is what it flags: each view, read alone, tells another story.
    pub conflict: Option<Vec<f32>>,
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

    /// These predictions (of the rows where `blind` is false, in order) with
    /// a row put in place for each `true` of `blind`: probabilities `fill`
    /// (one per output), every one of the `n_views` views absent, and NaN
    /// gates, shares and importance. Where these predictions hold no row to
    /// carry a column, the blind rows get gates and shares if `gated`, and
    /// importance if `importance`.
    pub fn with_blind_rows(
        self,
        blind: &[bool],
        fill: &[f32],
        n_views: usize,
        gated: bool,
        importance: bool,
    ) -> Prediction {
        let (c, k) = (fill.len(), n_views);
        let none_seen = !blind.contains(&false);
        let mut out = Prediction { width: c, n_views: k, ..Prediction::default() };
        let mut i = 0;
        for &b in blind {
            let columns = [
                (&mut out.gate_means, &self.gate_means, gated),
                (&mut out.shares, &self.shares, gated),
                (&mut out.importance, &self.importance, importance),
                (&mut out.conflict, &self.conflict, importance),
            ];
            if b {
                out.probs.extend_from_slice(fill);
                out.present.extend(std::iter::repeat_n(false, k));
                for (mine, theirs, has) in columns {
                    if theirs.is_some() || none_seen && has {
                        mine.get_or_insert_with(Vec::new).extend(std::iter::repeat_n(f32::NAN, k));
                    }
                }
            } else {
                out.probs.extend_from_slice(&self.probs[i * c..(i + 1) * c]);
                out.present.extend_from_slice(&self.present[i * k..(i + 1) * k]);
                for (mine, theirs, _) in columns {
                    if let Some(t) = theirs {
                        mine.get_or_insert_with(Vec::new).extend_from_slice(&t[i * k..(i + 1) * k]);
                    }
                }
                i += 1;
            }
        }
        out
    }

    /// Rows `lo..hi` of these predictions.
    pub fn slice(&self, lo: usize, hi: usize) -> Prediction {
        let (c, k) = (self.width, self.n_views);
        let rows = |v: &Option<Vec<f32>>| v.as_ref().map(|v| v[lo * k..hi * k].to_vec());
        Prediction {
            width: c,
            n_views: k,
            probs: self.probs[lo * c..hi * c].to_vec(),
            gate_means: rows(&self.gate_means),
            shares: rows(&self.shares),
            importance: rows(&self.importance),
            conflict: rows(&self.conflict),
            present: self.present[lo * k..hi * k].to_vec(),
        }
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
            (&mut self.conflict, other.conflict),
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
    // Each member's flat form: prepared by the caller, or once per call (not per batch).
    let prepared: Vec<Option<Inference>> =
        members.iter().map(|m| if m.flat.is_some() { None } else { prepare(m.net, device) }).collect();
    let members: Vec<(MemberRef<'_>, Option<&Inference>)> =
        members.iter().zip(&prepared).map(|(m, own)| (*m, m.flat.or(own.as_ref()))).collect();
    if members.iter().all(|(_, flat)| flat.is_some()) {
        // Flat inference touches no shared state: batches run in parallel, appended in order.
        use rayon::prelude::*;
        let batches: Vec<Result<Prediction>> = rows
            .par_chunks(BATCH)
            .map(|chunk| run_batch(&members, views, model_views, chunk, task, importance, device))
            .collect();
        for batch in batches {
            out.append(batch?);
        }
    } else {
        for chunk in rows.chunks(BATCH) {
            out.append(run_batch(&members, views, model_views, chunk, task, importance, device)?);
        }
    }
    out.n_views = model_views.len();
    Ok(out)
}

/// `net` on the maxout engine's flat buffers, packed for inference, where its
/// inference runs there: on the CPU, a maxout-MLP model on feature views
/// ([`MaxoutNet::from_net`] refuses the rest, which stay on burn's forward).
pub fn prepare(net: &FusionNet, device: &Device) -> Option<Inference> {
    crate::device::is_cpu(device).then(|| MaxoutNet::from_net(net, 0).ok().map(Inference::new)).flatten()
}

fn run_batch(
    members: &[(MemberRef<'_>, Option<&Inference>)],
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
        // Each view's prediction without it and the presence that pass used (the view left out
        // where another view is present), kept for the conflict.
        let mut withouts: Vec<Option<(Vec<f32>, Vec<bool>)>> = vec![None; k];
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
            withouts[j] = Some((without, occluded));
        }
        let mut conflict = vec![f32::NAN; b * k];
        for j in 0..k {
            let Some((without, occluded)) = &withouts[j] else { continue };
            // The rows the importance left this view out of; in them, the view alone.
            let left_out = |i: usize| occluded[i * k + j] != present[i * k + j];
            // Two views: the other view's occlusion pass already is this view alone.
            let computed;
            let only: &[f32] = match (k == 2).then(|| &withouts[1 - j]) {
                Some(Some((other, _))) => other,
                _ => {
                    let alone: Vec<bool> = (0..b).flat_map(|i| (0..k).map(move |o| o == j && left_out(i))).collect();
                    computed =
                        forward_all(members, views, model_views, rows, &with_fallback(&alone, &present, k), device)
                            .probs;
                    &computed
                }
            };
            for i in (0..b).filter(|&i| left_out(i)) {
                let (p, q) = (&only[i * width..(i + 1) * width], &without[i * width..(i + 1) * width]);
                let gap: f32 = p.iter().zip(q).map(|(a, b)| (a - b).abs()).sum();
                conflict[i * k + j] = match task {
                    Task::Multiclass => gap / 2.0,
                    Task::Multilabel => gap / width as f32,
                };
            }
        }
        result.importance = Some(imp);
        result.conflict = Some(conflict);
    }
    Ok(result)
}

/// A presence mask for one forward pass: `wanted` where a row keeps some
/// view, the row's own presence where `wanted` keeps none (a pass needs a
/// view in every row; those rows' results are not read).
fn with_fallback(wanted: &[bool], present: &[bool], k: usize) -> Vec<bool> {
    wanted
        .chunks(k)
        .zip(present.chunks(k))
        .flat_map(|(w, p)| if w.contains(&true) { w.to_vec() } else { p.to_vec() })
        .collect()
}

/// One pass of every member over one batch with the given presence.
fn forward_all(
    members: &[(MemberRef<'_>, Option<&Inference>)],
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
    for &(member, flat) in members {
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
        let inputs: Vec<Vec<f32>> = member
            .views
            .iter()
            .zip(member.scalers)
            .enumerate()
            .map(|(m, (&v, scaler))| {
                let view = views[v];
                // Scaled in one pass; a missing row stays zero, the training mean.
                let mut values = vec![0.0f32; b * view.dim];
                for (i, (&r, out)) in rows.iter().zip(values.chunks_exact_mut(view.dim.max(1))).enumerate() {
                    if member_present[i * at.len() + m] == 1.0 {
                        scaler.apply_row_into(view.row(r), out);
                    }
                }
                values
            })
            .collect();
        let all_present = member_present.iter().all(|&p| p == 1.0);
        let (p, member_gates, member_shares) = match flat {
            Some(flat) => {
                let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
                let out = flat.infer(&refs, b, (!all_present).then_some(member_present.as_slice()));
                (out.probs, out.gate_means, out.shares)
            }
            None => burn_forward(member.net, inputs, &member_present, all_present, at.len(), device),
        };
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
        if gate_means.is_none() && member_gates.is_some() && member_shares.is_some() {
            (gate_means, shares) = (member_gates, member_shares);
        }
    }
    let c = probs.len() / b.max(1);
    for i in 0..b {
        let w = weight[i].max(1.0);
        probs[i * c..(i + 1) * c].iter_mut().for_each(|x| *x /= w);
    }
    Prediction { width: c, n_views: k, probs, gate_means, shares, importance: None, conflict: None, present: vec![] }
}

/// One member's probabilities `[b, C]`, mean gates and shares `[b, K]` (gated
/// nets) from burn's forward on `inputs` (scaled, missing rows zeroed).
fn burn_forward(
    net: &FusionNet,
    inputs: Vec<Vec<f32>>,
    member_present: &[f32],
    all_present: bool,
    k: usize,
    device: &Device,
) -> (Vec<f32>, Option<Vec<f32>>, Option<Vec<f32>>) {
    let b = member_present.len() / k.max(1);
    let inputs: Vec<Tensor<2>> = inputs
        .into_iter()
        .map(|values| {
            let d = values.len() / b.max(1);
            Tensor::from_data(TensorData::new(values, [b, d]), device)
        })
        .collect();
    let mask = (!all_present).then(|| Tensor::<2>::from_data(TensorData::new(member_present.to_vec(), [b, k]), device));
    let out = net.forward_present(&inputs, mask.as_ref());
    let p: Vec<f32> = net.probabilities(out.scores).into_data().try_to_vec::<f32>().expect("f32 probabilities");
    let (mut gate_means, mut shares) = (None, None);
    if let (Some(g), Some(contrib)) = (out.gates, out.contributions) {
        let [_, kk, _] = g.dims();
        gate_means = Some(g.mean_dim(2).reshape([b, kk]).into_data().try_to_vec::<f32>().expect("f32"));
        let per_view = contrib.sum_dim(2).reshape([b, kk]);
        let total = per_view.clone().sum_dim(1).clamp_min(1e-12);
        shares = Some((per_view / total).into_data().try_to_vec::<f32>().expect("f32"));
    }
    (p, gate_means, shares)
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
        let member = MemberRef { views: &[0, 1], scalers: &scalers, net: &net, flat: None };
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
        // Conflict: the total variation between each view alone, P(class 1) = σ(−2 h_v) against σ(−2 h_t).
        let conflict = p.conflict.as_ref().unwrap();
        let tv = (sig(-2.0 * h_v) - sig(-2.0 * h_t)).abs();
        assert!(tv > 0.05 && (conflict[0] as f64 - tv).abs() < 1e-6 && conflict[0] == conflict[1], "{conflict:?}");
        let shares = p.shares.as_ref().unwrap();
        let (a, b) = ((z * h_v).abs(), ((1.0 - z) * h_t).abs());
        assert!((shares[0] as f64 - a / (a + b)).abs() < 1e-6 && (shares[0] + shares[1] - 1.0).abs() < 1e-6);
        // Row 1: text missing. The visual view decides alone: gate and share 1,
        // importance of v undefined (it is the only view), of t zero.
        let h1 = (0.5f64 + 0.1).tanh();
        assert!((p.probs[2] as f64 - sig(2.0 * h1)).abs() < 1e-6);
        assert_eq!(p.present, vec![true, true, true, false]);
        assert!(imp[2].is_nan() && imp[3] == 0.0, "{imp:?}");
        assert!(conflict[2].is_nan() && conflict[3].is_nan(), "no other view / missing: {conflict:?}");
        assert!((shares[2] - 1.0).abs() < 1e-6 && (p.gate_means.as_ref().unwrap()[2] - 1.0).abs() < 1e-6);
    }

    /// Issue 25, item 5: for a multilabel task a view's importance is the
    /// mean absolute change of the output probabilities when the view is
    /// treated as missing, checked against the two predictions made apart.
    #[test]
    fn multilabel_importance_is_the_mean_absolute_change() {
        let device = Device::default();
        let net = hand_gmu(&device);
        let scalers = [Scaler::identity(1), Scaler::identity(1)];
        let member = MemberRef { views: &[0, 1], scalers: &scalers, net: &net, flat: None };
        let both = [view("v", vec![-2.0]), view("t", vec![3.0])];
        let no_v = [view("v", vec![f32::NAN]), view("t", vec![3.0])];
        let no_t = [view("v", vec![-2.0]), view("t", vec![f32::NAN])];
        let go = |views: &[View], importance: bool| {
            let refs: Vec<&View> = views.iter().collect();
            run(&[MemberRef { ..member }], &refs, &[0, 1], &[0], Task::Multilabel, importance, &device).unwrap()
        };
        let p = go(&both, true);
        let imp = p.importance.as_ref().unwrap();
        for (j, apart) in [go(&no_v, false), go(&no_t, false)].iter().enumerate() {
            let change: f32 =
                p.probs.iter().zip(&apart.probs).map(|(a, b)| (a - b).abs()).sum::<f32>() / p.probs.len() as f32;
            assert!(change > 0.0 && (imp[j] - change).abs() <= 1e-5 * change, "view {j}: {} vs {change}", imp[j]);
        }
    }

    /// Three views: each view's conflict is the total variation between the
    /// prediction from it alone and the prediction without it, both made apart
    /// (the views missing as NaN rows); a row with one view missing compares
    /// within the two it has.
    #[test]
    fn conflict_with_three_views_against_predictions_made_apart() {
        let device = Device::default();
        let spec = FusionSpec::new(FusionKind::Gmu, vec![1, 1, 1], 3, 3, Task::Multiclass);
        let net = spec.init(&device).unwrap();
        let scalers = [Scaler::identity(1), Scaler::identity(1), Scaler::identity(1)];
        let member = MemberRef { views: &[0, 1, 2], scalers: &scalers, net: &net, flat: None };
        let rows = [[0.7f32, -1.2, 2.0], [1.5, f32::NAN, -0.4]];
        let go = |keep: [bool; 3], r: usize, importance: bool| {
            let views: Vec<View> =
                (0..3).map(|j| view(&format!("v{j}"), vec![if keep[j] { rows[r][j] } else { f32::NAN }])).collect();
            let refs: Vec<&View> = views.iter().collect();
            run(&[MemberRef { ..member }], &refs, &[0, 1, 2], &[0], Task::Multiclass, importance, &device).unwrap()
        };
        for (r, row) in rows.iter().enumerate() {
            let here = [true, !row[1].is_nan(), true];
            let p = go(here, r, true);
            let conflict = p.conflict.unwrap();
            for j in 0..3 {
                if !here[j] {
                    assert!(conflict[j].is_nan(), "row {r}, missing view {j}: {conflict:?}");
                    continue;
                }
                let alone = go(std::array::from_fn(|o| o == j), r, false).probs;
                let without = go(std::array::from_fn(|o| o != j && here[o]), r, false).probs;
                let tv: f32 = alone.iter().zip(&without).map(|(a, b)| (a - b).abs()).sum::<f32>() / 2.0;
                assert!((conflict[j] - tv).abs() < 1e-6, "row {r}, view {j}: {} vs {tv}", conflict[j]);
            }
        }
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
            MemberRef { views: &[0], scalers: &scalers, net: &a, flat: None },
            MemberRef { views: &[1], scalers: &scalers, net: &b, flat: None },
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
        let member = MemberRef { views: &[0, 1], scalers: &scalers, net: &net, flat: None };
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
