//! gmu extended from outside the crate, through its public API only, each
//! extension one implementation and one registry line (ARCHITECTURE.md has
//! the recipes): a fusion method (the element-wise maximum of the projected
//! views), a data source (two views whose class is the XOR of their signs) and
//! a frozen text encoder (hashed words). Each is trained on, saved, loaded and
//! predicted with as the built-in ones are.

use std::sync::Once;

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData};
use gmu::config::{ModelOptions, Schedule, TrainingConfig};
use gmu::data::{DataRecord, DataSource, Loaded, MultiviewData, SourceReader, Targets, View};
use gmu::encoders::{Encoder, EncoderSpec, FrozenEncoder, Modality, RawInput, Row};
use gmu::engine::Engine;
use gmu::fusion::network::FusionHead;
use gmu::fusion::{Fused, FusionKind, FusionMethod, FusionSpec, HeadKind, Task};
use gmu::predict::Model;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

// ---- the three extensions, each one type and one registry line ----

/// The element-wise maximum of the views, each projected to the hidden width through tanh.
#[derive(Debug)]
struct MaxFusion;

impl FusionMethod for MaxFusion {
    fn name(&self) -> &str {
        "max"
    }
    fn layers(&self, widths: &[usize], hidden: usize) -> Vec<(usize, usize)> {
        widths.iter().map(|&d| (d, hidden)).collect()
    }
    fn fuse(&self, layers: &[Linear], views: &[Tensor<2>]) -> Fused {
        let projected = layers.iter().zip(views).map(|(layer, x)| layer.forward(x.clone()).tanh());
        Fused::plain(projected.reduce(|a, b| a.max_pair(b)).expect("at least one view"))
    }
}

/// `xor:N`: N rows of two 2-d views; the class is whether the first
/// coordinates of the two views have the same sign. Neither view alone says anything.
#[derive(Debug)]
struct XorSource;

impl SourceReader for XorSource {
    fn load(&self, arg: Option<&str>, _encode_on: &Device) -> gmu::Result<Loaded> {
        let n: usize = match arg {
            Some(a) => {
                a.parse().map_err(|_| gmu::GmuError::invalid("data", format!("xor:N takes a row count, got {a}")))?
            }
            None => 400,
        };
        let mut rng = StdRng::seed_from_u64(11);
        let (mut a, mut b, mut y) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let (x, z): (f32, f32) = (rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
            a.extend([x, rng.random_range(-1.0..1.0)]);
            b.extend([z, rng.random_range(-1.0..1.0)]);
            y.push(usize::from((x > 0.0) == (z > 0.0)));
        }
        let view = |name: &str, values| View {
            name: name.into(),
            dim: 2,
            values,
            image: None,
            prescaled: false,
            encoder: None,
            tokens: None,
        };
        Ok(Loaded {
            views: vec![view("a", a), view("b", b)],
            targets: Some(Targets::Classes { y, names: vec!["differ".into(), "agree".into()] }),
            split: None,
            note: None,
        })
    }
}

/// Words hashed into 16 signed buckets, then scaled to unit length; an empty text is a missing row.
#[derive(Debug)]
struct Hash16;

impl FrozenEncoder for Hash16 {
    fn name(&self) -> &str {
        "hash16"
    }
    fn modality(&self) -> Modality {
        Modality::Text
    }
    fn dim(&self) -> usize {
        16
    }
    fn encode(&self, inputs: &[RawInput<'_>]) -> gmu::Result<Vec<Row>> {
        inputs
            .iter()
            .map(|input| {
                let RawInput::Text(text) = input else {
                    return Err(gmu::GmuError::invalid("encoder", "hash16 encodes texts"));
                };
                let mut v = [0.0f32; 16];
                for word in text.split_whitespace() {
                    let h = word.bytes().fold(2166136261u32, |h, b| (h ^ u32::from(b)).wrapping_mul(16777619));
                    v[(h % 16) as usize] += if h & 0x100 == 0 { 1.0 } else { -1.0 };
                }
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                if norm == 0.0 {
                    return Ok(Err("no word".to_string()));
                }
                Ok(Ok(v.iter().map(|x| x / norm).collect()))
            })
            .collect()
    }
}

fn register_all() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        gmu::fusion::register(MaxFusion).unwrap();
        gmu::data::register_source("xor", XorSource).unwrap();
        gmu::encoders::register_encoder(Hash16).unwrap();
    });
}

// ---- the tests ----

fn device() -> Device {
    gmu::device::cpu()
}

fn quick(options: ModelOptions, hidden: usize, epochs: usize) -> TrainingConfig {
    let mut config = TrainingConfig::paper(FusionKind::Gmu);
    config.model = ModelOptions { hidden, dropout: 0.0, max_norm: None, ..options };
    config.optimizer.lr = 0.01;
    config.schedule = Schedule::Epochs { max_epochs: epochs, patience: epochs, batch_size: 32 };
    config
}

