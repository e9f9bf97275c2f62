//! The evaluation scope: what one evaluation on this thread may still allocate through
//! built-ins, why it was stopped, and the panic boundary around it.
//!
//! [`run`] executes one evaluation inside `catch_unwind` with a fresh per-thread budget.
//! Guarded built-ins [`charge`] the bytes they are about to produce *before* producing them;
//! past the budget they fail with a regorus `LimitError`, the one error kind both regorus
//! engines propagate even where a built-in error would otherwise become undefined. A built-in
//! sck cannot answer the way OPA would [`refuse`]s the same way. Either way the stop is
//! recorded here, so the caller classifies the evaluation from the record and never from an
//! engine's error text. A panic inside the scope is caught, its message kept, and the default
//! hook (which would print it as a crash) is not called for it.
//!
//! Invariant: a result produced after a stop was recorded is never used.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use regorus::LimitError;

/// Why an evaluation was stopped by sck's built-ins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// A built-in would have exceeded the evaluation's allocation budget.
    Limit(String),
    /// A built-in was called in a way sck cannot evaluate as OPA does.
    Unsupported(String),
}

/// How one scoped evaluation ended.
#[derive(Debug)]
pub enum Ended<R> {
    /// The closure returned (its value is meaningless if `stop` is set).
    Returned(R, Option<Stop>),
    /// The closure panicked with this message.
    Panicked(String),
}

struct State {
    remaining: u64,
    stop: Option<Stop>,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
    static IN_SCOPE: Cell<bool> = const { Cell::new(false) };
    static PANIC_MESSAGE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Per-call budget when a built-in runs outside any evaluation scope (for example while
/// regorus' VM compiler folds a `default` rule): the same bound, never cumulative.
const UNSCOPED_BUDGET: u64 = 64 << 20;

/// Installs (once) a panic hook that keeps quiet about panics inside a scope and records their
/// message; every other panic goes to the previous hook unchanged.
fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_SCOPE.with(Cell::get) {
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".to_owned());
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                PANIC_MESSAGE.with(|m| *m.borrow_mut() = Some(format!("{message}{at}")));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `evaluation` with `budget` bytes for guarded built-ins, catching any panic.
pub fn run<R>(budget: u64, evaluation: impl FnOnce() -> R) -> Ended<R> {
    install_hook();
    let outer = STATE.with(|s| {
        s.borrow_mut().replace(State {
            remaining: budget,
            stop: None,
        })
    });
    let was_in_scope = IN_SCOPE.with(|f| f.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(evaluation));
    IN_SCOPE.with(|f| f.set(was_in_scope));
    let state = STATE.with(|s| std::mem::replace(&mut *s.borrow_mut(), outer));
    match result {
        Ok(value) => Ended::Returned(value, state.and_then(|s| s.stop)),
        Err(_) => Ended::Panicked(
            PANIC_MESSAGE
                .with(|m| m.borrow_mut().take())
                .unwrap_or_else(|| "panic".to_owned()),
        ),
    }
}

fn record(stop: Stop) {
    STATE.with(|s| {
        if let Some(state) = s.borrow_mut().as_mut() {
            state.stop.get_or_insert(stop);
        }
    });
}

/// The error both regorus engines propagate (never turned into undefined).
fn stop_error(usage: u64, limit: u64) -> anyhow::Error {
    anyhow::Error::new(LimitError::MemoryLimitExceeded { usage, limit })
}

/// Takes `bytes` from this evaluation's budget, or stops the evaluation when they do not fit.
pub fn charge(what: &str, bytes: u64) -> anyhow::Result<()> {
    let over = STATE.with(|s| match s.borrow_mut().as_mut() {
        Some(state) => match state.remaining.checked_sub(bytes) {
            Some(rest) => {
                state.remaining = rest;
                None
            }
            None => Some(state.remaining),
        },
        None => (bytes > UNSCOPED_BUDGET).then_some(UNSCOPED_BUDGET),
    });
    match over {
        None => Ok(()),
        Some(left) => {
            record(Stop::Limit(format!(
                "{what} would allocate about {bytes} bytes; {left} bytes are left for this evaluation"
            )));
            Err(stop_error(bytes, left))
        }
    }
}

/// Stops the evaluation: `what` cannot be evaluated the way OPA would.
pub fn refuse(what: String) -> anyhow::Error {
    record(Stop::Unsupported(what));
    stop_error(0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_add_up_to_the_budget() {
        let ended = run(100, || {
            assert!(charge("a", 60).is_ok());
            assert!(charge("b", 40).is_ok());
            charge("c", 1).is_err()
        });
        match ended {
            Ended::Returned(true, Some(Stop::Limit(message))) => assert!(message.contains("c ")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_panic_is_caught_with_its_message_and_the_scope_is_left() {
        let ended = run(1, || -> () { panic!("boom {}", 1) });
        match ended {
            Ended::Panicked(message) => assert!(message.starts_with("boom 1 at "), "{message}"),
            other => panic!("{other:?}"),
        }
        assert!(!IN_SCOPE.with(Cell::get));
        assert!(STATE.with(|s| s.borrow().is_none()));
    }

    #[test]
    fn the_first_stop_is_kept() {
        let ended = run(10, || {
            let _ = refuse("x".into());
            let _ = charge("y", 11);
        });
        assert!(matches!(ended, Ended::Returned((), Some(Stop::Unsupported(m))) if m == "x"));
    }

    #[test]
    fn outside_a_scope_only_the_single_call_is_bounded() {
        assert!(charge("small", 1 << 20).is_ok());
        assert!(charge("huge", UNSCOPED_BUDGET + 1).is_err());
    }
}
