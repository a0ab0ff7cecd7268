//! One model behind the server: its protocol metadata, the checks a request
//! gets against it (names, datatypes, shapes, limits), raw inputs through
//! its encoders (batched in [`encoding`](super::encoding)), and the dynamic
//! batcher that runs concurrent requests' rows through one forward pass.
//!
//! Batching never changes an answer: on the flat inference path every row
//! is computed the same way whatever the other rows of its batch
//! ([`Inference`](crate::engine::maxout::Inference)), and a model without it
//! (burn's forward) runs each request on its own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

use super::encoding::{Encoding, Kind};
use super::limits::Limits;
use super::metrics::Metrics;
use super::protocol::{InferRequest, OutputData, OutputRequest, OutputTensor, TensorData};
use super::queue::{Batching, Queue};
use super::refusal::Refusal;
use crate::data::View;
use crate::encoders::Modality;
use crate::fusion::Task;
use crate::predict::{Model, Prediction};

/// Rows of the model's views waiting for a forward pass, and where their answer goes.
struct Job {
    views: Vec<View>,
    rows: usize,
    /// Whether the request asks for an occlusion importance (two more passes per view).
    importance: bool,
    reply: tokio::sync::oneshot::Sender<Result<Prediction, Refusal>>,
}

/// A model being served.
pub struct Served {
    /// Its name in the protocol's paths.
    pub name: String,
    /// Its version: the model directory's format.
    pub version: String,
    model: Arc<Model>,
    kinds: Vec<Kind>,
    gated: bool,
    queue: SyncSender<Job>,
    /// The encoder batcher, for a model with a text or image view.
    encoding: Option<Encoding>,
    depth: Arc<AtomicUsize>,
    ready: Arc<OnceLock<()>>,
}

impl Served {
    /// Serves `model` as `name`, its rows batched as `batching` says; the
    /// batching thread runs until the `Served` is dropped. `impute`: partly
    /// missing feature rows are filled with the training means.
    pub fn new(name: String, model: Model, batching: Batching, impute: bool, metrics: Arc<Metrics>) -> Served {
        let kinds: Vec<Kind> = model
            .config
            .views
            .iter()
            .map(|v| match v.encoder.as_ref().map(|e| e.encoder.modality()) {
                None => Kind::Features,
                Some(Modality::Text) => Kind::Text,
                Some(Modality::Image) => Kind::Image,
            })
            .collect();
        let gated = model.nets().iter().any(|n| n.has_gates());
        let version = model.config.format_version.to_string();
        let model = Arc::new(model);
        let (queue, jobs) = sync_channel(batching.max_queue.max(1));
        let depth = Arc::new(AtomicUsize::new(0));
        let ready = Arc::new(OnceLock::new());
        let encoding = kinds
            .iter()
            .any(|&k| k != Kind::Features)
            .then(|| Encoding::new(&name, model.clone(), batching, depth.clone(), metrics.clone()));
        let worker = Worker {
            model: model.clone(),
            queue: Queue::new(jobs),
            batching,
            impute,
            depth: depth.clone(),
            metrics,
            ready: ready.clone(),
        };
        std::thread::Builder::new()
            .name(format!("gmu-batch-{name}"))
            .spawn(move || worker.run())
            .expect("a thread for the batcher");
        Served { name, version, model, kinds, gated, queue, encoding, depth, ready }
    }

    /// Whether the model has run once (its weights prepared) and takes requests.
    pub fn is_ready(&self) -> bool {
        self.ready.get().is_some()
    }

    /// Requests waiting for a forward pass.
    pub fn queue_depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The names of its outputs, in the order a response lists them.
    pub fn output_names(&self) -> Vec<String> {
        let mut names = vec!["probabilities".to_string(), "predicted".to_string()];
        for v in &self.model.config.views {
            if self.gated {
                names.push(format!("gate_{}", v.name));
                names.push(format!("share_{}", v.name));
                if self.model.config.gate_reference.is_some() {
                    names.push(format!("suspect_{}", v.name));
                }
            }
            names.push(format!("importance_{}", v.name));
            if self.model.config.views.len() > 1 {
                names.push(format!("conflict_{}", v.name));
            }
            names.push(format!("present_{}", v.name));
        }
        names
    }

