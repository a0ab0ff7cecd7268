//! Buffers an encoder keeps between forwards ([`Spare`]), shared by MiniLM's
//! and EfficientNet-Lite0's CPU forwards.

use std::sync::{Mutex, PoisonError};

/// The buffer sets of finished forwards, for the next ones: a forward takes
/// one (an empty one where none is kept) and gives it back when done. As many
/// are kept as rayon has threads, since no more forwards run at once; fresh
/// pages for every forward cost zeroing and page faults. The lock is held
/// only to take and to give, never through a forward (a thread waiting
/// inside one forward's parallel step may start another).
pub(crate) struct Spare<T>(Mutex<Vec<T>>);

impl<T> Default for Spare<T> {
    fn default() -> Self {
        Spare(Mutex::new(Vec::new()))
    }
}

impl<T: Default> Spare<T> {
    /// A kept buffer set, or an empty one.
    pub(crate) fn take(&self) -> T {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).pop().unwrap_or_default()
    }

    /// Gives `buffers` back, kept unless as many as rayon's threads already are.
    pub(crate) fn give(&self, buffers: T) {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() < rayon::current_num_threads() {
            kept.push(buffers);
        }
    }

    /// How many buffer sets are kept.
    #[cfg(test)]
    pub(crate) fn kept(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A set given back is the next one taken; no more are kept than threads.
    #[test]
    fn keeps_what_is_given_back_up_to_the_threads() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        pool.install(|| {
            let spare: Spare<Vec<f32>> = Spare::default();
            assert_eq!(spare.take(), Vec::<f32>::new(), "none kept: an empty set");
            spare.give(vec![1.0]);
            assert_eq!(spare.take(), vec![1.0]);
            for n in 0..5 {
                spare.give(vec![n as f32]);
            }
            assert_eq!(spare.kept(), 2);
        });
    }
}
