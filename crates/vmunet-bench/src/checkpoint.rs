//! A checkpoint or preset benchmarked in burn and, exported in each scan form, in tract and
//! ONNX Runtime, in one run.

use burn::module::Module;
use vmunet_model::LoadedModel;
use vmunet_onnx::{export, write, ExportOptions, ScanForm};
use vmunet_runtime::{BurnRuntime, RuntimeKind, Session, SessionOptions};

use crate::kernel::shapes_of;
use crate::timing::{input, profile_ops, time};
use crate::{BenchError, BenchOptions, BenchReport, KernelReport};

/// Times `loaded` in burn and, for each of `forms`, its export (chunk length `chunk`) in tract
/// (one thread, and all of them) and ONNX Runtime. `progress` receives a line per timed
/// configuration (and why ONNX Runtime was skipped, when it was).
pub fn bench_loaded(
    loaded: LoadedModel,
    forms: &[ScanForm],
    chunk: usize,
    opts: &BenchOptions,
    progress: &mut dyn FnMut(String),
) -> Result<BenchReport, BenchError> {
    let threads = opts.threads_or_all();
    let cfg = loaded.config.clone();
    let (size, batch) = (opts.size.unwrap_or(256), opts.batch.unwrap_or(1));
    let shape = [batch, cfg.input_channels, size, size];
    loaded.model.check_input(shape)?;
    let header = format!(
        "{} ({} parameters), input {:?}",
        loaded.label,
        vmunet_model::format_count(loaded.model.num_params()),
        shape
    );
    let x = input(&shape);
    let mut report = BenchReport::new(header, shape.to_vec(), threads, opts.peer.clone());
    if opts.kernel {
        report.kernel = Some(KernelReport::measure(
            &shapes_of(&cfg, size),
            opts.runs,
            threads,
        )?);
    }
    let tmp = tempdir()?;
    for &scan in forms {
        let path = tmp.0.join(format!("{scan}.onnx"));
        let export_opts = ExportOptions {
            height: size,
            width: size,
            scan,
            chunk,
            ..Default::default()
        };
        write(&export(&loaded.model, &cfg, &export_opts)?, &path)?;
        let label = if scan == ScanForm::Chunked {
            format!("chunked ({chunk})")
        } else {
            scan.to_string()
        };
        // tract single-threaded, and with its multithreaded matrix products (the chunked form
        // is timed once: it takes the longest).
        let mut counts = vec![opts.threads.unwrap_or(1)];
        if opts.threads.is_none() && threads > 1 && scan != ScanForm::Chunked {
            counts.push(threads);
        }
        for t in counts {
            let mut tract = open(&path, RuntimeKind::Tract, Some(t))?;
            report
                .rows
                .push(time(&mut tract, &x, &label, opts, progress)?);
        }
        match open(&path, RuntimeKind::Ort, opts.threads) {
            Ok(mut ort) => report
                .rows
                .push(time(&mut ort, &x, &label, opts, progress)?),
            Err(e) => progress(format!("  onnxruntime skipped: {e}")),
        }
        if opts.by_op {
            profile_ops(&path, &x, &label, opts, &mut report.by_op, progress)?;
        }
    }
    drop(tmp);
    let mut burn = BurnRuntime::new(loaded.model);
    report
        .rows
        .push(time(&mut burn, &x, "vmunet-scan kernel", opts, progress)?);
    Ok(report)
}

fn open(
    path: &std::path::Path,
    runtime: RuntimeKind,
    threads: Option<usize>,
) -> Result<Session, vmunet_runtime::RuntimeError> {
    Session::open(
        path,
        &SessionOptions {
            runtime: Some(runtime),
            threads,
            ..Default::default()
        },
    )
}

/// A temporary folder for the exports, removed when dropped.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> Result<TempDir, BenchError> {
    let dir = std::env::temp_dir().join(format!("vmunet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(vmunet_fs::FsError::at(&dir))?;
    Ok(TempDir(dir))
}
