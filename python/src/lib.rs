//! `gmu._native`: the Rust side of the `gmu` Python package (python/gmu/).
//! Thin: every call goes to the gmu library (the same code paths as the
//! command line), arrays cross as NumPy arrays, long calls release the GIL,
//! errors become Python exceptions and a panic becomes `gmu.GmuError`.

use std::path::PathBuf;
use std::sync::Mutex;

use burn::tensor::Device;
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::{PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use gmu::GmuError as Error;
use gmu::data::{MultiviewData, Targets, View};
use gmu::encoders::{EncoderKind, Modality, RawInput};
use gmu::predict::{Model, Prediction};

pyo3::create_exception!(gmu, GmuError, pyo3::exceptions::PyException, "A failure inside gmu (its message says what).");

/// gmu's errors as Python's: bad input is a `ValueError`, a missing file a
/// `FileNotFoundError`, anything else a `gmu.GmuError`; the message is gmu's.
fn to_py(e: Error) -> PyErr {
    let message = e.to_string();
    match &e {
        Error::InvalidParameter { .. } | Error::Data { .. } | Error::NonFinite(_) => PyValueError::new_err(message),
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(message)
        }
        _ => GmuError::new_err(message),
    }
}

/// Runs `f` without the GIL, a panic inside it turned into `gmu.GmuError`.
fn detached<T: Send>(py: Python<'_>, f: impl FnOnce() -> gmu::Result<T> + Send) -> PyResult<T> {
    py.detach(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)))
        .map_err(|panic| {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown".into());
            GmuError::new_err(format!("internal error (a bug in gmu; please report it): {what}"))
        })?
        .map_err(to_py)
}

fn device() -> Device {
    Device::default()
}

/// Views from `(name, float32 array [n, d])` pairs, every view with the same number of rows.
fn views_of(arrays: &[(String, PyReadonlyArray2<'_, f32>)]) -> PyResult<Vec<View>> {
    let mut views = Vec::with_capacity(arrays.len());
    for (name, array) in arrays {
        let [n, d] = [array.shape()[0], array.shape()[1]];
        if d == 0 {
            return Err(PyValueError::new_err(format!("invalid views: view '{name}' has no columns")));
        }
        if let Some(first) = views.first().map(|v: &View| v.len())
            && first != n
        {
            return Err(PyValueError::new_err(format!(
                "invalid views: view '{name}' has {n} rows, view '{}' has {first}",
                views[0].name
            )));
        }
        let values: Vec<f32> = array.as_array().iter().copied().collect();
        views.push(View::features(name.clone(), d, values));
    }
    Ok(views)
}

/// An image from Python: its encoded bytes or the path of its file.
#[derive(FromPyObject)]
enum ImageArg {
    Bytes(Vec<u8>),
    Path(PathBuf),
}

impl ImageArg {
    fn raw(&self) -> RawInput<'_> {
        match self {
            ImageArg::Bytes(b) => RawInput::ImageBytes(b),
            ImageArg::Path(p) => RawInput::Image(p),
        }
    }
}

/// `p` as NumPy arrays: `probabilities` and `decisions` `[n, C]`, `present`
/// `[n, K]` (bool), and `gate`, `share`, `suspect` (gated models), `importance`
/// and `conflict` (more than one view) `[n, K]`, NaN where a view is missing (as
/// `gmu predict` leaves the cell blank).
fn prediction_dict<'py>(py: Python<'py>, model: &Model, p: Prediction) -> PyResult<Bound<'py, PyDict>> {
    let (n, c, k) = (p.len(), p.width, p.n_views);
    let out = PyDict::new(py);
    let decisions: Vec<u8> = model.decide(&p.probs);
    let suspect = model.suspect(&p);
    out.set_item("probabilities", PyArray1::from_vec(py, p.probs).reshape([n, c])?)?;
    out.set_item("decisions", PyArray1::from_vec(py, decisions).reshape([n, c])?)?;
    let columns = [
        ("gate", p.gate_means),
        ("share", p.shares),
        ("suspect", suspect),
        ("importance", p.importance),
        ("conflict", if k > 1 { p.conflict } else { None }),
    ];
    for (key, values) in columns {
        if let Some(mut v) = values {
            v.iter_mut().zip(&p.present).filter(|(_, present)| !**present).for_each(|(x, _)| *x = f32::NAN);
            out.set_item(key, PyArray1::from_vec(py, v).reshape([n, k])?)?;
        }
    }
    out.set_item("present", PyArray1::from_vec(py, p.present).reshape([n, k])?)?;
    Ok(out)
}