    /// The protocol's model metadata.
    pub fn metadata(&self) -> Value {
        let config = &self.model.config;
        let inputs: Vec<Value> = config
            .views
            .iter()
            .zip(&self.kinds)
            .map(|(v, kind)| match kind {
                Kind::Features => json!({"name": v.name, "datatype": "FP32", "shape": [-1, v.width]}),
                Kind::Text => json!({"name": v.name, "datatype": "BYTES", "shape": [-1], "parameters": {"content": "text", "features": v.width}}),
                Kind::Image => json!({"name": v.name, "datatype": "BYTES", "shape": [-1], "parameters": {"content": "image (JPEG or PNG bytes)", "features": v.width}}),
            })
            .collect();
        let c = config.outputs.len();
        let outputs: Vec<Value> = self
            .output_names()
            .iter()
            .map(|name| match name.as_str() {
                "probabilities" => json!({"name": name, "datatype": "FP32", "shape": [-1, c]}),
                "predicted" => json!({"name": name, "datatype": "BYTES", "shape": [-1]}),
                n if n.starts_with("present_") => json!({"name": name, "datatype": "BOOL", "shape": [-1]}),
                _ => json!({"name": name, "datatype": "FP32", "shape": [-1]}),
            })
            .collect();
        json!({
            "name": self.name,
            "versions": [self.version],
            "platform": "gmu",
            "inputs": inputs,
            "outputs": outputs,
            "parameters": {
                "method": config.method,
                "task": match config.task { Task::Multiclass => "multiclass", Task::Multilabel => "multilabel" },
                "labels": config.outputs,
                "threshold": config.threshold,
                "gated": self.gated,
            }
        })
    }

    /// Runs a request: checks it, encodes its raw inputs, queues its rows,
    /// and returns the outputs it asks for (each with whether it goes as
    /// binary) and its number of rows.
    pub async fn infer(
        &self,
        request: &InferRequest,
        limits: &Limits,
    ) -> Result<(Vec<(OutputTensor, bool)>, usize), Refusal> {
        let asked = self.asked_outputs(request)?;
        let (mut features, raw, rows) = self.read_inputs(request, limits)?;
        if let (true, Some(encoding)) = (raw.iter().any(Option::is_some), &self.encoding) {
            let timeout = limits.decode_timeout;
            let encoded =
                tokio::time::timeout(timeout, encoding.encode(&self.name, raw, rows)).await.map_err(|_| {
                    Refusal::Busy(format!("encoding the raw inputs took longer than {} ms", timeout.as_millis()))
                })??;
            for (slot, view) in features.iter_mut().zip(encoded) {
                if let Some(view) = view.filter(|v| v.values.iter().any(|x| !x.is_nan())) {
                    slot.get_or_insert(view);
                }
            }
        }
        let views: Vec<View> = features
            .into_iter()
            .zip(&self.model.config.views)
            .map(|(v, spec)| {
                v.unwrap_or_else(|| View::features(spec.name.clone(), spec.width, vec![f32::NAN; rows * spec.width]))
            })
            .collect();
        let (reply, answer) = tokio::sync::oneshot::channel();
        // The conflict comes from the importance's occlusion passes.
        let importance = asked.iter().any(|o| o.name.starts_with("importance_") || o.name.starts_with("conflict_"));
        self.depth.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.queue.try_send(Job { views, rows, importance, reply }) {
            self.depth.fetch_sub(1, Ordering::Relaxed);
            return Err(match e {
                TrySendError::Full(_) => {
                    Refusal::Busy(format!("model '{}': the queue is full; retry shortly", self.name))
                }
                TrySendError::Disconnected(_) => Refusal::Busy("the server is shutting down".into()),
            });
        }
        let p = answer.await.map_err(|_| Refusal::Internal("the batcher stopped".into()))??;
        Ok((self.outputs(&p, &asked), rows))
    }

    /// The outputs `request` asks for, by name, with whether each goes as binary.
    fn asked_outputs(&self, request: &InferRequest) -> Result<Vec<OutputRequest>, Refusal> {
        let names = self.output_names();
        match &request.outputs {
            None => {
                Ok(names.into_iter().map(|name| OutputRequest { name, binary: request.binary_by_default }).collect())
            }
            Some(list) => {
                for o in list {
                    if !names.contains(&o.name) {
                        return Err(Refusal::BadRequest(format!(
                            "output '{}' is not one model '{}' gives ({})",
                            o.name,
                            self.name,
                            names.join(", ")
                        )));
                    }
                }
                Ok(list.clone())
            }
        }
    }

