//! The memory budget: every size a flag or a file header implies is computed
//! with checked arithmetic and compared with the budget before anything is
//! allocated, so a huge number is a clear error that says what it would
//! need, never an overflow, an abort or a machine swapping to death.
//!
//! The budget is the machine's physical memory (`MemTotal` in
//! `/proc/meminfo`; 16 GiB where that cannot be read), or the
//! `GMU_MEMORY_BUDGET` environment variable (bytes, or with a `K`, `M`, `G`
//! or `T` suffix in binary units).
//!
//! Layer 1 (see `ARCHITECTURE.md`): it owns the memory checks and imports only [`error`](crate::error).

use crate::error::{GmuError, Result};

/// The environment variable that overrides the budget.
pub const BUDGET_VAR: &str = "GMU_MEMORY_BUDGET";

static SET: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Sets the budget for this process (0 goes back to the default); a program
/// embedding gmu, or a test, bounds what gmu may allocate with it.
pub fn set_budget(bytes: u64) {
    SET.store(bytes, std::sync::atomic::Ordering::Relaxed);
}

/// The budget in bytes: [`set_budget`]'s, else `GMU_MEMORY_BUDGET`, else the machine's memory.
pub fn budget() -> u64 {
    let set = SET.load(std::sync::atomic::Ordering::Relaxed);
    if set > 0 {
        return set;
    }
    if let Some(bytes) = std::env::var(BUDGET_VAR).ok().and_then(|v| parse_size(&v)) {
        return bytes;
    }
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            kib.checked_mul(1024)
        })
        .unwrap_or(16 << 30)
}

/// `12345`, `512M`, `16G`, `1T` (binary units) as bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, shift) = match text.char_indices().last()? {
        (i, 'K' | 'k') => (&text[..i], 10),
        (i, 'M' | 'm') => (&text[..i], 20),
        (i, 'G' | 'g') => (&text[..i], 30),
        (i, 'T' | 't') => (&text[..i], 40),
        _ => (text, 0),
    };
    digits.trim().parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// A byte count for people: `3.2 GiB`.
pub fn human(bytes: u64) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} bytes") } else { format!("{value:.1} {}", units[unit]) }
}

/// The product of `factors`, `None` on overflow.
pub fn product(factors: &[usize]) -> Option<u64> {
    factors.iter().try_fold(1u64, |acc, &f| acc.checked_mul(f as u64))
}

/// The sum of `terms`, `None` where one is `None` or the sum overflows.
pub fn sum(terms: &[Option<u64>]) -> Option<u64> {
    terms.iter().try_fold(0u64, |acc, t| acc.checked_add((*t)?))
}

/// Checks that `bytes` (`None`: beyond 2^64) fits the budget; the message
/// says that `what` would need so much (for an error about a file, which
/// names the file itself).
pub fn check(what: &str, bytes: Option<u64>) -> std::result::Result<(), String> {
    let budget = budget();
    match bytes {
        Some(b) if b <= budget => Ok(()),
        Some(b) => Err(format!(
            "{what} would need {} of memory, more than the budget of {} ({BUDGET_VAR}, or the machine's memory by default)",
            human(b),
            human(budget)
        )),
        None => Err(format!("{what} would need more than 2^64 bytes of memory")),
    }
}

/// [`check`] for a size a parameter implies: the error names `param`.
pub fn ensure(param: &'static str, what: &str, bytes: Option<u64>) -> Result<()> {
    check(what, bytes).map_err(|message| GmuError::invalid(param, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("3"), Some(3));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("99999999999T"), None);
        assert_eq!(parse_size("x"), None);
        assert_eq!(human(512), "512 bytes");
        assert_eq!(human(3 << 30), "3.0 GiB");
    }

    #[test]
    fn overflow_and_excess_are_errors_that_name_the_parameter() {
        assert_eq!(product(&[usize::MAX, 2]), None);
        assert_eq!(product(&[3, 4]), Some(12));
        assert_eq!(sum(&[Some(1), None]), None);
        let err = ensure("n", "200 samples", product(&[usize::MAX, usize::MAX])).unwrap_err().to_string();
        assert!(err.contains("--n") || err.contains("n:"), "{err}");
        assert!(err.contains("more than 2^64 bytes"), "{err}");
        let err = ensure("hidden", "the model", Some(u64::MAX / 2)).unwrap_err().to_string();
        assert!(err.contains("hidden") && err.contains("EiB") && err.contains(BUDGET_VAR), "{err}");
        assert!(ensure("n", "a little", Some(1024)).is_ok());
    }
}
