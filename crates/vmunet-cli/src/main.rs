//! `vmunet`: a thin command-line layer over the vmunet library crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod args;
mod bench;
mod bundle;
mod compress;
#[cfg(feature = "full")]
mod compress_full;
#[cfg(feature = "full")]
mod eval;
#[cfg(feature = "full")]
mod export;
mod forward;
mod infer;
mod info;
#[cfg(feature = "full")]
mod init;
mod parity;
mod serve;
#[cfg(feature = "full")]
mod synth;
#[cfg(feature = "full")]
mod train;

/// VM-UNet from checkpoint to point of care: inspect, run, segment and benchmark.
#[derive(Parser)]
#[command(name = "vmunet", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a checkpoint's (or a preset's) configuration, parameter count and stage shapes, or
    /// an ONNX file's input, metadata and history (--model).
    Info(info::Args),
    /// Save a freshly initialised model (a preset) as a checkpoint.
    #[cfg(feature = "full")]
    Init(init::Args),
    /// Run the model (checkpoint, or exported ONNX with --model) on an NCHW float32 .npy.
    Forward(forward::Args),
    /// Segment images or folders with burn, tract or ONNX Runtime: NAME_mask.png and
    /// NAME_overlay.png at the original size, and a per-image timing CSV.
    #[command(alias = "segment")]
    Infer(infer::Args),
    /// Export a checkpoint to ONNX (standard operators, dynamic batch).
    #[cfg(feature = "full")]
    Export(export::Args),
    /// Compare an ONNX export with its checkpoint (burn) in every available runtime, or
    /// ONNX Runtime with tract when no checkpoint is given.
    Parity(parity::Args),
    /// Train VM-UNet (the paper's recipe; checkpoints, resume, metrics log, curves).
    #[cfg(feature = "full")]
    Train(train::Args),
    /// Evaluate a checkpoint or an ONNX model with the paper's metrics (ISIC: mIoU, DSC, Acc, Sen, Spe;
    /// Synapse: DSC and HD95 per organ).
    #[cfg(feature = "full")]
    Eval(eval::Args),
    /// Write a generated lesion set in the ISIC layout (demo data when no real set is at hand).
    #[cfg(feature = "full")]
    SynthIsic(synth::Args),
    /// Compress an exported model: fp16, int8 (QDQ or QOperator, calibrated on real images)
    /// and the int8 sensitivity report.
    Compress(compress::Args),
    /// Time the forward pass on the CPU backend and report latency and peak memory.
    Bench(bench::Args),
    /// Write a deployment bundle for a device (binary, models, profile, run script, systemd
    /// unit, README, SHA-256 manifest), or with --triton a Triton model repository.
    Bundle(bundle::Args),
    /// Check a bundle: every file against its manifest, every model opened and run in the
    /// profile's runtime.
    VerifyBundle(bundle::VerifyArgs),
    /// The watch-folder service: every image dropped into a folder becomes a mask, an overlay
    /// and a JSON record, exactly once across crashes and restarts.
    Serve(Box<serve::Args>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(a) => info::run(a),
        Command::Forward(a) => forward::run(a),
        Command::Infer(a) => infer::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Compress(a) => compress::run(a),
        Command::Bundle(a) => bundle::run(a),
        Command::VerifyBundle(a) => bundle::verify(a),
        Command::Serve(a) => serve::run(*a),
        #[cfg(feature = "full")]
        Command::Export(a) => export::run(a),
        Command::Parity(a) => parity::run(a),
        #[cfg(feature = "full")]
        Command::Init(a) => init::run(a),
        #[cfg(feature = "full")]
        Command::Train(a) => train::run(a),
        #[cfg(feature = "full")]
        Command::Eval(a) => eval::run(a),
        #[cfg(feature = "full")]
        Command::SynthIsic(a) => synth::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
