//! The Open Inference Protocol's REST messages (KServe "v2", as Triton,
//! Seldon MLServer and TorchServe speak it) and its binary tensor data
//! extension: parsing an inference request, writing a response. No model
//! here: tensors are names, shapes and flat data.
//!
//! A request body is a JSON object, optionally followed by binary tensor
//! data; the header `Inference-Header-Content-Length` then gives the JSON's
//! length, and each input sent as binary has `"parameters":
//! {"binary_data_size": n}`, its bytes following the JSON in input order
//! (little-endian, row-major; a BYTES element is a 4-byte little-endian
//! length and its bytes). An output is returned as binary where the request
//! asks (`"binary_data": true` on it, or `"binary_data_output": true` on the
//! request).

use serde_json::{Map, Value, json};

/// A request that breaks the protocol, or asks what this server refuses: the message names the input or field.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad<T>(message: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(message.into()))
}

/// An input tensor's values, flat and row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// FP32 (FP64 is narrowed); JSON `null` reads as NaN (a missing value).
    F32(Vec<f32>),
    /// BYTES elements.
    Bytes {
        /// Each element's bytes.
        items: Vec<Vec<u8>>,
        /// They came as JSON strings (an image is then base64).
        from_json: bool,
    },
}

/// One input of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct InputTensor {
    /// The input's name.
    pub name: String,
    /// Its shape, as the request declares it.
    pub shape: Vec<usize>,
    /// Its values, as many as the shape holds.
    pub data: TensorData,
}

/// An output the request asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputRequest {
    /// The output's name.
    pub name: String,
    /// Whether to return it as binary data.
    pub binary: bool,
}

/// An inference request.
#[derive(Debug, Clone, PartialEq)]
pub struct InferRequest {
    /// The client's request id, echoed in the response.
    pub id: Option<String>,
    /// The inputs, in the order given.
    pub inputs: Vec<InputTensor>,
    /// The outputs asked for (`None`: every output).
    pub outputs: Option<Vec<OutputRequest>>,
    /// `binary_data_output`: outputs not named come back as binary data.
    pub binary_by_default: bool,
}

/// How many values `shape` holds (an error past `usize`).
fn elements(shape: &[usize], name: &str) -> Result<usize, ProtocolError> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| ProtocolError(format!("input '{name}': shape {shape:?} is too large")))
}

/// Parses a request body. `header_length` is the value of
/// `Inference-Header-Content-Length` (the JSON's length when binary data follow).
pub fn parse_request(body: &[u8], header_length: Option<usize>) -> Result<InferRequest, ProtocolError> {
    let (head, mut binary) = match header_length {
        Some(n) if n > body.len() => {
            return bad(format!("Inference-Header-Content-Length is {n} but the body holds {} bytes", body.len()));
        }
        Some(n) => body.split_at(n),
        None => (body, &[][..]),
    };
    if let Ok(fast) = serde_json::from_slice::<FastRequest>(head) {
        return fast.into_request(binary);
    }
    // Anything the typed reading refuses is read again as plain JSON, for a message that names the problem.
    let value: Value =
        serde_json::from_slice(head).map_err(|e| ProtocolError(format!("the request is not valid JSON: {e}")))?;
    let Value::Object(object) = value else { return bad("the request must be a JSON object") };
    let id = match object.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return bad(format!("field 'id' must be a string, not {other}")),
    };
    let binary_by_default = flag(object.get("parameters"), "binary_data_output", "the request's parameters")?;
    let Some(Value::Array(inputs)) = object.get("inputs") else {
        return bad("field 'inputs' must be an array of tensors");
    };
    let mut parsed = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        add_input(&mut parsed, parse_input(input, i, &mut binary)?)?;
    }
    finish(parsed, id, object.get("outputs"), binary_by_default, binary)
}