/// The registered method computes what it says, on hand-set weights:
/// `h = max(tanh(2 x_a + 0.5), tanh(−x_b))`, logits `(h, −h)`.
#[test]
fn a_registered_fusion_method_computes_its_function() {
    register_all();
    let device = device();
    let mut spec = FusionSpec::custom("max", vec![1, 1], 1, 2, Task::Multiclass);
    spec.head = HeadKind::Linear;
    let mut net = spec.init(&device).unwrap();
    let FusionHead::Custom(head) = &mut net.head else { panic!("a custom head") };
    let set = |l: &mut Linear, w: Vec<f32>, b: Vec<f32>| {
        let [i, o] = l.weight.dims();
        l.weight = Param::from_data(TensorData::new(w, [i, o]), &device);
        l.bias = Some(Param::from_data(TensorData::new(b, [o]), &device));
    };
    set(&mut head.layers[0], vec![2.0], vec![0.5]);
    set(&mut head.layers[1], vec![-1.0], vec![0.0]);
    set(head.output.as_mut().unwrap(), vec![1.0, -1.0], vec![0.0, 0.0]);
    let xa = Tensor::<2>::from_data(TensorData::new(vec![-1.0f32, 0.3], [2, 1]), &device);
    let xb = Tensor::<2>::from_data(TensorData::new(vec![2.0f32, -0.4], [2, 1]), &device);
    let out = net.forward(&[xa, xb]);
    let probs: Vec<f32> = net.probabilities(out.scores).into_data().try_to_vec::<f32>().unwrap();
    for (i, (a, b)) in [(-1.0f64, 2.0f64), (0.3, -0.4)].into_iter().enumerate() {
        let h = (2.0 * a + 0.5).tanh().max((-b).tanh());
        let p0 = 1.0 / (1.0 + (-2.0 * h).exp()); // softmax of (h, −h)
        assert!((f64::from(probs[2 * i]) - p0).abs() < 1e-6, "row {i}: {probs:?} against {p0}");
    }
    assert!(out.gates.is_none(), "the max fusion has no gates");
    // A spec naming a method nobody registered is refused by name.
    let err = FusionSpec::custom("nope", vec![1, 1], 1, 2, Task::Multiclass).init(&device).unwrap_err().to_string();
    assert!(err.contains("no fusion method 'nope' is registered") && err.contains("max"), "{err}");
    assert!(gmu::fusion::register(MaxFusion).is_ok(), "registering again replaces");
    #[derive(Debug)]
    struct Shadow;
    impl FusionMethod for Shadow {
        fn name(&self) -> &str {
            "gmu"
        }
        fn layers(&self, _: &[usize], _: usize) -> Vec<(usize, usize)> {
            vec![]
        }
        fn fuse(&self, _: &[Linear], views: &[Tensor<2>]) -> Fused {
            Fused::plain(views[0].clone())
        }
    }
    assert!(gmu::fusion::register(Shadow).unwrap_err().to_string().contains("built-in"));
}

/// The max fusion trains on mfeat's fou + zer (burn's autodiff: no hand-written
/// engine takes it, and `Engine::pick` falls back), beats either view's chance
/// level by far, and predicts the same bits after a save and a load.
#[test]
fn a_registered_fusion_method_trains_saves_loads_and_predicts() {
    register_all();
    let device = device();
    let data = DataSource::Mfeat.load(&device).unwrap().labelled("train").unwrap();
    let views = [data.view_index("fou").unwrap(), data.view_index("zer").unwrap()];
    let split = data.split(0.2, 0.2, 0).unwrap();
    let config = quick(ModelOptions::custom("max"), 32, 8);
    let model = gmu::train::train(&data, &views, &split, &config, &device).unwrap();
    assert_eq!(model.config.members[0].engine, Some(Engine::Burn));
    assert_eq!(model.config.method, "max");
    let (test, before) = model.evaluate(&data, &split.test, true).unwrap();
    assert!(test.accuracy > 0.7, "max fusion on fou + zer: test accuracy {}", test.accuracy);
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let saved = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    assert!(saved.contains("\"method\": \"max\"") && saved.contains("\"kind\": \"custom\""), "{saved}");
    let loaded = Model::load(dir.path(), &device).unwrap();
    let selected = loaded.select_views(&data.views).unwrap();
    let after = loaded.predict_rows(&selected, &split.test, true).unwrap();
    assert_eq!(after.probs, before.probs);
    assert_eq!(after.importance, before.importance);
}

