//! Trained models in other formats. [`onnx`] writes a feature-view model as an
//! ONNX graph that onnxruntime (and any ONNX runtime: GPUs, phones, browsers)
//! runs: one input per view, named as the view, `[batch, width]` float32 with a
//! dynamic batch axis; the saved scalers folded in (raw features go in, as to
//! `gmu predict`); outputs `probabilities` (`[batch, C]`) and, for gated
//! models (GMU, mixtures of experts), `gates` (`[batch, K, G]`, as
//! [`FusionNet::forward`](crate::fusion::FusionNet::forward) returns them).
//! `avg-probs` exports its members and the mean of their probabilities.
//!
//! The graph assumes every view is present: the missing-view rules
//! ([`FusionNet::forward_present`](crate::fusion::FusionNet::forward_present)),
//! imputation of partly missing rows, contribution shares and occlusion
//! importance stay with `gmu predict`.
//!
//! ```
//! use burn::tensor::Device;
//! use gmu::predict::Model;
//!
//! let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/model_v2/mfeat-gmu");
//! let model = Model::load(dir.as_ref(), &Device::default())?;
//! let bytes = gmu::export::onnx(&model)?;
//! assert!(bytes.len() > 1000);
//! # Ok::<(), gmu::GmuError>(())
//! ```

mod graph;
pub mod proto;

use std::path::Path;

use prost::Message;

use crate::error::{GmuError, Result};
use crate::predict::Model;
use graph::GraphBuilder;
use proto::{
    Dimension, FLOAT, GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto, TensorShapeProto,
    TensorTypeProto, TypeProto, ValueInfoProto,
};

/// The ONNX operator set the graphs use (onnxruntime ≥ 1.12 runs it).
pub const OPSET: i64 = 17;
/// The ONNX IR version written (the one that goes with opset 17).
pub const IR_VERSION: i64 = 8;

/// `model` as the bytes of an `.onnx` file (see the [module docs](self)).
/// A model with a trainable picture CNN or text LSTM, or a fusion method
/// registered from outside gmu, is refused with a message naming it.
pub fn onnx(model: &Model) -> Result<Vec<u8>> {
    Ok(onnx_model(model)?.encode_to_vec())
}

/// [`onnx`], written to `path` atomically (a temporary file, then renamed).
pub fn write_onnx(model: &Model, path: &Path) -> Result<()> {
    crate::error::write_atomic(path, &onnx(model)?)
}

fn tensor_type(dims: &[Option<usize>]) -> Option<TypeProto> {
    let dim = dims
        .iter()
        .map(|d| match d {
            Some(n) => Dimension { dim_value: Some(*n as i64), dim_param: None },
            None => Dimension { dim_value: None, dim_param: Some("batch".into()) },
        })
        .collect();
    Some(TypeProto { tensor_type: Some(TensorTypeProto { elem_type: FLOAT, shape: Some(TensorShapeProto { dim }) }) })
}