/// Adds `tensor` to `inputs`, refusing a name given twice.
fn add_input(inputs: &mut Vec<InputTensor>, tensor: InputTensor) -> Result<(), ProtocolError> {
    if inputs.iter().any(|t| t.name == tensor.name) {
        return bad(format!("input '{}' is given twice", tensor.name));
    }
    inputs.push(tensor);
    Ok(())
}

/// The request from its parts, once every binary input took its bytes.
fn finish(
    inputs: Vec<InputTensor>,
    id: Option<String>,
    outputs: Option<&Value>,
    binary_by_default: bool,
    binary: &[u8],
) -> Result<InferRequest, ProtocolError> {
    if !binary.is_empty() {
        return bad(format!("{} bytes of binary data follow the inputs' binary_data_size", binary.len()));
    }
    let outputs = match outputs {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) => Some(
            list.iter()
                .map(|o| {
                    let name = o
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| ProtocolError("each of 'outputs' needs a string 'name'".into()))?;
                    let binary = match o.get("parameters").and_then(|p| p.get("binary_data")) {
                        None => binary_by_default,
                        Some(_) => flag(o.get("parameters"), "binary_data", &format!("output '{name}'"))?,
                    };
                    Ok(OutputRequest { name: name.to_string(), binary })
                })
                .collect::<Result<Vec<_>, ProtocolError>>()?,
        ),
        Some(other) => return bad(format!("field 'outputs' must be an array, not {other}")),
    };
    Ok(InferRequest { id, inputs, outputs, binary_by_default })
}

/// The common request read in one typed pass: every input's `data` numbers (or nulls)
/// straight into `f32`s, with no JSON tree in between (most of a request's time otherwise).
#[derive(serde::Deserialize)]
struct FastRequest {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
    inputs: Vec<FastInput>,
    #[serde(default)]
    outputs: Option<Value>,
}

#[derive(serde::Deserialize)]
struct FastInput {
    name: String,
    shape: Vec<u64>,
    datatype: String,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    data: Option<Numbers>,
}

impl FastRequest {
    fn into_request(self, mut binary: &[u8]) -> Result<InferRequest, ProtocolError> {
        let binary_by_default = flag(self.parameters.as_ref(), "binary_data_output", "the request's parameters")?;
        let mut inputs = Vec::with_capacity(self.inputs.len());
        for input in self.inputs {
            let shape = input.shape.iter().map(|&d| d as usize).collect();
            let data = match input.data {
                Some(Numbers(values)) => DataIn::Numbers(values),
                None => DataIn::Absent,
            };
            let parts =
                Parts { name: input.name, shape, datatype: &input.datatype, parameters: input.parameters.as_ref() };
            add_input(&mut inputs, parts.read(data, &mut binary)?)?;
        }
        finish(inputs, self.id, self.outputs.as_ref(), binary_by_default, binary)
    }
}

/// A JSON `data` of numbers and nulls (null: NaN) in lists nested up to 8 deep, flattened;
/// anything else fails the typed reading.
struct Numbers(Vec<f32>);

impl<'de> serde::Deserialize<'de> for Numbers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Numbers, D::Error> {
        let mut out = Vec::new();
        serde::de::DeserializeSeed::deserialize(Collect { out: &mut out, depth: 0 }, d)?;
        Ok(Numbers(out))
    }
}

struct Collect<'a> {
    out: &'a mut Vec<f32>,
    depth: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for Collect<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Collect<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("numbers, nulls and lists of them")
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.out.push(v as f32);
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.out.push(v as f64 as f32);
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.out.push(v as f64 as f32);
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.out.push(f32::NAN);
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth >= 8 {
            return Err(serde::de::Error::custom("nested too deep"));
        }
        while seq.next_element_seed(Collect { out: &mut *self.out, depth: self.depth + 1 })?.is_some() {}
        Ok(())
    }
}

/// An input's `data`: a JSON value, numbers read in the typed pass, or none.
enum DataIn<'a> {
    Json(&'a Value),
    Numbers(Vec<f32>),
    Absent,
}