/// A trained model (what `gmu.load` and `gmu.fit` return).
#[pyclass(module = "gmu._native", name = "NativeModel", frozen)]
struct NativeModel {
    inner: Model,
}

#[pymethods]
impl NativeModel {
    /// The model's views, in its order.
    #[getter]
    fn views(&self) -> Vec<String> {
        self.inner.config.views.iter().map(|v| v.name.clone()).collect()
    }

    /// Columns of each view.
    #[getter]
    fn widths(&self) -> Vec<usize> {
        self.inner.config.views.iter().map(|v| v.width).collect()
    }

    /// Class or label names, in the order of the probability columns.
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.inner.config.outputs.clone()
    }

    /// `"multiclass"` or `"multilabel"`.
    #[getter]
    fn task(&self) -> String {
        serde_json::json!(self.inner.config.task).as_str().unwrap_or_default().to_string()
    }

    /// The fusion method's label (`gmu`, `concat`, `moe-maxout`, …).
    #[getter]
    fn method(&self) -> String {
        self.inner.config.method.clone()
    }

    /// Whether the model has gates (GMU, mixtures of experts).
    #[getter]
    fn gated(&self) -> bool {
        self.inner.nets().iter().any(|n| n.has_gates())
    }

    /// The model's `config.json`, as text.
    fn config_json(&self) -> PyResult<String> {
        serde_json::to_string_pretty(&self.inner.config).map_err(|e| GmuError::new_err(e.to_string()))
    }

    /// Probabilities `[n, C]`, decisions `[n, C]` (0/1), and per view `[n, K]`
    /// gates, shares, importance and presence: what `gmu predict` computes for
    /// the same rows. `views`: `(name, float32 [n, d])` for every view of the
    /// model, in any order; a row of NaN is a missing view.
    #[pyo3(signature = (views, importance = true, impute = false))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        views: Vec<(String, PyReadonlyArray2<'py, f32>)>,
        importance: bool,
        impute: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let views = views_of(&views)?;
        let model = &self.inner;
        let p = detached(py, || {
            let selected = model.select_views(&views)?;
            let rows: Vec<usize> = (0..selected[0].len()).collect();
            Ok(model.predict_imputed(&selected, &rows, importance, impute)?.0)
        })?;
        prediction_dict(py, model, p)
    }

    /// [`predict`](Self::predict) from raw inputs: `texts` and `images` are
    /// `(view, inputs)` pairs for the views the model made with a pretrained
    /// encoder (an image is its encoded bytes or a file path); a view not
    /// given is missing in every row. Also returns `unusable`: `(view, row,
    /// input, reason)` for each input that gave no features (a missing view of
    /// that row).
    #[pyo3(signature = (texts, images, importance = true))]
    fn predict_raw<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<(String, Vec<String>)>,
        images: Vec<(String, Vec<ImageArg>)>,
        importance: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let model = &self.inner;
        let mut inputs: Vec<Option<Vec<RawInput<'_>>>> = vec![None; model.config.views.len()];
        let position = |name: &str| {
            model.config.views.iter().position(|v| v.name == name).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "invalid views: the model has no view '{name}' (it has {})",
                    model.config.views.iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(", ")
                ))
            })
        };
        for (name, rows) in &texts {
            inputs[position(name)?] = Some(rows.iter().map(|t| RawInput::Text(t)).collect());
        }
        for (name, rows) in &images {
            inputs[position(name)?] = Some(rows.iter().map(ImageArg::raw).collect());
        }
        let (p, unusable) = detached(py, || {
            let (views, unusable) = model.encode_raw(&inputs)?;
            let refs: Vec<&View> = views.iter().collect();
            let rows: Vec<usize> = (0..refs[0].len()).collect();
            Ok((model.predict_rows(&refs, &rows, importance)?, unusable))
        })?;
        let out = prediction_dict(py, model, p)?;
        let unusable: Vec<(String, usize, String, String)> =
            unusable.into_iter().map(|(view, m)| (view, m.row, m.input, m.reason)).collect();
        out.set_item("unusable", unusable)?;
        Ok(out)
    }

    /// Per view: `None` for a feature view, else `(modality, encoder)` of the
    /// pretrained encoder that made it (`("text", "minilm")`, …).
    #[getter]
    fn encoders(&self) -> Vec<Option<(String, String)>> {
        self.inner
            .config
            .views
            .iter()
            .map(|v| {
                v.encoder.as_ref().filter(|e| e.encoder != EncoderKind::Custom).map(|e| {
                    let modality = match e.encoder.modality() {
                        Modality::Text => "text",
                        Modality::Image => "image",
                    };
                    (modality.to_string(), e.label())
                })
            })
            .collect()
    }

    /// Writes the model directory (`config.json` and weights) to `path`.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let model = &self.inner;
        detached(py, || model.save(&path))
    }

    /// Writes the model as an ONNX graph to `path` (see `gmu export`).
    fn export_onnx(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let model = &self.inner;
        detached(py, || gmu::export::write_onnx(model, &path))
    }
}

