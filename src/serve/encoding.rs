//! The encoder batcher: concurrent requests' raw inputs (plots, posters)
//! through a model's pretrained encoders in one pass per view.
//!
//! The encoders are nearly all of a plot + poster request's time, and they
//! run faster per row on more rows (MiniLM's products on a few hundred
//! tokens, EfficientNet's convolutions on one image, leave the cores
//! partly idle). So, as the forward passes are batched in
//! [`model`](super::model), the raw inputs queued while an encoder pass runs
//! go through the next pass together, the views' encoders side by side on
//! the threads (MiniLM cuts its texts into groups that run side by side too,
//! so a pass has few points where a thread waits for another). Batching
//! never changes an answer:
//! each row's features are the same bits whatever the other rows of its
//! pass ([`Model::encode_view`]; MiniLM attends within each text, without
//! padding, and EfficientNet convolves each image on its own), which
//! `tests/serve.rs` checks against `gmu predict`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::metrics::Metrics;
use super::queue::{Batching, Queue};
use super::refusal::Refusal;
use crate::data::View;
use crate::encoders::RawInput;
use crate::predict::Model;

/// Most raw inputs of a view in one encoder pass: the encoders' own batch
/// (MiniLM's intermediate for 32 plots of 256 tokens is 50 MB).
const MAX_ROWS: usize = crate::encoders::encode::BATCH;

/// What a view of a model takes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Kind {
    Features,
    Text,
    Image,
}

/// One request's raw inputs per view (`None`: not sent raw), and where the
/// encoded views go.
struct Job {
    raw: Vec<Option<(Kind, Vec<Vec<u8>>)>>,
    rows: usize,
    reply: tokio::sync::oneshot::Sender<Result<Vec<Option<View>>, Refusal>>,
}

/// A model's encoder queue; its thread runs until the `Encoding` is dropped.
pub(super) struct Encoding {
    queue: SyncSender<Job>,
    depth: Arc<AtomicUsize>,
}

impl Encoding {
    /// Starts the thread that encodes `model`'s raw inputs, `batching.max_batch`
    /// (at most [`MAX_ROWS`]) rows a pass; `depth` counts the requests waiting.
    pub(super) fn new(
        name: &str,
        model: Arc<Model>,
        batching: Batching,
        depth: Arc<AtomicUsize>,
        metrics: Arc<Metrics>,
    ) -> Encoding {
        let (queue, jobs) = sync_channel(batching.max_queue.max(1));
        let (max_rows, max_delay) = (batching.max_batch.clamp(1, MAX_ROWS), batching.max_delay);
        let worker = Worker { model, queue: Queue::new(jobs), max_rows, max_delay, depth: depth.clone(), metrics };
        std::thread::Builder::new()
            .name(format!("gmu-encode-{name}"))
            .spawn(move || worker.run())
            .expect("a thread for the encoder batcher");
        Encoding { queue, depth }
    }

    /// The views encoded from `raw` (`[rows, width]` each; `None` where the
    /// view was not sent raw), once a pass has taken them.
    pub(super) async fn encode(
        &self,
        model: &str,
        raw: Vec<Option<(Kind, Vec<Vec<u8>>)>>,
        rows: usize,
    ) -> Result<Vec<Option<View>>, Refusal> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.depth.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.queue.try_send(Job { raw, rows, reply }) {
            self.depth.fetch_sub(1, Ordering::Relaxed);
            return Err(match e {
                TrySendError::Full(_) => {
                    Refusal::Busy(format!("model '{model}': the encoder queue is full; retry shortly"))
                }
                TrySendError::Disconnected(_) => Refusal::Busy("the server is shutting down".into()),
            });
        }
        answer.await.map_err(|_| Refusal::Internal("the encoder batcher stopped".into()))?
    }
}

/// A raw input of a view of `kind`.
pub(super) fn raw_input(kind: Kind, bytes: &[u8]) -> RawInput<'_> {
    match kind {
        Kind::Image => RawInput::ImageBytes(bytes),
        // Checked UTF-8 where the request was read (Limits::check_raw).
        _ => RawInput::Text(std::str::from_utf8(bytes).unwrap_or("")),
    }
}

