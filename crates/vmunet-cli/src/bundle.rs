//! `vmunet bundle` (device bundle or, with --triton, a Triton model repository) and `vmunet
//! verify-bundle`. The work is `vmunet_deploy`'s; this file parses and prints.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use vmunet_deploy::verify::VerifyOptions;
use vmunet_deploy::{create_bundle, verify_bundle, write_triton_repo, BundleSpec, TritonSpec};

/// Arguments of `vmunet bundle`.
#[derive(clap::Args)]
pub struct Args {
    /// Device profile (devices/*.toml); required for a device bundle, optional with --triton
    /// (it adds the TensorRT / CUDA settings).
    #[arg(long, value_name = "PROFILE.toml")]
    profile: Option<PathBuf>,
    /// ONNX model(s); in a device bundle the first is the service's.
    #[arg(long = "model", value_name = "model.onnx", required = true)]
    models: Vec<PathBuf>,
    /// The vmunet binary for the device (default: this one); `make jetson` builds the aarch64
    /// one.
    #[arg(long, value_name = "FILE", conflicts_with = "triton")]
    binary: Option<PathBuf>,
    /// libvmunet_ort_ops.so for the target (default: beside --binary); needed by custom-scan
    /// models.
    #[arg(long, value_name = "FILE")]
    ort_ops: Option<PathBuf>,
    /// An ONNX Runtime library to ship in the bundle's lib/ (default: the device's own).
    #[arg(long, value_name = "FILE", conflicts_with = "triton")]
    ort_lib: Option<PathBuf>,
    /// Replace an existing bundle folder.
    #[arg(long, conflicts_with = "triton")]
    force: bool,
    /// Write a Triton Inference Server model repository (ONNX Runtime back-end) instead.
    #[arg(long)]
    triton: bool,
    /// Triton: model name (default: the file stem; one model only).
    #[arg(long, requires = "triton")]
    name: Option<String>,
    /// Triton: the largest batch dynamic batching forms.
    #[arg(long, default_value_t = 8, requires = "triton")]
    max_batch: usize,
    /// Triton: where the repository is mounted on the server.
    #[arg(long, default_value = "/models", requires = "triton")]
    mount: String,
    /// Triton: folder on the server for TensorRT's engine and timing caches.
    #[arg(long, default_value = "/tmp/vmunet-trt-cache", requires = "triton")]
    trt_cache: String,
    /// Output folder (the bundle, or the Triton repository).
    #[arg(short, long, value_name = "DIR")]
    out: PathBuf,
}

/// Runs `vmunet bundle`.
pub fn run(a: Args) -> Result<()> {
    if a.triton {
        return triton(a);
    }
    let Some(profile) = a.profile.clone() else {
        bail!("a device bundle needs --profile devices/NAME.toml (or pass --triton)");
    };
    let binary = match &a.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("cannot locate this vmunet binary")?,
    };
    let report = create_bundle(&BundleSpec {
        profile,
        models: a.models.clone(),
        binary,
        ort_ops: a.ort_ops.clone(),
        ort_lib: a.ort_lib.clone(),
        out: a.out.clone(),
        force: a.force,
    })?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    print!("{}", report.summary());
    Ok(())
}

fn triton(a: Args) -> Result<()> {
    if a.name.is_some() && a.models.len() > 1 {
        bail!("--name names one model; give one --model");
    }
    let profile = crate::args::load_profile(a.profile.as_deref())?;
    let ort_ops = a.ort_ops.clone().or_else(|| {
        let exe = std::env::current_exe().ok()?;
        Some(exe.parent()?.join(vmunet_deploy::bundle::ORT_OPS_LIB)).filter(|p| p.is_file())
    });
    for model in &a.models {
        let r = write_triton_repo(&TritonSpec {
            model: model.clone(),
            profile: profile.clone(),
            name: a.name.clone(),
            max_batch: a.max_batch,
            ort_ops: ort_ops.clone(),
            mount: a.mount.clone(),
            trt_cache: a.trt_cache.clone(),
            out: a.out.clone(),
        })?;
        for w in &r.warnings {
            eprintln!("warning: {}: {w}", model.display());
        }
        println!("{}", r.summary());
    }
    println!(
        "repository {}: tritonserver --model-repository {} (mounted at {})",
        a.out.display(),
        a.out.display(),
        a.mount
    );
    Ok(())
}

/// Arguments of `vmunet verify-bundle`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The bundle folder.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Check the files only (no model is opened).
    #[arg(long)]
    files_only: bool,
    /// Open the models but run none.
    #[arg(long, conflicts_with = "files_only")]
    no_run: bool,
}

/// Runs `vmunet verify-bundle`.
pub fn verify(a: VerifyArgs) -> Result<()> {
    let r = verify_bundle(
        &a.dir,
        VerifyOptions {
            files_only: a.files_only,
            no_run: a.no_run,
        },
    )?;
    print!("{}", r.summary());
    if r.ok() {
        return Ok(());
    }
    for p in &r.problems {
        eprintln!("{}: {p}", r.dir.display());
    }
    bail!(
        "bundle {} failed verification: {} problem(s)",
        r.dir.display(),
        r.problems.len()
    )
}
