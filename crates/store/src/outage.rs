//! When the database was last found unavailable (unreachable, read-only,
//! full, busy past its timeout), so that each backend's pool can treat the
//! connections it holds from before then with suspicion: PostgreSQL pings
//! them, SQLite replaces them.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Milliseconds since the epoch of the last such failure; 0: never.
static LAST_MS: AtomicI64 = AtomicI64::new(0);

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A call found the database unavailable (see `StoreError::Unavailable`).
pub(crate) fn seen() {
    LAST_MS.store(now_ms(), Ordering::Relaxed);
}

/// Whether the last failure was less than `window` ago.
pub(crate) fn within(window: Duration) -> bool {
    let last = LAST_MS.load(Ordering::Relaxed);
    last != 0 && now_ms() - last < i64::try_from(window.as_millis()).unwrap_or(i64::MAX)
}

/// How long after the last failure a connection opened is still suspect:
/// it may have been opened while the failure lasted, and not used since.
const SUSPECT_AFTER: Duration = Duration::from_secs(1);

/// Whether a connection `age` old was opened before the last failure was
/// seen, or soon after it ([`SUSPECT_AFTER`]).
pub(crate) fn predates(age: Duration) -> bool {
    let last = LAST_MS.load(Ordering::Relaxed);
    let opened = now_ms() - i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
    let grace = i64::try_from(SUSPECT_AFTER.as_millis()).unwrap_or(0);
    last != 0 && opened <= last + grace
}