/// Loads a model directory written by any gmu training command.
#[pyfunction]
fn load(py: Python<'_>, path: PathBuf) -> PyResult<NativeModel> {
    if !path.exists() {
        return Err(PyFileNotFoundError::new_err(format!("{}: no such model directory", path.display())));
    }
    let inner = detached(py, || Model::load(&path, &device()))?;
    Ok(NativeModel { inner })
}

/// The training options from their JSON, an error naming the option at fault.
fn parse_options(json: &str) -> PyResult<gmu::config::EpochOptions> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| PyValueError::new_err(format!("invalid options: {e}")))?;
    serde_json::from_value(value.clone()).map_err(|e| {
        // Each option alone: the first that fails is the one to name.
        let culprit = value.as_object().into_iter().flatten().find_map(|(key, v)| {
            let alone = serde_json::Value::Object([(key.clone(), v.clone())].into_iter().collect());
            serde_json::from_value::<gmu::config::EpochOptions>(alone)
                .err()
                .map(|e| format!("invalid option {key}={v}: {e}"))
        });
        PyValueError::new_err(culprit.unwrap_or_else(|| format!("invalid options: {e}")))
    })
}

/// Trains one model of the paper's recipe on `views`, holding out a stratified
/// `dev` share for early stopping (and `test` for a test score). `options` is
/// JSON of `gmu::config::EpochOptions` (the CLI's training flags). `classes`:
/// the class names with `y_classes` (class of each row) or the label names with
/// `y_labels` (a 0/1 matrix `[n, L]`). `on_epoch(member, epoch, train_loss,
/// dev_macro_f1)` is called after every epoch (with the GIL); an exception it
/// raises, or ctrl-c, stops the training and is raised here. Returns the model
/// and its result record (JSON: dev and test scores, each member's history).
#[pyfunction]
#[pyo3(signature = (views, classes, y_classes, y_labels, options, dev, test, on_epoch = None))]
#[allow(clippy::too_many_arguments)]
fn fit<'py>(
    py: Python<'py>,
    views: Vec<(String, PyReadonlyArray2<'py, f32>)>,
    classes: Vec<String>,
    y_classes: Option<PyReadonlyArray1<'py, i64>>,
    y_labels: Option<PyReadonlyArray2<'py, u8>>,
    options: &str,
    dev: f64,
    test: f64,
    on_epoch: Option<Py<PyAny>>,
) -> PyResult<(NativeModel, String)> {
    let options = parse_options(options)?;
    let views = views_of(&views)?;
    let n = views.first().map_or(0, View::len);
    let targets = match (y_classes, y_labels) {
        (Some(y), None) => {
            let y: Vec<i64> = y.as_array().iter().copied().collect();
            if let Some((i, bad)) = y.iter().enumerate().find(|(_, c)| **c < 0 || **c as usize >= classes.len()) {
                return Err(PyValueError::new_err(format!(
                    "invalid y: row {i} has class {bad}; expected 0..{}",
                    classes.len()
                )));
            }
            Targets::Classes { y: y.into_iter().map(|c| c as usize).collect(), names: classes }
        }
        (None, Some(y)) => {
            if y.shape()[1] != classes.len() {
                return Err(PyValueError::new_err(format!(
                    "invalid y: {} label columns for {} label names",
                    y.shape()[1],
                    classes.len()
                )));
            }
            Targets::Labels { y: y.as_array().iter().copied().collect(), names: classes }
        }
        _ => return Err(PyValueError::new_err("invalid y: give class indices or a 0/1 label matrix")),
    };
    if targets.len() != n {
        return Err(PyValueError::new_err(format!("invalid y: {} labels for {n} rows", targets.len())));
    }
    let data = MultiviewData { views, targets };
    // The first exception the callback (or a signal) raised; training stops on it.
    let raised: Mutex<Option<PyErr>> = Mutex::new(None);
    let observe = |member: usize, log: &gmu::store::EpochLog, _: &gmu::train::EpochTiming| -> gmu::Result<()> {
        let stop = Python::attach(|py| -> PyResult<()> {
            py.check_signals()?;
            if let Some(f) = &on_epoch {
                f.call1(py, (member, log.epoch, log.train_loss, log.dev_macro_f1))?;
            }
            Ok(())
        });
        stop.map_err(|e| {
            let message = e.to_string();
            raised.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
            Error::invalid("on_epoch", format!("training stopped: {message}"))
        })
    };
    let result = detached(py, || {
        let config = options.config()?;
        let split = data.split(dev, test, options.seed)?;
        let all: Vec<usize> = (0..data.views.len()).collect();
        let model = gmu::train::train_observed(&data, &all, &split, &config, None, &observe, &device())?;
        let mut scores = serde_json::Map::new();
        for (name, rows) in [("dev", &split.dev), ("test", &split.test)] {
            if !rows.is_empty() {
                scores.insert(name.into(), serde_json::json!(model.evaluate(&data, rows, false)?.0));
            }
        }
        let history: Vec<_> = model.config.members.iter().map(|m| &m.history).collect();
        scores.insert("history".into(), serde_json::json!(history));
        Ok((model, serde_json::Value::Object(scores).to_string()))
    });
    if let Some(e) = raised.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let (model, scores) = result?;
    Ok((NativeModel { inner: model }, scores))
}

