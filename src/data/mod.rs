//! Data: generators and file formats. Free of tensor types, so it tests fast
//! and can be reused without a backend.

pub mod synthetic;
pub mod table;

pub use synthetic::{SyntheticConfig, SyntheticData};
