//! Fusion layers and models: how the representations of several modalities
//! become one. [`gmu`] is the layer itself; [`blocks`] the paper's building
//! blocks (maxout, the maxout-MLP classifier, max-norm, a small CNN encoder);
//! [`network`] every fusion method of the paper's Table 2 behind one
//! [`FusionSpec`] / [`FusionNet`] interface.

pub mod blocks;
pub mod gmu;
pub mod network;
pub mod random;

pub use blocks::{MaxNorm, Maxout, MaxoutMlp, MaxoutMlpConfig, SmallCnn, TextLstm, TextPooling};
pub use gmu::{Gmu, GmuConfig, GmuOutput};
pub use network::{EncoderSpec, ExpertKind, FusionKind, FusionNet, FusionOutput, FusionSpec, HeadKind, Scores, Task};