/// An input's fields other than its data.
struct Parts<'a> {
    name: String,
    shape: Vec<usize>,
    datatype: &'a str,
    parameters: Option<&'a Value>,
}

/// A boolean parameter `key` of `parameters` (absent: false).
fn flag(parameters: Option<&Value>, key: &str, what: &str) -> Result<bool, ProtocolError> {
    match parameters.and_then(|p| p.get(key)) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => bad(format!("{what}: parameter '{key}' must be true or false, not {other}")),
    }
}

fn parse_input(input: &Value, i: usize, binary: &mut &[u8]) -> Result<InputTensor, ProtocolError> {
    let name = input
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ProtocolError(format!("input {i} needs a string 'name'")))?
        .to_string();
    let shape: Vec<usize> = match input.get("shape") {
        Some(Value::Array(dims)) => {
            dims.iter().map(|d| d.as_u64().map(|d| d as usize)).collect::<Option<_>>().ok_or_else(|| {
                ProtocolError(format!("input '{name}': 'shape' must be a list of non-negative integers"))
            })?
        }
        _ => return bad(format!("input '{name}' needs a 'shape' (a list of integers)")),
    };
    let datatype = input
        .get("datatype")
        .and_then(Value::as_str)
        .ok_or_else(|| ProtocolError(format!("input '{name}' needs a string 'datatype'")))?;
    let data = input.get("data").map_or(DataIn::Absent, DataIn::Json);
    Parts { name, shape, datatype, parameters: input.get("parameters") }.read(data, binary)
}

impl Parts<'_> {
    /// The input, its data from `data` or, where it has a binary_data_size, from the front of `binary`.
    fn read(self, data: DataIn<'_>, binary: &mut &[u8]) -> Result<InputTensor, ProtocolError> {
        let Parts { name, shape, datatype, parameters } = self;
        if !matches!(datatype, "FP32" | "FP64" | "BYTES") {
            return bad(format!(
                "input '{name}': datatype {datatype} is not accepted (FP32 or FP64 for features, BYTES for texts and images)"
            ));
        }
        let n = elements(&shape, &name)?;
        let size = match parameters.and_then(|p| p.get("binary_data_size")) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                ProtocolError(format!("input '{name}': binary_data_size must be a non-negative integer"))
            })? as usize),
        };
        let data = match (size, data) {
            (Some(size), _) => {
                if size > binary.len() {
                    return bad(format!(
                        "input '{name}': binary_data_size {size} but {} bytes of binary data are left (is Inference-Header-Content-Length set?)",
                        binary.len()
                    ));
                }
                let (bytes, rest) = binary.split_at(size);
                *binary = rest;
                binary_data(bytes, datatype, n, &name)?
            }
            (None, DataIn::Absent) => return bad(format!("input '{name}' has neither 'data' nor a binary_data_size")),
            (None, DataIn::Json(data)) => json_data(data, datatype, n, &name)?,
            (None, DataIn::Numbers(values)) => {
                if values.len() != n {
                    return bad(format!("input '{name}': {} values in 'data' for a shape of {n}", values.len()));
                }
                match datatype {
                    "BYTES" if values.is_empty() => TensorData::Bytes { items: Vec::new(), from_json: true },
                    "BYTES" => return bad(format!("input '{name}': element 0 is a number, not a string")),
                    _ => TensorData::F32(values),
                }
            }
        };
        Ok(InputTensor { name, shape, data })
    }
}

