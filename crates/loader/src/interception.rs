//! Interception state: whether `from_pretrained` goes through our storage.
//!
//! Process-wide, like the Python monkeypatch it replaces: applied on first use
//! unless the gate says no; `restore()` (or `disable()`) sends loading straight
//! to the Hub cache until `apply()` is called again.

use crate::FileKind;
use ipfs_accelerate_gating::Gate;
use serde::Serialize;
use std::sync::{Mutex, MutexGuard};

#[derive(Debug, Default)]
struct State {
    applied: bool,
    /// Set by `restore()`: no automatic re-apply.
    restored: bool,
}

static STATE: Mutex<State> = Mutex::new(State {
    applied: false,
    restored: false,
});

fn state() -> MutexGuard<'static, State> {
    // A poisoned lock only means a panic elsewhere; the two flags stay valid.
    STATE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What `status` reports about interception.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterceptionStatus {
    /// The gate allows interception.
    pub enabled: bool,
    /// Interception is in effect now.
    pub applied: bool,
    /// The Auto* kinds routed through storage while applied.
    pub intercepted: Vec<&'static str>,
    /// The gate's reasons.
    pub reasons: Vec<String>,
}

/// Applies interception (idempotent). An explicit call wins over the gate.
pub fn apply() {
    let mut s = state();
    s.applied = true;
    s.restored = false;
}

/// Restores plain Hub-cache loading; automatic application stays off until
/// [`apply`] is called.
pub fn restore() {
    let mut s = state();
    s.applied = false;
    s.restored = true;
}

/// Same as [`restore`].
pub fn disable() {
    restore();
}

/// Applies interception on first use if the gate allows and nobody restored
/// it; returns whether loading is intercepted.
pub(crate) fn ensure_applied(gate: &Gate) -> bool {
    let mut s = state();
    if !s.applied && !s.restored && gate.intercept {
        tracing::debug!("interception applied on first use");
        s.applied = true;
    }
    s.applied
}

/// Whether loading would be intercepted now (the gate and explicit calls).
pub fn should_intercept(gate: &Gate) -> bool {
    let s = state();
    s.applied || (!s.restored && gate.intercept)
}

/// Current interception status under `gate`.
pub fn status(gate: &Gate) -> InterceptionStatus {
    let applied = state().applied;
    InterceptionStatus {
        enabled: gate.intercept,
        applied,
        intercepted: if applied {
            FileKind::ALL.iter().map(|k| k.name()).collect()
        } else {
            Vec::new()
        },
        reasons: gate.reasons.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_restore_cycle() {
        let allow = Gate::decide(Vec::<(String, String)>::new());
        let deny = Gate::decide([("CI", "true")]);
        assert!(!status(&allow).applied);
        assert!(!ensure_applied(&deny), "the gate said no");
        assert!(ensure_applied(&allow), "applied on first use");
        apply();
        apply();
        assert!(status(&allow).applied);
        assert_eq!(status(&allow).intercepted.len(), FileKind::ALL.len());
        restore();
        assert!(!ensure_applied(&allow), "restored stays restored");
        assert!(!should_intercept(&allow));
        apply();
        assert!(should_intercept(&deny), "explicit apply wins over the gate");
        restore();
    }
}
