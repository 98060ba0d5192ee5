//! Runs burn-import on every golden export (`onnx/golden/tiny-{chunked,scan,custom}.onnx`).
//!
//! Each form burn-import reads becomes a module (`cfg(burn_import_<form>)`); for a form it
//! cannot read (or reads into code that does not compile: [`KNOWN_BROKEN`]), the reason goes
//! into `refused.rs` and the exporter is left as it is (onnx/README.md records why). The
//! control-flow-free `chunked` form must import.

use std::path::Path;

#[allow(deprecated)] // burn-import 0.21 re-exports burn-onnx; the user named burn-import.
use burn_import::onnx::{LoadStrategy, ModelGen};

const FORMS: [&str; 3] = ["chunked", "scan", "custom"];

/// Forms burn-import reads but whose generated code does not compile, with the reason; they
/// are not generated (see onnx/README.md).
const KNOWN_BROKEN: [(&str, &str); 1] = [(
    "scan",
    "burn-onnx 0.21 splits graphs of 200 nodes or more into submodules and leaves a constant \
     that the Scan body reads in another submodule (`self.constant194`: unknown field); \
     `ModelGen::partition(false)` does not help, because the partition is computed and cached \
     while the weights are collected, before that setting is applied",
)];

fn main() {
    // Read at run time: a build script compiled from another checkout path is reused as is.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let golden = Path::new(&manifest).join("../../onnx/golden");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let mut refused = Vec::new();
    for form in FORMS {
        println!("cargo::rustc-check-cfg=cfg(burn_import_{form})");
        let file = golden.join(format!("tiny-{form}.onnx"));
        println!("cargo::rerun-if-changed={}", file.display());
        if let Some((_, why)) = KNOWN_BROKEN.iter().find(|(f, _)| *f == form) {
            refused.push(format!("({form:?}, {why:?})"));
            continue;
        }
        let input = file.to_string_lossy().into_owned();
        // burn-import reports what it cannot read by panicking.
        let result = std::panic::catch_unwind(|| {
            ModelGen::new()
                .input(&input)
                .out_dir(&format!("{form}/"))
                .load_strategy(LoadStrategy::Embedded)
                .run_from_script();
        });
        match result {
            Ok(()) => println!("cargo::rustc-cfg=burn_import_{form}"),
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "no message".into());
                assert!(
                    form != "chunked",
                    "burn-import cannot read {}: {why}",
                    file.display()
                );
                println!("cargo::warning=burn-import cannot read tiny-{form}.onnx: {why}");
                refused.push(format!("({form:?}, {why:?})"));
            }
        }
    }
    std::fs::write(
        Path::new(&out).join("refused.rs"),
        format!("&[{}]", refused.join(", ")),
    )
    .expect("writing refused.rs");
}