fn binary_data(bytes: &[u8], datatype: &str, n: usize, name: &str) -> Result<TensorData, ProtocolError> {
    match datatype {
        "FP32" | "FP64" => {
            let width = if datatype == "FP32" { 4 } else { 8 };
            if bytes.len() != n * width {
                return bad(format!(
                    "input '{name}': {} bytes of {datatype} data for a shape of {n} values ({} bytes)",
                    bytes.len(),
                    n * width
                ));
            }
            Ok(TensorData::F32(if width == 4 {
                bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
            } else {
                bytes.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32).collect()
            }))
        }
        "BYTES" => {
            let mut items = Vec::with_capacity(n.min(1 << 16));
            let mut rest = bytes;
            while !rest.is_empty() {
                if rest.len() < 4 {
                    return bad(format!("input '{name}': a BYTES element's 4-byte length is cut off"));
                }
                let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                if rest.len() - 4 < len {
                    return bad(format!(
                        "input '{name}': element {} claims {len} bytes but {} are left",
                        items.len(),
                        rest.len() - 4
                    ));
                }
                items.push(rest[4..4 + len].to_vec());
                rest = &rest[4 + len..];
            }
            if items.len() != n {
                return bad(format!("input '{name}': {} BYTES elements for a shape of {n}", items.len()));
            }
            Ok(TensorData::Bytes { items, from_json: false })
        }
        other => bad(format!(
            "input '{name}': datatype {other} is not accepted (FP32 or FP64 for features, BYTES for texts and images)"
        )),
    }
}

fn json_data(data: &Value, datatype: &str, n: usize, name: &str) -> Result<TensorData, ProtocolError> {
    let mut flat = Vec::with_capacity(n.min(1 << 20));
    flatten(data, &mut flat, 0)
        .map_err(|_| ProtocolError(format!("input '{name}': 'data' nests deeper than 8 lists")))?;
    if flat.len() != n {
        return bad(format!("input '{name}': {} values in 'data' for a shape of {n}", flat.len()));
    }
    match datatype {
        "FP32" | "FP64" => flat
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Null => Ok(f32::NAN),
                Value::Number(x) => Ok(x.as_f64().unwrap_or(f64::NAN) as f32),
                other => {
                    bad(format!("input '{name}': value {i} is {other}, not a number (null marks a missing value)"))
                }
            })
            .collect::<Result<Vec<f32>, _>>()
            .map(TensorData::F32),
        "BYTES" => flat
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.as_bytes().to_vec()),
                other => bad(format!("input '{name}': element {i} is {other}, not a string")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|items| TensorData::Bytes { items, from_json: true }),
        other => bad(format!(
            "input '{name}': datatype {other} is not accepted (FP32 or FP64 for features, BYTES for texts and images)"
        )),
    }
}

/// `data` (a value or nested lists of them) flattened row-major into `out`.
fn flatten<'a>(data: &'a Value, out: &mut Vec<&'a Value>, depth: usize) -> Result<(), ()> {
    match data {
        Value::Array(items) if depth < 8 => items.iter().try_for_each(|v| flatten(v, out, depth + 1)),
        Value::Array(_) => Err(()),
        v => {
            out.push(v);
            Ok(())
        }
    }
}

/// An output tensor's values.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputData {
    /// FP32: NaN (a missing view's gate, say) is `null` in JSON.
    F32(Vec<f32>),
    /// BOOL.
    Bool(Vec<bool>),
    /// BYTES, as text.
    Bytes(Vec<String>),
}

/// One output of a response.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputTensor {
    /// The output's name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub data: OutputData,
}

impl OutputTensor {
    fn datatype(&self) -> &'static str {
        match self.data {
            OutputData::F32(_) => "FP32",
            OutputData::Bool(_) => "BOOL",
            OutputData::Bytes(_) => "BYTES",
        }
    }

    fn json_data(&self) -> Value {
        match &self.data {
            OutputData::F32(v) => Value::Array(
                v.iter()
                    .map(|&x| serde_json::Number::from_f64(f64::from(x)).map_or(Value::Null, |_| json!(x)))
                    .collect(),
            ),
            OutputData::Bool(v) => json!(v),
            OutputData::Bytes(v) => json!(v),
        }
    }

    fn binary(&self) -> Vec<u8> {
        match &self.data {
            OutputData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            OutputData::Bool(v) => v.iter().map(|&b| u8::from(b)).collect(),
            OutputData::Bytes(v) => {
                v.iter().flat_map(|s| (s.len() as u32).to_le_bytes().into_iter().chain(s.bytes())).collect()
            }
        }
    }
}