/// The XOR source is a `DataSource` like the built-in ones: `--data xor:300`
/// parses to it, a model records it, and the recorded source reads the same
/// rows again for prediction.
#[test]
fn a_registered_data_source_is_read_recorded_and_read_again() {
    register_all();
    let device = device();
    let source = DataSource::parse("xor:300", vec![], None, None).unwrap();
    assert_eq!(source, DataSource::Registered { name: "xor".into(), arg: Some("300".into()) });
    assert_eq!(source.name(), "xor");
    let data = source.load(&device).unwrap().labelled("train").unwrap();
    assert_eq!((data.len(), data.views.len()), (300, 2));
    let split = data.split(0.2, 0.2, 1).unwrap();
    let mut config = quick(ModelOptions::paper(FusionKind::Gmu), 16, 40);
    config.model.head = HeadKind::Maxout;
    let mut model = gmu::train::train(&data, &[0, 1], &split, &config, &device).unwrap();
    let (test, _) = model.evaluate(&data, &split.test, false).unwrap();
    assert!(test.accuracy > 0.8, "XOR of two views: test accuracy {}", test.accuracy);
    model.config.data = Some(DataRecord { source: source.clone(), split: None });
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let loaded = Model::load(dir.path(), &device).unwrap();
    let record = loaded.config.data.clone().expect("the model records its data");
    let again = record.source.load(&device).unwrap().labelled("predict").unwrap();
    let p = loaded.predict_rows(&loaded.select_views(&again.views).unwrap(), &split.test, false).unwrap();
    assert_eq!(p.probs, model.evaluate(&data, &split.test, false).unwrap().1.probs);
    let bad = DataSource::parse("xor:many", vec![], None, None).unwrap().load(&device).unwrap_err().to_string();
    assert!(bad.contains("xor:N takes a row count"), "{bad}");
    assert!(gmu::data::register_source("mfeat", XorSource).unwrap_err().to_string().contains("built-in"));
}

/// Texts whose words name their class, through the registered hashing encoder,
/// beside a view of noise: the model learns from the text, records the encoder,
/// and predicts from raw texts alone (the noise view missing) exactly what it
/// predicts from the encoded view.
#[test]
fn a_registered_text_encoder_encodes_views_and_raw_inputs() {
    register_all();
    let device = device();
    let spec = EncoderSpec::registered("hash16").unwrap();
    let encoder = Encoder::load(&spec, &device).unwrap();
    assert_eq!((encoder.dim(), encoder.modality()), (16, Modality::Text));
    let words = [["red", "apple", "cherry"], ["blue", "sky", "ocean"], ["green", "grass", "leaf"]];
    let mut rng = StdRng::seed_from_u64(5);
    let (mut texts, mut y, mut noise) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..240 {
        let class = i % 3;
        let pick = |rng: &mut StdRng| words[class][rng.random_range(0..3)];
        texts.push(format!("{} {} thing", pick(&mut rng), pick(&mut rng)));
        y.push(class);
        noise.extend([rng.random_range(-1.0f32..1.0), rng.random_range(-1.0f32..1.0)]);
    }
    texts[7] = String::new(); // a text with no word: a missing row
    let inputs: Vec<RawInput<'_>> = texts.iter().map(|t| RawInput::Text(t)).collect();
    let (values, missing) = gmu::encoders::encode::encode_all(&encoder, &inputs, 32).unwrap();
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(values[7 * 16..8 * 16].iter().all(|v| v.is_nan()));
    let row0 = &values[..16];
    assert!((row0.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-5, "unit length");
    let text = View {
        name: "text".into(),
        dim: 16,
        values,
        image: None,
        prescaled: true,
        encoder: Some(spec.clone()),
        tokens: None,
    };
    let noise = View {
        name: "noise".into(),
        dim: 2,
        values: noise,
        image: None,
        prescaled: false,
        encoder: None,
        tokens: None,
    };
    let names = vec!["red".to_string(), "blue".to_string(), "green".to_string()];
    let data = MultiviewData { views: vec![text, noise], targets: Targets::Classes { y, names } };
    let split = data.split(0.2, 0.2, 2).unwrap();
    let config = quick(ModelOptions::paper(FusionKind::Gmu), 16, 30);
    let model = gmu::train::train(&data, &[0, 1], &split, &config, &device).unwrap();
    let (test, _) = model.evaluate(&data, &split.test, false).unwrap();
    assert!(test.accuracy > 0.9, "texts that name their class: test accuracy {}", test.accuracy);
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let loaded = Model::load(dir.path(), &device).unwrap();
    assert_eq!(loaded.config.views[0].encoder.as_ref().and_then(|e| e.name.as_deref()), Some("hash16"));
    // Raw texts of the test rows, the noise view missing for all of them.
    let rows: Vec<usize> = split.test.iter().copied().filter(|&r| r != 7).collect();
    let raw: Vec<RawInput<'_>> = rows.iter().map(|&r| RawInput::Text(&texts[r])).collect();
    let (views, missing) = loaded.encode_raw(&[Some(raw), None]).unwrap();
    assert!(missing.is_empty());
    let all: Vec<usize> = (0..rows.len()).collect();
    let from_raw = loaded.predict_rows(&views.iter().collect::<Vec<_>>(), &all, false).unwrap();
    let mut encoded = data.views.clone();
    encoded[1].values.iter_mut().for_each(|v| *v = f32::NAN);
    let from_encoded = loaded.predict_rows(&loaded.select_views(&encoded).unwrap(), &rows, false).unwrap();
    assert_eq!(from_raw.probs, from_encoded.probs);
    assert!(from_raw.present.chunks(2).all(|p| p == [true, false]));
}