    /// The request's inputs as the model's views: features where given as
    /// numbers, raw bytes where given as BYTES (to be encoded), nothing where
    /// absent (a missing view); and the number of rows.
    #[allow(clippy::type_complexity)]
    fn read_inputs(
        &self,
        request: &InferRequest,
        limits: &Limits,
    ) -> Result<(Vec<Option<View>>, Vec<Option<(Kind, Vec<Vec<u8>>)>>, usize), Refusal> {
        let config = &self.model.config;
        let k = config.views.len();
        let (mut features, mut raw): (Vec<Option<View>>, Vec<Option<(Kind, Vec<Vec<u8>>)>>) =
            (vec![None; k], vec![None; k]);
        let mut rows: Option<(usize, &str)> = None;
        if request.inputs.is_empty() {
            return Err(Refusal::BadRequest(format!(
                "the request has no inputs; model '{}' reads {}",
                self.name,
                self.input_list()
            )));
        }
        for input in &request.inputs {
            let Some(j) = config.views.iter().position(|v| v.name == input.name) else {
                return Err(Refusal::BadRequest(format!(
                    "input '{}' is not a view of model '{}' (it reads {})",
                    input.name,
                    self.name,
                    self.input_list()
                )));
            };
            let spec = &config.views[j];
            let n = match &input.data {
                TensorData::F32(values) => {
                    let width = spec.width;
                    let shape_ok = matches!(input.shape[..], [_, w] if w == width)
                        || (input.shape.len() == 1 && input.shape[0] == width);
                    if !shape_ok {
                        return Err(Refusal::BadRequest(format!(
                            "input '{}': shape {:?}, but the view has {width} features: give [rows, {width}]",
                            input.name, input.shape
                        )));
                    }
                    if let Some(i) = values.iter().position(|x| x.is_infinite()) {
                        return Err(Refusal::BadRequest(format!(
                            "input '{}': value {i} (row {}, column {}) is {}; infinities are refused (NaN or null marks a missing value)",
                            input.name,
                            i / width,
                            i % width,
                            values[i]
                        )));
                    }
                    let n = values.len() / width;
                    features[j] = Some(View::features(spec.name.clone(), width, values.clone()));
                    n
                }
                TensorData::Bytes { items, from_json } => {
                    let kind = self.kinds[j];
                    if kind == Kind::Features {
                        return Err(Refusal::BadRequest(format!(
                            "input '{}': BYTES for a view of {} features; send FP32 [rows, {}]",
                            input.name, spec.width, spec.width
                        )));
                    }
                    if !matches!(input.shape[..], [_] | [_, 1]) {
                        return Err(Refusal::BadRequest(format!(
                            "input '{}': shape {:?}; a {} view takes [rows]",
                            input.name,
                            input.shape,
                            if kind == Kind::Text { "text" } else { "image" }
                        )));
                    }
                    let items = match (kind, from_json) {
                        (Kind::Image, true) => items
                            .iter()
                            .enumerate()
                            .map(|(i, b)| {
                                use base64::Engine as _;
                                base64::engine::general_purpose::STANDARD.decode(b).map_err(|e| {
                                    Refusal::BadRequest(format!("input '{}', element {i}: an image sent as JSON must be base64 ({e}); or send it as binary data", input.name))
                                })
                            })
                            .collect::<Result<Vec<_>, _>>()?,
                        _ => items.clone(),
                    };
                    for (i, item) in items.iter().enumerate() {
                        limits.check_raw(&input.name, i, item, kind == Kind::Image)?;
                    }
                    let n = items.len();
                    raw[j] = Some((kind, items));
                    n
                }
            };
            match rows {
                Some((m, other)) if m != n => {
                    return Err(Refusal::BadRequest(format!(
                        "input '{}' has {n} rows, input '{other}' has {m}",
                        input.name
                    )));
                }
                _ => rows = Some((n, &input.name)),
            }
        }
        let n = rows.map_or(0, |r| r.0);
        if n == 0 {
            return Err(Refusal::BadRequest("the request's inputs hold no rows".into()));
        }
        if n > limits.max_rows {
            return Err(Refusal::TooLarge(format!(
                "{n} rows in one request; the limit is {} (--max-rows)",
                limits.max_rows
            )));
        }
        Ok((features, raw, n))
    }