/// Features `[n, dim]` and the unusable rows as `(row, input, reason)`.
type Encoded = (Py<PyAny>, Vec<(usize, String, String)>);

/// Features of `inputs` (texts, or images as encoded bytes or file paths)
/// from the fetched pretrained `encoder` (`minilm`, `glove`, `effnet-lite0`):
/// float32 `[n, dim]`, a NaN row for an input that gives none (its reason in
/// the second value, `(row, input, reason)`).
fn encode(py: Python<'_>, encoder: &str, inputs: &[RawInput<'_>]) -> PyResult<Encoded> {
    let kind = serde_json::from_value::<EncoderKind>(serde_json::Value::from(encoder))
        .ok()
        .filter(|k| *k != EncoderKind::Custom && *k != EncoderKind::WordPiece)
        .ok_or_else(|| {
            PyValueError::new_err(format!("invalid encoder: '{encoder}'; expected minilm, glove or effnet-lite0"))
        })?;
    let spec = gmu::encoders::EncoderSpec::new(kind);
    let (values, missing) = detached(py, || {
        let encoder = gmu::encoders::Encoder::load(&spec, &device())?;
        let (values, missing) = gmu::encoders::encode::encode_all(&encoder, inputs, gmu::encoders::encode::BATCH)?;
        Ok((values, missing))
    })?;
    let n = inputs.len();
    let dim = values.len().checked_div(n).unwrap_or(spec.dim);
    let array = PyArray1::from_vec(py, values).reshape([n, dim])?;
    let missing = missing.into_iter().map(|m| (m.row, m.input, m.reason)).collect();
    Ok((array.into_any().unbind(), missing))
}

/// Sentence features of `texts` (see `encode`); `encoder` defaults to MiniLM.
#[pyfunction]
#[pyo3(signature = (texts, encoder = "minilm"))]
fn encode_texts(py: Python<'_>, texts: Vec<String>, encoder: &str) -> PyResult<Encoded> {
    let inputs: Vec<RawInput> = texts.iter().map(|t| RawInput::Text(t)).collect();
    encode(py, encoder, &inputs)
}

/// Image features of `images` (encoded bytes or paths; see `encode`);
/// `encoder` defaults to EfficientNet-Lite0.
#[pyfunction]
#[pyo3(signature = (images, encoder = "effnet-lite0"))]
fn encode_images(py: Python<'_>, images: Vec<ImageArg>, encoder: &str) -> PyResult<Encoded> {
    let inputs: Vec<RawInput> = images.iter().map(ImageArg::raw).collect();
    encode(py, encoder, &inputs)
}

/// Panics inside gmu's boundary (for the test suite: a panic must arrive as
/// `gmu.GmuError`, never as pyo3's `PanicException` or an abort).
#[pyfunction]
fn _panic_for_tests(py: Python<'_>) -> PyResult<()> {
    detached(py, || -> gmu::Result<()> { panic!("deliberate panic from _panic_for_tests") })
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeModel>()?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(fit, m)?)?;
    m.add_function(wrap_pyfunction!(encode_texts, m)?)?;
    m.add_function(wrap_pyfunction!(encode_images, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    m.add("GmuError", m.py().get_type::<GmuError>())?;
    Ok(())
}
