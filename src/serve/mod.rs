//! `gmu serve`: trained models behind the Open Inference Protocol (KServe
//! v2) over HTTP/1.1, on axum and tokio, with a web page.
//!
//! | route | answer |
//! |---|---|
//! | `GET /v2/health/live`, `/v2/health/ready` | 200 once up (ready: every model has run once) |
//! | `GET /v2` | server metadata (`extensions: ["binary_tensor_data"]`, and the models) |
//! | `GET /v2/models/{name}` | model metadata: an input per view, the outputs |
//! | `GET /v2/models/{name}/ready` | 200 when ready |
//! | `POST /v2/models/{name}/infer` | probabilities, predicted, and per view gate, share, importance, present |
//! | `GET /metrics` | Prometheus text |
//! | `GET /` | the page: a form for the models' views, bars for the answer |
//!
//! The version segment (`/v2/models/{name}/versions/{v}/…`) is accepted where
//! `v` is the model's version. A missing view (an input not sent, an empty
//! text or image, a row of NaN or null) is a missing view by the model's
//! rules, not an error. Every refusal is `{"error": "…"}` naming the input and
//! the problem, with 400, 404, 413 or 503 (`Retry-After`); the server never
//! reads a path a client sends and never writes a file.
//!
//! One JSON line per inference request goes to standard output (`id`,
//! `model`, `rows`, `status`, `ms`). SIGTERM or ctrl-c stops taking
//! connections and finishes the requests in flight.

mod encoding;
mod limits;
mod metrics;
mod model;
mod protocol;
mod queue;
mod refusal;

pub use limits::Limits;
pub use metrics::Metrics;
pub use model::Served;
pub use protocol::{InferRequest, OutputData, OutputTensor, ProtocolError, TensorData, parse_request, response_body};
pub use queue::Batching;
pub use refusal::Refusal;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::error::{GmuError, Result};
use crate::predict::Model;

/// How the server runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The dynamic batching policy, per model.
    pub batching: Batching,
    /// What one request may ask.
    pub limits: Limits,
    /// Threads for the HTTP runtime (the forward passes use rayon's pool).
    pub threads: usize,
    /// Fill partly missing feature rows with the training means (as `gmu predict --impute mean`).
    pub impute: bool,
}

/// The server's state, shared by every request.
struct App {
    models: Vec<Served>,
    metrics: Arc<Metrics>,
    limits: Limits,
    requests: AtomicU64,
}

impl App {
    /// The model `name`, or 404 with the models there are.
    fn model(&self, name: &str) -> std::result::Result<&Served, NotFound> {
        self.models.iter().find(|m| m.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
            NotFound(format!("unknown model '{name}'; this server has {}", known.join(", ")))
        })
    }

    /// The model `name` at `version`, or 404.
    fn versioned(&self, name: &str, version: &str) -> std::result::Result<&Served, NotFound> {
        let m = self.model(name)?;
        if m.version != version {
            return Err(NotFound(format!("model '{name}' has version {}, not {version}", m.version)));
        }
        Ok(m)
    }
}

/// A 404's message.
struct NotFound(String);

impl IntoResponse for NotFound {
    fn into_response(self) -> Response {
        error(StatusCode::NOT_FOUND, &self.0)
    }
}

/// The protocol's error body.
fn error(status: StatusCode, message: &str) -> Response {
    let mut response =
        (status, [(header::CONTENT_TYPE, "application/json")], json!({ "error": message }).to_string()).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    response
}

fn json_response(value: serde_json::Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

/// The router over `models` (for tests and embedding; [`serve`] runs it).
fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/v2/health/live", get(|| async { StatusCode::OK }))
        .route("/v2/health/ready", get(ready))
        .route("/v2", get(server_metadata))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/versions/{version}", get(model_metadata_versioned))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/versions/{version}/ready", get(model_ready_versioned))
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/versions/{version}/infer", post(infer_versioned))
        .route("/metrics", get(metrics))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route; see GET /v2 and /v2/models/{name}") })
        .with_state(app)
}

async fn page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")],
        include_str!("page.html"),
    )
        .into_response()
}

async fn ready(State(app): State<Arc<App>>) -> StatusCode {
    if app.models.iter().all(Served::is_ready) { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }
}

async fn server_metadata(State(app): State<Arc<App>>) -> Response {
    let models: Vec<_> = app.models.iter().map(|m| json!({"name": m.name, "version": m.version})).collect();
    json_response(json!({
        "name": "gmu",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data"],
        "models": models,
    }))
}

async fn model_metadata(State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    app.model(&name).map_or_else(IntoResponse::into_response, |m| json_response(m.metadata()))
}

async fn model_metadata_versioned(
    State(app): State<Arc<App>>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    app.versioned(&name, &version).map_or_else(IntoResponse::into_response, |m| json_response(m.metadata()))
}

async fn model_ready(State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    match app.model(&name) {
        Ok(m) if m.is_ready() => StatusCode::OK.into_response(),
        Ok(_) => error(StatusCode::SERVICE_UNAVAILABLE, &format!("model '{name}' is loading")),
        Err(e) => e.into_response(),
    }
}

