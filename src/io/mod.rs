//! Reading and writing files, free of tensors: NumPy arrays ([`npy`]) and
//! output folders that never mix runs ([`output`]). The atomic write of one
//! file ([`write_atomic`](crate::error::write_atomic)) sits with the errors
//! it reports. Imports only [`error`](crate::error) and [`budget`](crate::budget).

pub mod npy;
pub mod output;
