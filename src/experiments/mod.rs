//! The experiments gmu runs end to end, each over the layers below it:
//! the synthetic experiment of the paper and the seed post ([`synthetic`]:
//! the demo and the §5.1 protocol), every fusion method of the paper's
//! Table 2 on one data set ([`comparison`]), and the trained models re-scored
//! with a noisy view ([`robustness`]). Only the CLI sits above this layer.

pub mod comparison;
pub mod robustness;
pub mod synthetic;
