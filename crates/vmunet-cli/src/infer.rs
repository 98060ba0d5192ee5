//! `vmunet infer` (alias `segment`): images in, masks, overlays and a timing CSV out, with any
//! runtime; or clinical sources (a DICOM series folder, a DICOM file, a NIfTI file) in, NIfTI
//! labels, a DICOM SEG and a JSON record out. The pipelines are `vmunet_runtime::Segmenter`
//! and `vmunet_clinical::ClinicalSegmenter`; this file parses and prints.

use std::path::PathBuf;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use vmunet_runtime::{ImageSet, Runtime, Segmenter, SegmenterOptions};

use crate::args::EngineArgs;

/// Arguments of `vmunet infer`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    engine: EngineArgs,
    /// Images (any format the `image` crate decodes) or folders of images; or clinical
    /// sources: DICOM series folders, DICOM files, NIfTI files (.nii, .nii.gz).
    #[arg(value_name = "IMAGE|DIR|SOURCE", required = true)]
    images: Vec<PathBuf>,
    /// Output folder for NAME_mask.png, NAME_overlay.png and timing.csv (images), or
    /// NAME.nii.gz, NAME.json and NAME.seg.dcm (clinical sources).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Model input size (H = W, a multiple of 32); fixed-size ONNX models use their own.
    #[arg(long)]
    size: Option<usize>,
    /// Foreground threshold on the probability (one-class models).
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
    /// Per-image timing CSV (default: OUT/timing.csv).
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// DICOM SEG encoding for DICOM sources: `binary` (one bit per pixel and segment) or
    /// `labelmap` (Label Map Segmentation, DICOM 2024c).
    #[arg(long, default_value = "binary")]
    seg_type: vmunet_clinical::SegType,
    /// Segment codes: a JSON file mapping class names to `{label, category, type, region?}`
    /// codes, added to the built-in table (Synapse organs, skin lesion).
    #[arg(long, value_name = "FILE.json")]
    codes: Option<PathBuf>,
    /// Slices per model run (volumes).
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// DICOM folders: segment this series (Series Instance UID) instead of the one with the
    /// most images.
    #[arg(long, value_name = "UID")]
    series: Option<String>,
    /// Clinical sources: also write NAME_preview.png, the result over the source as a viewer
    /// shows it (for DICOM, the SEG read back from its file over the slice it labels most).
    #[arg(long)]
    preview: bool,
}

/// Runs `vmunet infer`.
pub fn run(a: Args) -> Result<()> {
    let clinical = a
        .images
        .iter()
        .filter(|p| vmunet_clinical::is_clinical(p))
        .count();
    if clinical > 0 {
        if clinical < a.images.len() {
            anyhow::bail!(
                "give either images or clinical sources (DICOM, NIfTI) in one run, not both"
            );
        }
        return run_clinical(a);
    }
    // Decode everything first: a bad image stops the run before any output is written.
    let set = ImageSet::load(&a.images)?;
    let session = a.engine.open(None)?;
    let label = session.label().to_string();
    // A model that does not take this input fails here, before anything is written.
    let options = SegmenterOptions {
        size: a.size,
        threshold: a.threshold,
    };
    let mut segmenter = Segmenter::new(session, &options)
        .with_context(|| format!("{label} cannot run this input size"))?;
    let bar = ProgressBar::new(set.images.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} images, {per_sec}, eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if set.images.len() < 2 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let (rows, csv_path) = segmenter.segment_set_to(&set, &a.out, a.csv.as_deref(), |row| {
        bar.println(format!(
            "{}: {}x{} -> {} (foreground {:.1}%, model {:.3} s, total {:.3} s)",
            row.image.display(),
            row.width,
            row.height,
            row.mask.display(),
            100.0 * row.foreground,
            row.timing.inference,
            row.timing.total()
        ));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let mean = rows.iter().map(|r| r.timing.inference).sum::<f64>() / rows.len().max(1) as f64;
    println!(
        "{} images with {} in {}: mean model time {:.3} s; masks and overlays in {}, timing in {}",
        rows.len(),
        label,
        segmenter.session().description(),
        mean,
        a.out.display(),
        csv_path.display()
    );
    Ok(())
}

/// `vmunet infer` on DICOM and NIfTI sources: each read (all of them before anything is
/// written), segmented, and written as NAME.nii.gz, NAME.seg.dcm (DICOM) and NAME.json.
fn run_clinical(a: Args) -> Result<()> {
    use vmunet_clinical::{ClinicalSegmenter, JobOptions, VolumeOptions, VolumeSegmenter};
    let mut sources = Vec::new();
    for p in &a.images {
        let t = std::time::Instant::now();
        let source = vmunet_clinical::read_source_series(p, a.series.as_deref())?;
        sources.push((source, t.elapsed().as_secs_f64()));
    }
    let mut names = std::collections::BTreeSet::new();
    for (s, _) in &sources {
        if !names.insert(s.name.clone()) {
            anyhow::bail!(
                "two sources are named `{}`: their outputs would overwrite each other",
                s.name
            );
        }
    }
    let info = a.engine.burn_model_info()?;
    let session = a.engine.open(None)?;
    let label = session.label().to_string();
    let options = VolumeOptions {
        size: a.size,
        batch: a.batch,
        threshold: a.threshold,
    };
    let volumes = VolumeSegmenter::with_model_info(session, &options, info)
        .with_context(|| format!("{label} cannot run this input size"))?;
    let codes = match &a.codes {
        Some(p) => vmunet_clinical::CodeTable::with_file(p)?,
        None => vmunet_clinical::CodeTable::default(),
    };
    let mut job = ClinicalSegmenter::new(
        volumes,
        JobOptions {
            seg_type: a.seg_type,
            codes,
            preview: a.preview,
        },
    )?;
    for (source, read) in &sources {
        let r = job.run(source, *read, &a.out, &source.name)?;
        let [c, rows, d] = r.dims;
        let structures: Vec<String> = r
            .structures
            .iter()
            .filter(|s| s.voxels > 0)
            .map(|s| match s.ml {
                Some(ml) => format!("{} {ml:.1} mL", s.name),
                None => format!(
                    "{} {} pixels ({:.1} %)",
                    s.name,
                    s.voxels,
                    100.0 * s.voxels as f64 / (c * rows * d).max(1) as f64
                ),
            })
            .collect();
        println!(
            "{}: {c}x{rows}x{d} ({}), {} preprocessing at {}: read {:.2} s, model {:.2} s, total {:.2} s -> {}{}",
            r.source.display(),
            serde_json::to_value(r.format)?.as_str().unwrap_or_default(),
            r.preprocessing,
            r.input_size,
            r.timing.read,
            r.timing.segment.inference,
            r.timing.read
                + r.timing.segment.preprocess
                + r.timing.segment.inference
                + r.timing.segment.postprocess
                + r.timing.write,
            r.outputs.nifti.display(),
            r.outputs
                .seg
                .as_ref()
                .map(|p| format!(", {}", p.display()))
                .unwrap_or_default()
        );
        if let Some(s) = &r.series {
            if !r.other_series.is_empty() {
                println!(
                    "  series {} ({} images) segmented; also in the folder: {}",
                    s.series_uid,
                    s.images,
                    r.other_series
                        .iter()
                        .map(|o| format!("{} ({} images)", o.series_uid, o.images))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        println!(
            "  {}",
            if structures.is_empty() {
                "nothing found".to_string()
            } else {
                structures.join(", ")
            }
        );
    }
    Ok(())
}