/// A response body: the JSON, then the binary outputs. Returns the body and,
/// where binary data follow, the JSON's length (for `Inference-Header-Content-Length`).
pub fn response_body(
    model: &str,
    version: &str,
    id: Option<&str>,
    outputs: &[(OutputTensor, bool)],
) -> (Vec<u8>, Option<usize>) {
    let mut binary = Vec::new();
    let listed: Vec<Value> = outputs
        .iter()
        .map(|(t, as_binary)| {
            let mut o = Map::new();
            o.insert("name".into(), json!(t.name));
            o.insert("datatype".into(), json!(t.datatype()));
            o.insert("shape".into(), json!(t.shape));
            if *as_binary {
                let bytes = t.binary();
                o.insert("parameters".into(), json!({ "binary_data_size": bytes.len() }));
                binary.extend(bytes);
            } else {
                o.insert("data".into(), t.json_data());
            }
            Value::Object(o)
        })
        .collect();
    let mut response = Map::new();
    response.insert("model_name".into(), json!(model));
    response.insert("model_version".into(), json!(version));
    if let Some(id) = id {
        response.insert("id".into(), json!(id));
    }
    response.insert("outputs".into(), Value::Array(listed));
    let mut body = serde_json::to_vec(&Value::Object(response)).expect("a JSON value serialises");
    if binary.is_empty() && !outputs.iter().any(|(_, b)| *b) {
        return (body, None);
    }
    let head = body.len();
    body.extend(binary);
    (body, Some(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_request_reads_nested_data_nulls_and_outputs() {
        let body = br#"{"id":"a1","inputs":[{"name":"fou","shape":[2,2],"datatype":"FP32","data":[[1,2.5],[null,-3]]},
            {"name":"plot","shape":[1],"datatype":"BYTES","data":["a film"]}],
            "outputs":[{"name":"probabilities"},{"name":"gate_fou","parameters":{"binary_data":true}}]}"#;
        let r = parse_request(body, None).unwrap();
        assert_eq!(r.id.as_deref(), Some("a1"));
        let TensorData::F32(v) = &r.inputs[0].data else { panic!() };
        assert_eq!((v[0], v[1], v[3]), (1.0, 2.5, -3.0));
        assert!(v[2].is_nan());
        assert_eq!(r.inputs[1].data, TensorData::Bytes { items: vec![b"a film".to_vec()], from_json: true });
        let outs = r.outputs.unwrap();
        assert_eq!((outs[0].binary, outs[1].binary), (false, true));
    }

    /// Numbers-only requests take the typed pass; the same request with a string among the
    /// numbers falls back to the JSON tree and gets its message.
    #[test]
    fn the_typed_pass_reads_what_the_json_tree_reads() {
        let body =
            br#"{"id":"n","inputs":[{"name":"x","shape":[2,3],"datatype":"FP32","data":[[1,-2,3.5e-1],[null,7,1e3]]},
            {"name":"y","shape":[1],"datatype":"FP64","data":[0.1]}],"parameters":{"binary_data_output":true},
            "outputs":[{"name":"p","parameters":{"binary_data":false}}]}"#;
        let fast = parse_request(body, None).unwrap();
        let TensorData::F32(x) = &fast.inputs[0].data else { panic!() };
        assert_eq!((x[0], x[1], x[2], x[4], x[5]), (1.0, -2.0, 0.35, 7.0, 1000.0));
        assert!(x[3].is_nan());
        assert_eq!(fast.inputs[1].data, TensorData::F32(vec![0.1f64 as f32]));
        assert_eq!((fast.id.as_deref(), fast.binary_by_default), (Some("n"), true));
        assert_eq!(fast.outputs.unwrap()[0], OutputRequest { name: "p".into(), binary: false });
        let mixed = br#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1,"2"]}]}"#;
        assert!(parse_request(mixed, None).unwrap_err().0.contains("input 'x': value 1 is \"2\", not a number"));
        let deep = br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[[[[[[[[[[1]]]]]]]]]]}]}"#;
        assert!(parse_request(deep, None).unwrap_err().0.contains("nests deeper than 8"));
        let empty = br#"{"inputs":[{"name":"t","shape":[0],"datatype":"BYTES","data":[]}]}"#;
        assert_eq!(
            parse_request(empty, None).unwrap().inputs[0].data,
            TensorData::Bytes { items: vec![], from_json: true }
        );
    }

    #[test]
    fn binary_inputs_follow_the_json_header_in_order() {
        let head = br#"{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","parameters":{"binary_data_size":8}},{"name":"t","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":11}}],"parameters":{"binary_data_output":true}}"#;
        let mut body = head.to_vec();
        body.extend(0.5f32.to_le_bytes());
        body.extend((-2.0f32).to_le_bytes());
        body.extend(2u32.to_le_bytes());
        body.extend(b"hi");
        body.extend(1u32.to_le_bytes());
        body.extend(b"!");
        let r = parse_request(&body, Some(head.len())).unwrap();
        assert_eq!(r.inputs[0].data, TensorData::F32(vec![0.5, -2.0]));
        assert_eq!(
            r.inputs[1].data,
            TensorData::Bytes { items: vec![b"hi".to_vec(), b"!".to_vec()], from_json: false }
        );
        assert!(r.binary_by_default && r.outputs.is_none());
    }

    #[test]
    fn broken_requests_name_the_input_and_the_problem() {
        let cases: [(&[u8], Option<usize>, &str); 8] = [
            (b"{not json", None, "not valid JSON"),
            (br#"{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[1,2]}]}"#, None, "input 'x': 2 values in 'data' for a shape of 3"),
            (br#"{"inputs":[{"name":"x","shape":[1],"datatype":"INT8","data":[1]}]}"#, None, "input 'x': datatype INT8"),
            (br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":["a"]}]}"#, None, "input 'x': value 0 is \"a\""),
            (br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}"#, None, "binary_data_size 4 but 0 bytes"),
            (br#"{"inputs":[{"name":"x","shape":[-1],"datatype":"FP32","data":[1]}]}"#, None, "'shape' must be a list of non-negative"),
            (br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]},{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}"#, None, "given twice"),
            (br#"{"inputs":{}}"#, None, "'inputs' must be an array"),
        ];
        for (body, head, want) in cases {
            let err = parse_request(body, head).unwrap_err();
            assert!(err.0.contains(want), "{err} lacks {want}");
        }
        assert!(parse_request(b"{}", Some(10)).unwrap_err().0.contains("Inference-Header-Content-Length is 10"));
    }

    #[test]
    fn a_response_writes_json_and_binary_outputs_after_the_header() {
        let outputs = [
            (OutputTensor { name: "p".into(), shape: vec![1, 2], data: OutputData::F32(vec![0.25, f32::NAN]) }, false),
            (OutputTensor { name: "g".into(), shape: vec![1], data: OutputData::F32(vec![0.5]) }, true),
            (OutputTensor { name: "l".into(), shape: vec![1], data: OutputData::Bytes(vec!["ab".into()]) }, true),
        ];
        let (body, head) = response_body("m", "2", Some("x"), &outputs);
        let head = head.unwrap();
        let json: Value = serde_json::from_slice(&body[..head]).unwrap();
        assert_eq!(json["outputs"][0]["data"], json!([0.25, null]));
        assert_eq!(json["outputs"][1]["parameters"]["binary_data_size"], 4);
        assert_eq!(json["id"], "x");
        let mut want = 0.5f32.to_le_bytes().to_vec();
        want.extend(2u32.to_le_bytes());
        want.extend(b"ab");
        assert_eq!(&body[head..], &want[..]);
        let (plain, none) = response_body("m", "2", None, &outputs[..1]);
        assert!(none.is_none() && serde_json::from_slice::<Value>(&plain).is_ok());
    }
}
