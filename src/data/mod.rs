//! Data: generators and file formats. Free of tensor types, so it tests fast
//! and can be reused without a backend.
//!
//! Layer 5 (see `ARCHITECTURE.md`): it owns views, targets, splits, scalers and
//! [`DataSource`]; it imports the encoders, the file readers and the memory
//! budget below it, never the model, engines, training or prediction.

pub mod builtin;
pub mod mmimdb;
pub mod multiview;
pub mod scale;
pub mod source;
pub mod stream;
pub mod synthetic;
pub mod table;
pub mod text;

pub use multiview::{LabelSource, MultiviewData, Split, Targets, View};
pub use scale::{Scaler, Scaling};
pub use source::{DataRecord, DataSource, Loaded, SourceReader, SplitRecord, register_source};
pub use synthetic::{SyntheticConfig, SyntheticData};