    fn input_list(&self) -> String {
        self.model
            .config
            .views
            .iter()
            .zip(&self.kinds)
            .map(|(v, k)| match k {
                Kind::Features => format!("'{}' FP32 [rows, {}]", v.name, v.width),
                Kind::Text => format!("'{}' BYTES text", v.name),
                Kind::Image => format!("'{}' BYTES image", v.name),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The asked outputs of a prediction: the numbers `gmu predict` writes.
    fn outputs(&self, p: &Prediction, asked: &[OutputRequest]) -> Vec<(OutputTensor, bool)> {
        let config = &self.model.config;
        let (n, c, k) = (p.len(), p.width, p.n_views);
        let decided = self.model.decide(&p.probs);
        let suspect = self.model.suspect(p);
        let per_view = |values: Option<&Vec<f32>>, j: usize| -> Vec<f32> {
            (0..n)
                .map(|i| if p.present[i * k + j] { values.map_or(f32::NAN, |v| v[i * k + j]) } else { f32::NAN })
                .collect()
        };
        asked
            .iter()
            .map(|o| {
                let (shape, data) = match o.name.as_str() {
                    "probabilities" => (vec![n, c], OutputData::F32(p.probs.clone())),
                    "predicted" => (
                        vec![n],
                        OutputData::Bytes(
                            decided
                                .chunks(c.max(1))
                                .map(|row| {
                                    row.iter()
                                        .zip(&config.outputs)
                                        .filter(|(on, _)| **on == 1)
                                        .map(|(_, l)| l.as_str())
                                        .collect::<Vec<_>>()
                                        .join("|")
                                })
                                .collect(),
                        ),
                    ),
                    name => {
                        let (what, view) = name.split_once('_').expect("an output name of the model");
                        let j = config.views.iter().position(|v| v.name == view).expect("a view of the model");
                        let data = match what {
                            "gate" => OutputData::F32(per_view(p.gate_means.as_ref(), j)),
                            "share" => OutputData::F32(per_view(p.shares.as_ref(), j)),
                            "suspect" => OutputData::F32(per_view(suspect.as_ref(), j)),
                            "importance" => OutputData::F32(per_view(p.importance.as_ref(), j)),
                            "conflict" => OutputData::F32(per_view(p.conflict.as_ref(), j)),
                            _ => OutputData::Bool((0..n).map(|i| p.present[i * k + j]).collect()),
                        };
                        (vec![n], data)
                    }
                };
                (OutputTensor { name: o.name.clone(), shape, data }, o.binary)
            })
            .collect()
    }
}

/// The thread that batches a model's requests.
struct Worker {
    model: Arc<Model>,
    queue: Queue<Job>,
    batching: Batching,
    impute: bool,
    depth: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
    ready: Arc<OnceLock<()>>,
}

impl Worker {
    fn run(mut self) {
        // Prepare the weights before the first request (a prediction on one row of zeros).
        let views: Vec<View> = self
            .model
            .config
            .views
            .iter()
            .map(|v| View::features(v.name.clone(), v.width, vec![0.0; v.width]))
            .collect();
        let _ = self.predict(&views, 1, true);
        let _ = self.ready.set(());
        // burn's forward may round a row differently by batch: then each request runs alone
        let max_rows = if self.model.rows_independent() { self.batching.max_batch } else { 0 };
        let max_delay = self.batching.max_delay;
        while let Some(batch) = self.queue.batch(max_rows, |job| job.rows, |start, _| start + max_delay) {
            let rows = batch.iter().map(|job| job.rows).sum();
            self.depth.fetch_sub(batch.len(), Ordering::Relaxed);
            self.metrics.batch(rows);
            self.answer(batch);
        }
    }

    fn predict(&self, views: &[View], rows: usize, importance: bool) -> Result<Prediction, Refusal> {
        let refs: Vec<&View> = views.iter().collect();
        let all: Vec<usize> = (0..rows).collect();
        Ok(self.model.predict_imputed(&refs, &all, importance, self.impute)?.0)
    }

    /// Runs a batch in one pass and splits the answer; if the pass fails
    /// (one request's rows are wrong), each request runs alone for its own answer.
    fn answer(&self, batch: Vec<Job>) {
        if batch.len() == 1 {
            let job = batch.into_iter().next().expect("one job");
            let _ = job.reply.send(self.predict(&job.views, job.rows, job.importance));
            return;
        }
        let joined: Vec<View> = (0..batch[0].views.len())
            .map(|j| {
                let first = &batch[0].views[j];
                View::features(
                    first.name.clone(),
                    first.dim,
                    batch.iter().flat_map(|job| job.views[j].values.iter().copied()).collect(),
                )
            })
            .collect();
        let total: usize = batch.iter().map(|j| j.rows).sum();
        let importance = batch.iter().any(|j| j.importance);
        match self.predict(&joined, total, importance) {
            Ok(p) => {
                let mut at = 0;
                for job in batch {
                    let _ = job.reply.send(Ok(p.slice(at, at + job.rows)));
                    at += job.rows;
                }
            }
            Err(_) => {
                for job in batch {
                    let _ = job.reply.send(self.predict(&job.views, job.rows, job.importance));
                }
            }
        }
    }
}
