//! Fusion layers and models: how the representations of several modalities
//! become one. [`gmu`] is the layer itself; [`blocks`] the paper's building
//! blocks (maxout, the maxout-MLP classifier, max-norm, a small CNN encoder);
//! [`network`] every fusion method of the paper's Table 2 behind one
//! [`FusionSpec`] / [`FusionNet`] interface; [`synthetic`] the synthetic
//! experiment's classifiers in the flat layout of the native engine.
//!
//! This is the model layer: burn modules and their specs. It imports the CPU
//! kernels ([`cpu`](crate::cpu)) and nothing above them: no data, no engine,
//! no training.

pub mod blocks;
pub mod gmu;
pub mod method;
pub mod network;
pub mod random;
pub mod spec;
pub mod synthetic;

pub use blocks::{MaxNorm, Maxout, MaxoutMlp, MaxoutMlpConfig, SmallCnn, TextLstm, TextPooling};
pub use gmu::{Gmu, GmuConfig, GmuOutput};
pub use method::{Fused, FusionMethod, register};
pub use network::{FusionNet, FusionOutput, Scores};
pub use spec::{ExpertKind, FusionKind, FusionSpec, HeadKind, SubnetSpec, Task};
