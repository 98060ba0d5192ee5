//! Crash injection for the exactly-once tests: `VMUNET_FAILPOINT=NAME[:N]` kills the process
//! with SIGKILL (as `kill -9` would) the N-th time (default: first) execution reaches the
//! point `NAME`. Unset, a point costs one relaxed atomic load. Testing only.
//!
//! Points: `after-start` (journal says started, nothing written), `mid-write` (half of an
//! output's temporary file written), `before-json` (both PNGs in place, no record),
//! `before-done` (all outputs in place, journal not yet told), `mid-journal` (half a journal
//! line written), `before-failed-move` (reason file written, image not yet moved).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The environment variable that arms a point.
pub const ENV: &str = "VMUNET_FAILPOINT";

static ARMED: OnceLock<Option<(String, usize)>> = OnceLock::new();
static HITS: AtomicUsize = AtomicUsize::new(0);

fn armed() -> &'static Option<(String, usize)> {
    ARMED.get_or_init(|| {
        let v = std::env::var(ENV).ok()?;
        let (name, n) = match v.split_once(':') {
            Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1)),
            None => (v, 1),
        };
        Some((name, n.max(1)))
    })
}

/// Kills the process if `name` is armed and this is its N-th hit.
pub fn hit(name: &str) {
    if let Some((armed, n)) = armed() {
        if armed == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n {
            eprintln!("failpoint {name}: SIGKILL");
            let _ = signal_hook::low_level::raise(signal_hook::consts::SIGKILL);
            std::process::abort();
        }
    }
}

/// True when `name` is the armed point (callers that must stage work before [`hit`]).
pub fn is_armed(name: &str) -> bool {
    armed().as_ref().is_some_and(|(a, _)| a == name)
}
