//! `vmunet verify-bundle`: every file against the manifest, then every model opened (and run
//! once) in the profile's runtime.

use std::path::{Path, PathBuf};

use vmunet_fs::sha256_file;
use vmunet_runtime::{
    DeviceProfile, Runtime, Segmenter, SegmenterOptions, Session, SessionOptions,
};

use crate::elf::{host_arch, Arch};
use crate::manifest::{list_files, Manifest, MANIFEST_FILE};
use crate::DeployError;

/// One thing wrong with a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleProblem {
    /// A file the manifest lists is absent.
    Missing(String),
    /// A file's content differs from the manifest.
    Changed {
        /// Path inside the bundle.
        file: String,
        /// SHA-256 the manifest records.
        expected: String,
        /// SHA-256 found.
        found: String,
    },
    /// A file that is not in the manifest.
    Extra(String),
    /// A model does not open or run in the profile's runtime.
    Model {
        /// Path inside the bundle.
        file: String,
        /// Why.
        reason: String,
    },
}

impl std::fmt::Display for BundleProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing(p) => write!(f, "{p}: missing (listed in {MANIFEST_FILE})"),
            Self::Changed {
                file,
                expected,
                found,
            } => write!(
                f,
                "{file}: changed (SHA-256 {} in the manifest, {} on disk)",
                &expected[..16],
                &found[..16]
            ),
            Self::Extra(p) => write!(f, "{p}: extra file, not in {MANIFEST_FILE}"),
            Self::Model { file, reason } => write!(f, "{file}: does not open: {reason}"),
        }
    }
}

/// A model that opened.
#[derive(Debug, Clone)]
pub struct ModelCheck {
    /// Path inside the bundle.
    pub file: String,
    /// What runs it (`onnxruntime 1.23.2 (CPU)`, `tract (CPU)`).
    pub runtime: String,
    /// Execution provider.
    pub provider: &'static str,
    /// Input (H, W) it was run at.
    pub input: (usize, usize),
    /// Seconds of the one forward pass (None with `files_only` / `no_run`).
    pub seconds: Option<f64>,
}

/// The result of [`verify_bundle`].
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// The bundle.
    pub dir: PathBuf,
    /// Files checked against the manifest.
    pub files: usize,
    /// Everything wrong (empty: the bundle is intact).
    pub problems: Vec<BundleProblem>,
    /// Models that opened.
    pub models: Vec<ModelCheck>,
    /// Architecture of `bin/vmunet`.
    pub arch: Option<Arch>,
    /// True when this machine can run `bin/vmunet`.
    pub runs_here: bool,
}

impl VerifyReport {
    /// No problem found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// How much [`verify_bundle`] checks.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions {
    /// Only the files (no model is opened).
    pub files_only: bool,
    /// Open the models but run none.
    pub no_run: bool,
}

/// Checks the bundle at `dir`. Problems are collected, not raised; an error means the bundle
/// cannot be checked at all (no manifest, unreadable folder).
pub fn verify_bundle(dir: &Path, options: VerifyOptions) -> Result<VerifyReport, DeployError> {
    if !dir.is_dir() {
        return Err(DeployError::invalid(dir, "not a folder"));
    }
    let manifest = Manifest::read(dir)?;
    let mut problems = Vec::new();
    let present = list_files(dir)?;
    for (rel, expected) in &manifest.files {
        let path = dir.join(rel);
        if !path.is_file() {
            problems.push(BundleProblem::Missing(rel.clone()));
            continue;
        }
        let found = sha256_file(&path)?;
        if &found != expected {
            problems.push(BundleProblem::Changed {
                file: rel.clone(),
                expected: expected.clone(),
                found,
            });
        }
    }
    for rel in &present {
        if !manifest.files.contains_key(rel) {
            problems.push(BundleProblem::Extra(rel.clone()));
        }
    }
    let arch = Arch::of_file(&dir.join("bin/vmunet")).ok();
    let runs_here = arch == Some(host_arch());
    let mut models = Vec::new();
    if !options.files_only {
        let profile = DeviceProfile::load(&dir.join("profile.toml"));
        let model_files: Vec<&String> = manifest
            .files
            .keys()
            .filter(|p| p.starts_with("models/") && p.ends_with(".onnx"))
            .collect();
        match profile {
            Err(e) => problems.push(BundleProblem::Model {
                file: "profile.toml".into(),
                reason: e.to_string(),
            }),
            Ok(profile) => {
                for rel in model_files {
                    match check_model(&dir.join(rel), &profile, !options.no_run) {
                        Ok(mut c) => {
                            c.file = rel.clone();
                            models.push(c);
                        }
                        Err(reason) => problems.push(BundleProblem::Model {
                            file: rel.clone(),
                            reason,
                        }),
                    }
                }
            }
        }
    }
    Ok(VerifyReport {
        dir: dir.to_path_buf(),
        files: manifest.files.len(),
        problems,
        models,
        arch,
        runs_here,
    })
}

fn check_model(path: &Path, profile: &DeviceProfile, run: bool) -> Result<ModelCheck, String> {
    if !path.is_file() {
        return Err("missing".into());
    }
    let session = Session::open(
        path,
        &SessionOptions {
            profile: Some(profile.clone()),
            ..Default::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let runtime = session.description();
    let provider = session.provider();
    let mut seg =
        Segmenter::new(session, &SegmenterOptions::default()).map_err(|e| e.to_string())?;
    let input = seg.input_size();
    let seconds = if run {
        // A mid-grey image with a darker disc: any model runs it.
        let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(
            input.1 as u32,
            input.0 as u32,
            |x, y| {
                let (cx, cy) = (input.1 as f32 / 2.0, input.0 as f32 / 2.0);
                let r = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
                if r < cx.min(cy) / 2.0 {
                    image::Rgb([90, 60, 50])
                } else {
                    image::Rgb([200, 170, 150])
                }
            },
        ));
        let s = seg.segment(&img).map_err(|e| e.to_string())?;
        Some(s.timing.inference)
    } else {
        None
    };
    Ok(ModelCheck {
        file: String::new(),
        runtime,
        provider,
        input,
        seconds,
    })
}