/// The thread that batches a model's encoder passes.
struct Worker {
    model: Arc<Model>,
    queue: Queue<Job>,
    max_rows: usize,
    max_delay: Duration,
    depth: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl Worker {
    fn run(mut self) {
        // The last pass: how many requests it took and how long it ran.
        let (mut last_jobs, mut last_took) = (1, Duration::ZERO);
        loop {
            // The clients of the last pass's requests are sending their next ones as
            // this pass starts: wait for as many, up to 2 % of the last pass's time,
            // else a pass of one would alternate with a pass of the rest.
            let max_delay = self.max_delay;
            let until = |start: Instant, taken: usize| {
                let deadline = start + max_delay;
                if taken < last_jobs { deadline.max(start + last_took / 50) } else { deadline }
            };
            let Some(batch) = self.queue.batch(self.max_rows, |job| job.rows, until) else { return };
            self.depth.fetch_sub(batch.len(), Ordering::Relaxed);
            last_jobs = batch.len();
            let began = Instant::now();
            self.answer(batch);
            last_took = began.elapsed();
        }
    }

    /// Encodes a batch in one pass per view and splits the views; if the pass
    /// fails, each request is encoded alone for its own answer.
    fn answer(&self, batch: Vec<Job>) {
        let together = catch_unwind(AssertUnwindSafe(|| self.encode(&batch)));
        match together {
            Ok(Ok(views)) => {
                for (job, views) in batch.into_iter().zip(views) {
                    let _ = job.reply.send(Ok(views));
                }
            }
            _ => {
                for job in batch {
                    let alone = catch_unwind(AssertUnwindSafe(|| self.encode(std::slice::from_ref(&job))));
                    let answer = match alone {
                        Ok(Ok(mut views)) => Ok(views.remove(0)),
                        Ok(Err(e)) => Err(Refusal::Internal(format!("the encoder failed: {e}"))),
                        Err(_) => Err(Refusal::Internal("the encoder failed on this request's inputs".into())),
                    };
                    let _ = job.reply.send(answer);
                }
            }
        }
    }

    /// Each job's views encoded from its raw inputs, one encoder pass per view
    /// over every job's rows; the views' passes run side by side (a plot's
    /// MiniLM and a poster's EfficientNet share the threads, so neither waits
    /// for the other's last steps).
    fn encode(&self, batch: &[Job]) -> crate::error::Result<Vec<Vec<Option<View>>>> {
        let views = &self.model.config.views;
        let inputs: Vec<Vec<RawInput>> = (0..views.len())
            .map(|k| {
                batch
                    .iter()
                    .filter_map(|job| job.raw[k].as_ref())
                    .flat_map(|(kind, items)| items.iter().map(|b| raw_input(*kind, b)))
                    .collect()
            })
            .collect();
        let (model, metrics) = (&*self.model, &*self.metrics);
        let encoded: Vec<Option<crate::error::Result<Vec<f32>>>> = inputs
            .par_iter()
            .enumerate()
            .map(|(k, inputs)| {
                (!inputs.is_empty()).then(|| {
                    metrics.encoder_batch(inputs.len());
                    model.encode_view(k, inputs, &mut |_, _| {}).map(|(values, _)| values)
                })
            })
            .collect();
        let mut out: Vec<Vec<Option<View>>> = batch.iter().map(|_| vec![None; views.len()]).collect();
        for (k, (spec, values)) in views.iter().zip(encoded).enumerate() {
            let Some(values) = values else { continue };
            let values = values?;
            let mut rows = values.chunks_exact(spec.width);
            for (job, slot) in batch.iter().zip(&mut out) {
                if job.raw[k].is_some() {
                    let values: Vec<f32> = rows.by_ref().take(job.rows).flatten().copied().collect();
                    slot[k] = Some(self.model.encoded_view(k, values));
                }
            }
        }
        Ok(out)
    }
}
