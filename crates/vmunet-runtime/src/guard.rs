//! Containing a panic inside a back-end: the model's failure becomes a [`RuntimeError`] that
//! names the file, and the process goes on.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use crate::RuntimeError;

/// The text of a panic payload (`panic!` with a literal or a formatted message).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Runs `f`, turning a panic into [`RuntimeError::Panicked`] for `runtime` while `stage`
/// (`loading`, `running`) the model at `path`.
///
/// `f` is asserted unwind-safe: callers either drop everything `f` touched (opening) or mark
/// their session poisoned when this returns a panic (running).
pub(crate) fn contain<T>(
    runtime: &str,
    stage: &'static str,
    path: &Path,
    f: impl FnOnce() -> Result<T, RuntimeError>,
) -> Result<T, RuntimeError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(RuntimeError::Panicked {
            runtime: runtime.to_string(),
            stage,
            path: path.to_path_buf(),
            message: panic_message(payload.as_ref()),
        })
    })
}

/// Session state after a run: usable, or poisoned by a panic in an earlier run.
#[derive(Debug, Default)]
pub(crate) struct Poison(bool);

impl Poison {
    /// Runs one batch under [`contain`], refusing when an earlier run panicked and recording a
    /// new panic.
    pub(crate) fn run<T>(
        &mut self,
        runtime: &str,
        path: &Path,
        f: impl FnOnce() -> Result<T, RuntimeError>,
    ) -> Result<T, RuntimeError> {
        if self.0 {
            return Err(RuntimeError::Poisoned {
                runtime: runtime.to_string(),
                path: path.to_path_buf(),
            });
        }
        let r = contain(runtime, "running", path, f);
        if matches!(r, Err(RuntimeError::Panicked { .. })) {
            self.0 = true;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_naming_the_file_and_poisons() {
        let path = Path::new("model.onnx");
        let mut p = Poison::default();
        let e = p
            .run("tract", path, || -> Result<(), _> {
                panic!("index 7 out of range")
            })
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "tract panicked while running model.onnx: index 7 out of range"
        );
        let again = p.run("tract", path, || Ok(())).unwrap_err();
        assert!(matches!(again, RuntimeError::Poisoned { .. }), "{again}");
        assert!(again.to_string().contains("model.onnx"));
    }

    #[test]
    fn errors_and_results_pass_through() {
        let path = Path::new("m.onnx");
        assert_eq!(contain("ort", "loading", path, || Ok(3)).unwrap(), 3);
        let mut p = Poison::default();
        let e = p
            .run("ort", path, || -> Result<(), _> {
                Err(RuntimeError::Backend {
                    runtime: "ort".into(),
                    message: "bad".into(),
                })
            })
            .unwrap_err();
        assert!(matches!(e, RuntimeError::Backend { .. }));
        // An ordinary error does not poison the session.
        assert_eq!(p.run("ort", path, || Ok(1)).unwrap(), 1);
    }
}
