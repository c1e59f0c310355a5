//! Third-party parsers that panic on some malformed input (the tokenizers
//! crate `expect`s inside its deserializers; symphonia's MP3 demuxer
//! subtracts past zero on some headers) are run here: the
//! panic becomes an error about the file, and a process-wide panic hook can
//! ask [`containing_panic`] to stay quiet, so the user still sees one line.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    static CONTAINING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `parse`; a panic inside it is returned as `Err` with its message.
pub fn contain<T>(parse: impl FnOnce() -> T) -> Result<T, String> {
    let outer = CONTAINING.with(|c| c.replace(true));
    let outcome = catch_unwind(AssertUnwindSafe(parse));
    CONTAINING.with(|c| c.set(outer));
    outcome.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_owned())
    })
}

/// True while [`contain`] runs on this thread: a panic now is turned into
/// an error by the caller, so a panic hook should print nothing.
/// Runs `f` outside any containment: a panic in it is reported and
/// unwinds as usual (what a decoder calls back into, such as a model fed
/// block by block, is not the decoder's to excuse).
pub fn uncontained<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            CONTAINING.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CONTAINING.with(|c| c.replace(false)));
    f()
}

pub fn containing_panic() -> bool {
    CONTAINING.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_and_the_flag_is_restored() {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| assert!(containing_panic())));
        let caught = contain(|| -> u8 { panic!("Helper: bad") });
        std::panic::set_hook(hook);
        assert_eq!(caught, Err("Helper: bad".to_owned()));
        assert!(!containing_panic());
        assert_eq!(contain(|| 7), Ok(7));
    }
}