fn onnx_model(model: &Model) -> Result<ModelProto> {
    let config = &model.config;
    let mut g = GraphBuilder::default();
    let mut probs = Vec::new();
    let mut gates = None;
    for (member, net) in config.members.iter().zip(model.nets()) {
        let names: Vec<&str> = member.views.iter().map(|&v| config.views[v].name.as_str()).collect();
        let xs: Vec<String> =
            names.iter().zip(&member.scalers).map(|(name, s)| g.scale(name, &s.mean, &s.scale)).collect();
        let out = g.net(&xs, net, &names)?;
        probs.push(out.probs);
        if config.members.len() == 1 {
            gates = out.gates;
        }
    }
    let probs = match probs.as_slice() {
        [one] => one.clone(),
        many => {
            let refs: Vec<&str> = many.iter().map(String::as_str).collect();
            g.node("Mean", &refs, vec![])
        }
    };
    g.rename(&probs, "probabilities");
    let c = config.outputs.len();
    let mut outputs = vec![ValueInfoProto {
        name: "probabilities".into(),
        r#type: tensor_type(&[None, Some(c)]),
        doc_string: format!("[batch, {c}]: P({}) …", config.outputs.first().map_or("", String::as_str)),
    }];
    if let Some(gates) = gates {
        g.rename(&gates, "gates");
        outputs.push(ValueInfoProto {
            name: "gates".into(),
            r#type: tensor_type(&[None, Some(config.views.len()), None]),
            doc_string: "[batch, views, units]: each view's gate per unit (GMU) or label (mixture of experts)".into(),
        });
    }
    let inputs = config
        .views
        .iter()
        .map(|v| ValueInfoProto {
            name: v.name.clone(),
            r#type: tensor_type(&[None, Some(v.width)]),
            doc_string: format!(
                "view '{}': {} raw features per row (the saved scaling is in the graph)",
                v.name, v.width
            ),
        })
        .collect();
    let graph = GraphProto {
        node: g.nodes,
        name: format!("gmu_{}", config.method.replace(['-', ':'], "_")),
        initializer: g.initializers,
        doc_string: "Every view must be present: missing-view rules, shares and importance are gmu predict's.".into(),
        input: inputs,
        output: outputs,
    };
    let views: Vec<&str> = config.views.iter().map(|v| v.name.as_str()).collect();
    let metadata = [
        ("gmu_version", config.gmu_version.clone()),
        ("method", config.method.clone()),
        ("task", serde_json::json!(config.task).to_string()),
        ("classes", serde_json::json!(config.outputs).to_string()),
        ("views", serde_json::json!(views).to_string()),
        ("threshold", config.threshold.to_string()),
    ];
    if !model.nets().iter().all(|n| n.multilabel == (config.task == crate::fusion::Task::Multilabel)) {
        return Err(GmuError::invalid("model", "a member's task differs from the model's"));
    }
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
        producer_name: "gmu".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!("gmu {} model ({} views, {c} outputs)", config.method, config.views.len()),
        graph: Some(graph),
        metadata_props: metadata
            .into_iter()
            .map(|(key, value)| StringStringEntryProto { key: key.into(), value })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn fixture(name: &str) -> Model {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model_v2").join(name);
        Model::load(&dir, &Device::default()).unwrap()
    }

    fn dims(v: &ValueInfoProto) -> Vec<String> {
        let shape = v.r#type.as_ref().unwrap().tensor_type.as_ref().unwrap().shape.as_ref().unwrap();
        shape.dim.iter().map(|d| d.dim_value.map_or_else(|| d.dim_param.clone().unwrap(), |n| n.to_string())).collect()
    }

    /// The bytes decode back to the graph described in the module docs: the
    /// views as inputs with a dynamic batch axis, the two named outputs, every
    /// node reading only graph inputs, weights or earlier nodes' outputs, and
    /// every weight of the model among the initializers.
    #[test]
    fn a_gmu_exports_as_a_well_formed_graph() {
        let model = fixture("mfeat-gmu");
        let decoded = ModelProto::decode(onnx(&model).unwrap().as_slice()).unwrap();
        assert_eq!((decoded.ir_version, decoded.opset_import[0].version), (IR_VERSION, OPSET));
        let graph = decoded.graph.unwrap();
        let inputs: Vec<(String, Vec<String>)> = graph.input.iter().map(|v| (v.name.clone(), dims(v))).collect();
        assert_eq!(
            inputs,
            [("fou".into(), vec!["batch".into(), "76".into()]), ("zer".into(), vec!["batch".into(), "47".into()])]
        );
        let outputs: Vec<(String, Vec<String>)> = graph.output.iter().map(|v| (v.name.clone(), dims(v))).collect();
        assert_eq!(outputs[0], ("probabilities".into(), vec!["batch".into(), "10".into()]));
        assert_eq!(outputs[1].0, "gates");
        let mut known: std::collections::HashSet<String> = graph.input.iter().map(|v| v.name.clone()).collect();
        known.extend(graph.initializer.iter().map(|t| t.name.clone()));
        for node in &graph.node {
            for input in &node.input {
                assert!(known.contains(input), "{} reads {input} before it is made", node.name);
            }
            known.extend(node.output.iter().cloned());
        }
        assert!(known.contains("probabilities") && known.contains("gates"));
        let floats: usize =
            graph.initializer.iter().filter(|t| t.data_type == FLOAT).map(|t| t.raw_data.len() / 4).sum();
        let params = burn::module::Module::num_params(&model.nets()[0]);
        assert!(floats >= params, "{floats} float constants for {params} parameters");
        let meta: Vec<(&str, &str)> =
            decoded.metadata_props.iter().map(|p| (p.key.as_str(), p.value.as_str())).collect();
        assert!(meta.contains(&("views", "[\"fou\",\"zer\"]")), "{meta:?}");
    }

    /// avg-probs: its members' probabilities are averaged (a `Mean` node) and it has no gates.
    #[test]
    fn avg_probs_exports_the_mean_of_its_members() {
        let decoded = ModelProto::decode(onnx(&fixture("mfeat-avg-probs")).unwrap().as_slice()).unwrap();
        let graph = decoded.graph.unwrap();
        assert_eq!(graph.node.iter().filter(|n| n.op_type == "Mean").map(|n| n.input.len()).collect::<Vec<_>>(), [2]);
        assert_eq!(graph.output.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["probabilities"]);
    }
}
