//! burn draws initial weights and dropout masks from one random state per
//! backend, shared by every thread of the process. Whatever seeds it and
//! draws from it runs inside [`exclusive`], so a run's draws depend on its
//! seed alone, whatever else the process (a test suite, a library user) does
//! at the same time.

use std::cell::Cell;
use std::sync::Mutex;

static LOCK: Mutex<()> = Mutex::new(());

thread_local! {
    static HELD: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` holding the process-wide lock on burn's random state. Reentrant:
/// a call inside another on the same thread runs at once.
pub fn exclusive<T>(f: impl FnOnce() -> T) -> T {
    if HELD.with(Cell::get) {
        return f();
    }
    let _guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    struct Release;
    impl Drop for Release {
        fn drop(&mut self) {
            HELD.with(|h| h.set(false));
        }
    }
    HELD.with(|h| h.set(true));
    let _release = Release;
    f()
}
