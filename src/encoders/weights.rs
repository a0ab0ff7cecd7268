//! Named float tensors from a pretrained weight file: safetensors (MiniLM)
//! or PyTorch's `.pth`, legacy or zip (EfficientNet-Lite0). Every lookup
//! checks the shape and names the file and the tensor when it is wrong.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{GmuError, Result};

/// Tensors by name: shape and row-major values.
pub type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// The tensors of one weight file, as `f32`.
pub struct Weights {
    path: PathBuf,
    tensors: Tensors,
}

impl Weights {
    /// Reads a `.safetensors` file or a PyTorch `.pth`/`.pt`/`.bin`, by extension.
    pub fn read(path: &Path) -> Result<Weights> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
        let tensors = if ext == "safetensors" { read_safetensors(path)? } else { read_pytorch(path)? };
        Ok(Weights { path: path.to_path_buf(), tensors })
    }

    /// Weights from memory (tests, converted checkpoints).
    pub fn from_map(path: &Path, tensors: Tensors) -> Weights {
        Weights { path: path.to_path_buf(), tensors }
    }

    /// The file they came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tensor names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tensors.keys().cloned().collect();
        names.sort();
        names
    }

    /// Whether a tensor of this name exists.
    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Shape of a tensor, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|(s, _)| s.as_slice())
    }

    /// The values of `name`, checked to have `shape`.
    pub fn values(&self, name: &str, shape: &[usize]) -> Result<&[f32]> {
        let (have, values) = self
            .tensors
            .get(name)
            .ok_or_else(|| GmuError::data(&self.path, format!("no tensor '{name}' (expected shape {shape:?})")))?;
        if have.as_slice() != shape {
            return Err(GmuError::data(&self.path, format!("tensor '{name}' has shape {have:?}, expected {shape:?}")));
        }
        Ok(values)
    }

    /// `name` as a burn tensor of `shape` on `device`.
    pub fn tensor<const D: usize>(&self, name: &str, shape: [usize; D], device: &Device) -> Result<Tensor<D>> {
        let values = self.values(name, &shape)?.to_vec();
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }

    /// A PyTorch `Linear` weight `[out, in]` transposed to burn's `[in, out]`.
    pub fn linear(&self, name: &str, d_in: usize, d_out: usize, device: &Device) -> Result<Tensor<2>> {
        let w = self.values(name, &[d_out, d_in])?;
        let mut t = vec![0f32; w.len()];
        for o in 0..d_out {
            for i in 0..d_in {
                t[i * d_out + o] = w[o * d_in + i];
            }
        }
        Ok(Tensor::from_data(TensorData::new(t, [d_in, d_out]), device))
    }
}

fn read_safetensors(path: &Path) -> Result<Tensors> {
    let bytes = std::fs::read(path).map_err(|e| GmuError::io(path, e))?;
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| GmuError::data(path, format!("not a safetensors file ({e})")))?;
    let mut out = HashMap::new();
    for (name, view) in file.tensors() {
        let shape = view.shape().to_vec();
        let values: Vec<f32> = match view.dtype() {
            safetensors::Dtype::F32 => {
                view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
            }
            // integer buffers (BERT's position_ids) are not weights
            safetensors::Dtype::I64 | safetensors::Dtype::I32 => continue,
            other => {
                return Err(GmuError::data(
                    path,
                    format!("tensor '{name}' is {other:?}; only float32 weights are supported"),
                ));
            }
        };
        out.insert(name, (shape, values));
    }
    Ok(out)
}

fn read_pytorch(path: &Path) -> Result<Tensors> {
    use pytorch_reader::DType;
    let reader = pytorch_reader::PytorchReader::new(path)
        .map_err(|e| GmuError::data(path, format!("not a readable PyTorch checkpoint ({e})")))?;
    let mut out = HashMap::new();
    for (name, tensor) in reader.tensors() {
        let bytes = tensor.read().map_err(|e| GmuError::data(path, format!("tensor '{name}': {e}")))?;
        let values: Vec<f32> = match tensor.dtype() {
            DType::F32 => bytes.chunks_exact(4).map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]])).collect(),
            DType::F64 => {
                bytes.chunks_exact(8).map(|c| f64::from_ne_bytes(c.try_into().expect("8 bytes")) as f32).collect()
            }
            // counters such as batch norm's num_batches_tracked
            DType::I64
            | DType::I32
            | DType::I16
            | DType::I8
            | DType::U64
            | DType::U32
            | DType::U16
            | DType::U8
            | DType::Bool => continue,
            other => {
                return Err(GmuError::data(
                    path,
                    format!("tensor '{name}' is {other:?}; only float32 weights are supported"),
                ));
            }
        };
        out.insert(name.clone(), (tensor.shape().to_vec(), values));
    }
    Ok(out)
}
