//! Measuring one model of the report: size, multiply-adds, latency per runtime, the paper's
//! metrics in its runtime, and parity against float32 in the same runtime.

use std::path::Path;
use std::time::Instant;

use vmunet_data::{Array, Preprocess};
use vmunet_model::CpuBackend;
use vmunet_runtime::{count_macs, Runtime, RuntimeKind, Session, SessionOptions};
use vmunet_train::eval::{evaluate, EvalOptions, EvalReport, RuntimeSource};

use super::job::{Latency, ReportJob, ReportRow};
use super::variants::Variant;
use crate::{CalibrationSet, CompressError};

fn open(path: &Path, runtime: RuntimeKind, threads: usize) -> Result<Session, CompressError> {
    Ok(Session::open(
        path,
        &SessionOptions {
            runtime: Some(runtime),
            threads: Some(threads),
            ..Default::default()
        },
    )?)
}

/// Median and 95th percentile ms per forward after three warm-up runs.
fn time(session: &mut Session, x: &Array, runs: usize) -> Result<(f64, f64), CompressError> {
    for _ in 0..3 {
        session.run(x)?;
    }
    let mut t = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t0 = Instant::now();
        session.run(x)?;
        t.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(f64::total_cmp);
    let q = |p: f64| t[((t.len() - 1) as f64 * p).round() as usize];
    Ok((q(0.5), q(0.95)))
}

/// Max |logit diff|, mask agreement and Dice between the masks of the float32 logits
/// `reference` (one per input) and what `b` computes on `xs`.
fn parity(
    reference: &[Array],
    b: &mut Session,
    xs: &[Array],
) -> Result<(f64, f64, f64), CompressError> {
    let (mut max, mut same, mut all, mut inter, mut sum) = (0f64, 0usize, 0usize, 0usize, 0usize);
    for (ya, x) in reference.iter().zip(xs) {
        let yb = b.run(x)?;
        for (p, q) in ya.data.iter().zip(&yb.data) {
            max = max.max((p - q).abs() as f64);
            let (mp, mq) = (*p > 0.0, *q > 0.0);
            same += usize::from(mp == mq);
            inter += usize::from(mp && mq);
            sum += usize::from(mp) + usize::from(mq);
            all += 1;
        }
    }
    let dice = if sum == 0 {
        1.0
    } else {
        2.0 * inter as f64 / sum as f64
    };
    Ok((max, same as f64 / all.max(1) as f64, dice))
}

/// The paper's metrics (DSC, mIoU, Acc, Sen, Spe) of a variant in its runtime.
fn metrics(
    v: &Variant,
    job: &ReportJob,
    size: usize,
) -> Result<(String, usize, [f64; 5]), CompressError> {
    let mut session = open(&v.path, v.runtime, job.threads)?;
    let label = format!("{} ({})", v.name, session.description());
    let mut source = RuntimeSource {
        runtime: &mut session,
        classes: 1,
    };
    let opts = EvalOptions {
        size: Some(size),
        max_images: job.max_images,
        ..Default::default()
    };
    let report = evaluate::<CpuBackend>(
        &mut source,
        &label,
        &job.data,
        &opts,
        &Default::default(),
        |_, _| {},
    )?;
    match report {
        EvalReport::Isic { report, .. } => {
            let m = report.metrics;
            Ok((
                v.runtime.as_str().to_string(),
                report.images,
                [m.dsc, m.miou, m.acc, m.sen, m.spe],
            ))
        }
        EvalReport::Synapse { .. } => Err(CompressError::Unsupported(
            "the report scores binary (ISIC) models".into(),
        )),
    }
}

/// Measures every variant: one row each, float32 first.
pub(super) fn measure_all(
    job: &ReportJob,
    variants: &[Variant],
    runtimes: &[RuntimeKind],
    fp32: &Path,
    pre: &Preprocess,
    size: usize,
    progress: &mut dyn FnMut(String),
) -> Result<Vec<ReportRow>, CompressError> {
    // Parity inputs: validation images, preprocessed.
    let val = CalibrationSet::from_dir(&job.data.join("val/images"), job.parity_images, pre)?;
    let x = val.inputs[0].clone();
    let mut rows = Vec::new();
    let mut reference: Vec<(RuntimeKind, Vec<Array>)> = Vec::new();
    for v in variants {
        progress(format!("measuring {} ...", v.name));
        let bytes = std::fs::metadata(&v.path).map(|m| m.len()).unwrap_or(0);
        let macs = count_macs(&v.path, &x.shape)?;
        let mut latency = Vec::new();
        for &rt in runtimes {
            let mut s = open(&v.path, rt, job.threads)?;
            let (p50, p95) = time(&mut s, &x, job.runs)?;
            latency.push(Latency {
                runtime: rt.as_str().to_string(),
                p50_ms: p50,
                p95_ms: p95,
            });
        }
        let (metrics_runtime, images, m) = metrics(v, job, size)?;
        if !reference.iter().any(|(rt, _)| *rt == v.runtime) {
            // The float32 logits, once per runtime.
            let mut s = open(fp32, v.runtime, job.threads)?;
            let ys = val
                .inputs
                .iter()
                .map(|x| s.run(x))
                .collect::<Result<Vec<_>, _>>()?;
            reference.push((v.runtime, ys));
        }
        let logits = reference
            .iter()
            .find(|(rt, _)| *rt == v.runtime)
            .map(|(_, ys)| ys.as_slice())
            .unwrap_or_default();
        let mut candidate = open(&v.path, v.runtime, job.threads)?;
        let (max, agree, dice) = parity(logits, &mut candidate, &val.inputs)?;
        rows.push(ReportRow {
            name: v.name.to_string(),
            file: v.path.display().to_string(),
            bytes,
            parameters: v.parameters,
            gmacs: macs as f64 / 1e9,
            latency,
            metrics_runtime,
            images,
            dsc: m[0],
            miou: m[1],
            acc: m[2],
            sen: m[3],
            spe: m[4],
            parity_max_abs_logit_diff: max,
            parity_mask_agreement: agree,
            parity_mask_dice: dice,
        });
    }
    Ok(rows)
}
