//! Fusion methods added from outside the crate: a [`FusionMethod`]
//! implementation and one [`register`] call. The method says which linear maps
//! it trains and how it fuses the views with them; gmu builds those maps into
//! the [`FusionNet`](super::FusionNet) with the head the spec asks for (the
//! paper's maxout MLP, or a linear layer), so the model trains on burn's
//! autodiff, saves, loads and predicts as every built-in method does. A spec
//! names its method by [`FusionSpec::method`](super::FusionSpec::method) with
//! [`FusionKind::Custom`](super::FusionKind::Custom).
//!
//! ```
//! use burn::nn::Linear;
//! use burn::tensor::Tensor;
//! use gmu::fusion::{Fused, FusionMethod};
//!
//! /// The element-wise maximum of the views, each projected to the hidden width.
//! #[derive(Debug)]
//! struct MaxFusion;
//!
//! impl FusionMethod for MaxFusion {
//!     fn name(&self) -> &str {
//!         "max"
//!     }
//!     fn layers(&self, widths: &[usize], hidden: usize) -> Vec<(usize, usize)> {
//!         widths.iter().map(|&d| (d, hidden)).collect()
//!     }
//!     fn fuse(&self, layers: &[Linear], views: &[Tensor<2>]) -> Fused {
//!         let projected = layers.iter().zip(views).map(|(l, x)| l.forward(x.clone()).tanh());
//!         Fused::plain(projected.reduce(|a, b| a.max_pair(b)).expect("at least one view"))
//!     }
//! }
//!
//! gmu::fusion::register(MaxFusion).unwrap();
//! ```
//!
//! The model layer owns the registry; it imports nothing above the CPU kernels.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;

use super::blocks::MaxoutMlp;
use crate::error::{GmuError, Result};

/// A way of fusing views into one vector, added from outside the crate.
pub trait FusionMethod: Send + Sync + std::fmt::Debug {
    /// The name a model records and [`method`] finds it by: lowercase
    /// letters, digits and `-`, not one of the built-in kinds.
    fn name(&self) -> &str;

    /// The linear maps the method trains, `(d_in, d_out)` each, for views of
    /// widths `widths` (after their encoders) fused into `hidden` units.
    fn layers(&self, widths: &[usize], hidden: usize) -> Vec<(usize, usize)>;

    /// The width of the fused vector (the head's input); `hidden` by default.
    fn fused_width(&self, widths: &[usize], hidden: usize) -> usize {
        let _ = widths;
        hidden
    }

    /// Fuses the views with the maps of [`layers`](Self::layers), in that order.
    ///
    /// # Shapes
    /// - `views[i]`: `[batch, d_i]`; a missing view arrives as zeros (its training mean)
    /// - output `h`: `[batch, fused_width]`; `gates` and `contributions`, if any: `[batch, K, G]`
    fn fuse(&self, layers: &[Linear], views: &[Tensor<2>]) -> Fused;
}

/// What a [`FusionMethod`] returns: the fused vector and, for a gated
/// method, each view's gate and contribution (as [`FusionOutput`](super::FusionOutput) has them).
#[derive(Clone, Debug)]
pub struct Fused {
    /// `[batch, D]`.
    pub h: Tensor<2>,
    /// `[batch, K, G]`, where the method has gates.
    pub gates: Option<Tensor<3>>,
    /// `[batch, K, G]`, non-negative: what each view put into `h`.
    pub contributions: Option<Tensor<3>>,
}

impl Fused {
    /// A fused vector without gates.
    pub fn plain(h: Tensor<2>) -> Fused {
        Fused { h, gates: None, contributions: None }
    }
}

/// The trained part of a registered method's model: its maps, then the head.
#[derive(Module, Debug)]
pub struct CustomHead {
    /// The maps [`FusionMethod::layers`] asked for.
    pub layers: Vec<Linear>,
    /// The maxout-MLP classifier on the fused vector (`head: maxout`).
    pub mlp: Option<MaxoutMlp>,
    /// A linear classifier on the fused vector (`head: linear`).
    pub output: Option<Linear>,
    /// The method, from the registry.
    #[module(skip)]
    pub method: Registered,
}

/// A registered method, shared.
#[derive(Clone, Debug)]
pub struct Registered(pub Arc<dyn FusionMethod>);

impl CustomHead {
    /// The fused vector, gates and contributions, and the head's logits.
    ///
    /// # Shapes
    /// - `views[i]`: `[batch, d_i]`; output logits `[batch, C]`
    pub fn forward(&self, views: &[Tensor<2>]) -> (Tensor<2>, Fused) {
        let fused = self.method.0.fuse(&self.layers, views);
        let logits = match (&self.mlp, &self.output) {
            (Some(mlp), _) => mlp.forward(fused.h.clone()),
            (None, Some(output)) => output.forward(fused.h.clone()),
            (None, None) => unreachable!("a custom head is built with a classifier"),
        };
        (logits, fused)
    }
}

static REGISTRY: RwLock<BTreeMap<String, Registered>> = RwLock::new(BTreeMap::new());

/// The names of the built-in kinds (`FusionKind`'s, which the tests hold this list to).
const BUILT_IN: [&str; 6] = ["gmu", "linear-sum", "concat", "avg-probs", "moe", "custom"];

/// Makes `method` available to [`FusionSpec`](super::FusionSpec)s (and so to
/// training, saving and loading) under its [`name`](FusionMethod::name).
/// Registering the same name again replaces the method; a name that is not
/// lowercase letters, digits and `-`, or that a built-in kind has, is an error.
pub fn register(method: impl FusionMethod + 'static) -> Result<()> {
    let name = method.name().to_string();
    GmuError::check_registry_name("fusion", "a method's", &name)?;
    if BUILT_IN.contains(&name.as_str()) {
        return Err(GmuError::invalid("fusion", format!("'{name}' is a built-in fusion method")));
    }
    REGISTRY.write().unwrap_or_else(|e| e.into_inner()).insert(name, Registered(Arc::new(method)));
    Ok(())
}

/// The registered method `name`, or an error naming the methods there are.
pub fn method(name: &str) -> Result<Registered> {
    let registry = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    registry.get(name).cloned().ok_or_else(|| {
        let known: Vec<&str> = registry.keys().map(String::as_str).collect();
        GmuError::invalid(
            "fusion",
            format!(
                "no fusion method '{name}' is registered (registered: {}); register it with gmu::fusion::register before building or loading its models",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fusion::FusionKind;

    #[test]
    fn the_built_in_names_are_the_kinds() {
        let kinds: Vec<String> =
            FusionKind::ALL.iter().chain([FusionKind::Custom].iter()).map(ToString::to_string).collect();
        assert_eq!(kinds, BUILT_IN);
    }
}