async fn model_ready_versioned(State(app): State<Arc<App>>, Path((name, version)): Path<(String, String)>) -> Response {
    match app.versioned(&name, &version) {
        Ok(m) if m.is_ready() => StatusCode::OK.into_response(),
        Ok(_) => error(StatusCode::SERVICE_UNAVAILABLE, &format!("model '{name}' is loading")),
        Err(e) => e.into_response(),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let queues: Vec<(&str, usize)> = app.models.iter().map(|m| (m.name.as_str(), m.queue_depth())).collect();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], app.metrics.render(&queues)).into_response()
}

async fn infer_versioned(
    State(app): State<Arc<App>>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(e) = app.versioned(&name, &version) {
        return e.into_response();
    }
    infer(State(app), Path(name), headers, body).await
}

async fn infer(State(app): State<Arc<App>>, Path(name): Path<String>, headers: HeaderMap, body: Body) -> Response {
    let start = Instant::now();
    let serial = app.requests.fetch_add(1, Ordering::Relaxed);
    let (outcome, request_id) =
        match tokio::time::timeout(app.limits.timeout, run_infer(&app, &name, &headers, body)).await {
            Ok(outcome) => outcome,
            Err(_) => (
                Err(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("the request took longer than {} ms (--timeout-ms)", app.limits.timeout.as_millis()),
                )),
                None,
            ),
        };
    let (response, rows) = match outcome {
        Ok((response, rows)) => (response, rows),
        Err(response) => (response, 0),
    };
    let status = response.status().as_u16();
    let elapsed = start.elapsed();
    let known = app.models.iter().any(|m| m.name == name);
    app.metrics.request(if known { &name } else { "(unknown)" }, status, rows, elapsed);
    let log = json!({
        "id": request_id.unwrap_or_else(|| serial.to_string()),
        "model": name,
        "rows": rows,
        "status": status,
        "ms": (elapsed.as_secs_f64() * 1e6).round() / 1e3,
    });
    println!("{log}");
    response
}

/// An inference request to its response and rows (or the refusal), with the client's id.
async fn run_infer(
    app: &App,
    name: &str,
    headers: &HeaderMap,
    body: Body,
) -> (std::result::Result<(Response, usize), Response>, Option<String>) {
    let served = match app.model(name) {
        Ok(m) => m,
        Err(e) => return (Err(e.into_response()), None),
    };
    let body = match axum::body::to_bytes(body, app.limits.max_body).await {
        Ok(b) => b,
        Err(_) => {
            return (
                Err(error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!(
                        "the request body is larger than {} bytes (--max-body-mb), or was cut off",
                        app.limits.max_body
                    ),
                )),
                None,
            );
        }
    };
    let header_length = match headers
        .get("inference-header-content-length")
        .map(|v| v.to_str().ok().and_then(|s| s.trim().parse::<usize>().ok()))
    {
        None => None,
        Some(Some(n)) => Some(n),
        Some(None) => {
            return (Err(error(StatusCode::BAD_REQUEST, "Inference-Header-Content-Length must be a byte count")), None);
        }
    };
    let request = match protocol::parse_request(&body, header_length) {
        Ok(r) => r,
        Err(e) => return (Err(error(StatusCode::BAD_REQUEST, &e.0)), None),
    };
    let id = request.id.clone();
    let result = match served.infer(&request, &app.limits).await {
        Ok((outputs, rows)) => {
            let (body, head) = protocol::response_body(&served.name, &served.version, request.id.as_deref(), &outputs);
            let mut response = Response::new(Body::from(body));
            let content_type = if head.is_some() { "application/octet-stream" } else { "application/json" };
            response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
            if let Some(head) = head {
                response.headers_mut().insert("inference-header-content-length", head.into());
            }
            Ok((response, rows))
        }
        Err(refusal) => {
            let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Err(error(status, refusal.message()))
        }
    };
    (result, id)
}

/// Serves `models` (name, model) until SIGTERM or ctrl-c; `listening` is
/// called with the bound address once the port is open.
pub fn serve(models: Vec<(String, Model)>, options: Options, listening: impl FnOnce(SocketAddr)) -> Result<()> {
    let metrics = Arc::new(Metrics::default());
    let served: Vec<Served> = models
        .into_iter()
        .map(|(name, model)| Served::new(name, model, options.batching, options.impute, metrics.clone()))
        .collect();
    let app = Arc::new(App { models: served, metrics, limits: options.limits.clone(), requests: AtomicU64::new(0) });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| GmuError::invalid("threads", format!("cannot start the server's runtime: {e}")))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(options.addr)
            .await
            .map_err(|e| GmuError::invalid("addr", format!("cannot listen on {}: {e}", options.addr)))?;
        let bound = listener.local_addr().map_err(|e| GmuError::invalid("addr", e.to_string()))?;
        listening(bound);
        axum::serve(listener, router(app))
            .with_graceful_shutdown(shutdown())
            .await
            .map_err(|e| GmuError::invalid("addr", format!("the server stopped: {e}")))
    })
}

/// Resolves on ctrl-c or SIGTERM.
async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    eprintln!("· shutting down: finishing the requests in flight");
}
