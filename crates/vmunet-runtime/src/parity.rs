//! Parity: one reference model against the runtimes that run its export, on the same inputs.
//! Reports max / mean |logit diff|, mask agreement and Dice between masks, serialisable as
//! JSON and printable as a table.

use std::path::PathBuf;

use serde::Serialize;
use vmunet_data::{activate, load_image, mask_from_probabilities, preprocess, Array, Preprocess};

use crate::{Runtime, RuntimeError};

/// One named input tensor `(1, C, H, W)`.
#[derive(Debug, Clone)]
pub struct ParityInput {
    /// A label for reports (`random-0`, an image path).
    pub name: String,
    /// The preprocessed input.
    pub input: Array,
}

/// `count` seeded random inputs `(1, c, h, w)` in the preprocessed range [0, 255].
pub fn random_inputs(count: usize, c: usize, h: usize, w: usize) -> Vec<ParityInput> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..count)
        .map(|r| {
            let data = (0..c * h * w)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 40) as f32 / (1u64 << 24) as f32 * 255.0
                })
                .collect();
            ParityInput {
                name: format!("random-{r}"),
                input: Array {
                    shape: vec![1, c, h, w],
                    data,
                },
            }
        })
        .collect()
}

/// Decodes and preprocesses `files` as `infer` does.
pub fn image_inputs(
    files: &[PathBuf],
    c: usize,
    h: usize,
    w: usize,
) -> Result<Vec<ParityInput>, vmunet_data::DataError> {
    let pre = Preprocess {
        height: h,
        width: w,
        channels: c,
    };
    files
        .iter()
        .map(|p| {
            let t = preprocess(&load_image(p)?, &pre);
            Ok(ParityInput {
                name: p.display().to_string(),
                input: Array {
                    shape: vec![1, c, h, w],
                    data: t.data,
                },
            })
        })
        .collect()
}

/// One runtime's agreement with the reference over every input.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RuntimeParity {
    /// The runtime as it describes itself (or its name when it could not open).
    pub runtime: String,
    /// Whether it ran.
    pub ran: bool,
    /// Why it did not run.
    pub error: Option<String>,
    /// Largest |logit difference| over all inputs (NaN counts as infinite).
    pub max_abs_diff: f32,
    /// Mean |logit difference|.
    pub mean_abs_diff: f64,
    /// Smallest fraction of pixels whose mask class agrees, over the inputs.
    pub min_mask_agreement: f64,
    /// Smallest Dice ([`vmunet_metrics::dice`]) between the foreground masks, over the inputs
    /// where at least one of the two masks has foreground (`None` when no input has any:
    /// agreement then says everything).
    pub min_dice: Option<f64>,
    /// Ran and `max_abs_diff <= threshold`.
    pub pass: bool,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct ParityReport {
    /// The model file that was checked.
    pub model: String,
    /// What the reference is (a checkpoint in burn, or a runtime).
    pub reference: String,
    /// The max |logit diff| allowed.
    pub threshold: f32,
    /// Input names, in order.
    pub inputs: Vec<String>,
    /// One row per candidate runtime.
    pub runtimes: Vec<RuntimeParity>,
}

impl ParityReport {
    /// How many runtimes ran.
    pub fn ran(&self) -> usize {
        self.runtimes.iter().filter(|r| r.ran).count()
    }

    /// True when at least one runtime ran and every one that ran passed.
    pub fn passed(&self) -> bool {
        self.ran() > 0 && self.runtimes.iter().all(|r| !r.ran || r.pass)
    }

    /// A Markdown table, one row per runtime.
    pub fn markdown(&self) -> String {
        let mut s = String::from(
            "| runtime | max abs logit diff | mean abs diff | min mask agreement | min Dice | status |\n|---|---|---|---|---|---|\n",
        );
        for r in &self.runtimes {
            if let Some(e) = r.error.as_ref().filter(|_| !r.ran) {
                s += &format!("| {} | - | - | - | - | not run: {e} |\n", r.runtime);
                continue;
            }
            s += &format!(
                "| {} | {:.3e} | {:.3e} | {:.6} | {} | {} |\n",
                r.runtime,
                r.max_abs_diff,
                r.mean_abs_diff,
                r.min_mask_agreement,
                r.min_dice
                    .map_or("- (no foreground)".to_string(), |d| format!("{d:.6}")),
                if r.pass { "ok" } else { "FAIL" }
            );
        }
        s
    }
}

/// Foreground (class > 0) of the mask a runtime's logits give.
fn mask_of(logits: &[f32], shape: &[usize]) -> Vec<u8> {
    let mut p = logits.to_vec();
    activate(&mut p, shape);
    let classes = shape.get(1).copied().unwrap_or(1);
    let (h, w) = (
        shape.get(2).copied().unwrap_or(1),
        shape.get(3).copied().unwrap_or(1),
    );
    mask_from_probabilities(&p, classes, (h, w), (h, w), 0.5).data
}

/// A runtime to compare with the reference: its name, and the opened runtime or why it could
/// not be opened.
pub type Candidate = (String, Result<Box<dyn Runtime>, RuntimeError>);

/// Runs `reference` and every candidate on `inputs` and compares. A candidate that failed
/// to open is reported as not run (`Err` carries why); an error while running an opened one
/// is an error of the whole check.
pub fn check_parity(
    model: &str,
    reference_label: &str,
    reference: &mut dyn Runtime,
    candidates: Vec<Candidate>,
    inputs: &[ParityInput],
    threshold: f32,
) -> Result<ParityReport, RuntimeError> {
    let mut want = Vec::with_capacity(inputs.len());
    for x in inputs {
        want.push(reference.run(&x.input)?);
    }
    let mut runtimes = Vec::new();
    for (name, opened) in candidates {
        let mut rt = match opened {
            Ok(rt) => rt,
            Err(e) => {
                runtimes.push(RuntimeParity {
                    runtime: name,
                    error: Some(e.to_string()),
                    ..Default::default()
                });
                continue;
            }
        };
        let mut row = RuntimeParity {
            runtime: rt.description(),
            ran: true,
            min_mask_agreement: 1.0,
            ..Default::default()
        };
        let (mut sum, mut count) = (0f64, 0usize);
        for (x, r) in inputs.iter().zip(&want) {
            let got = rt.run(&x.input)?;
            if got.shape != r.shape {
                return Err(RuntimeError::Shape {
                    expected: format!("{:?} (the reference's output)", r.shape),
                    found: got.shape,
                });
            }
            for (g, w) in got.data.iter().zip(&r.data) {
                let d = (g - w).abs();
                row.max_abs_diff = row
                    .max_abs_diff
                    .max(if d.is_nan() { f32::INFINITY } else { d });
                sum += d as f64;
            }
            count += r.data.len();
            let (mg, mr) = (mask_of(&got.data, &got.shape), mask_of(&r.data, &r.shape));
            let same =
                mg.iter().zip(&mr).filter(|(a, b)| a == b).count() as f64 / mg.len().max(1) as f64;
            row.min_mask_agreement = row.min_mask_agreement.min(same);
            let fg = |m: &[u8]| m.iter().map(|&v| v > 0).collect::<Vec<bool>>();
            let (fg_g, fg_r) = (fg(&mg), fg(&mr));
            if fg_g.iter().chain(&fg_r).any(|&v| v) {
                let d = vmunet_metrics::dice(&fg_g, &fg_r).map_err(|e| RuntimeError::Backend {
                    runtime: row.runtime.clone(),
                    message: e.to_string(),
                })?;
                row.min_dice = Some(row.min_dice.map_or(d, |m: f64| m.min(d)));
            }
        }
        row.mean_abs_diff = sum / count.max(1) as f64;
        row.pass = row.max_abs_diff <= threshold;
        runtimes.push(row);
    }
    Ok(ParityReport {
        model: model.to_string(),
        reference: reference_label.to_string(),
        threshold,
        inputs: inputs.iter().map(|x| x.name.clone()).collect(),
        runtimes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Session, SessionOptions};

    /// A runtime that adds `offset` to its wrapped runtime's logits.
    struct Shifted(Box<dyn Runtime>, f32);
    impl Runtime for Shifted {
        fn description(&self) -> String {
            "shifted".into()
        }
        fn check(&self, shape: &[usize]) -> Result<(), RuntimeError> {
            self.0.check(shape)
        }
        fn run(&mut self, input: &Array) -> Result<Array, RuntimeError> {
            let mut y = self.0.run(input)?;
            y.data.iter_mut().for_each(|v| *v += self.1);
            Ok(y)
        }
    }

    fn open(name: &str) -> Box<dyn Runtime> {
        let p = vmunet_testdata::golden(name);
        Box::new(Session::open(&p, &SessionOptions::default()).unwrap())
    }

    #[test]
    fn identical_models_pass_and_a_shift_fails() {
        let mut reference = open("tiny-scan.onnx");
        let inputs = random_inputs(2, 3, 64, 64);
        let report = check_parity(
            "m",
            "tract",
            reference.as_mut(),
            vec![
                ("chunked".into(), Ok(open("tiny-chunked.onnx"))),
                (
                    "shifted".into(),
                    Ok(Box::new(Shifted(open("tiny-scan.onnx"), 0.5))),
                ),
                (
                    "missing".into(),
                    Err(RuntimeError::Backend {
                        runtime: "x".into(),
                        message: "no library".into(),
                    }),
                ),
            ],
            &inputs,
            1e-4,
        )
        .unwrap();
        let [chunked, shifted, missing] = &report.runtimes[..] else {
            panic!("three rows expected")
        };
        assert!(chunked.ran && chunked.pass, "{chunked:?}");
        assert!(chunked.max_abs_diff < 1e-4);
        assert!(!shifted.pass && (shifted.max_abs_diff - 0.5).abs() < 1e-5);
        assert!(!missing.ran && missing.error.as_deref().unwrap().contains("no library"));
        assert_eq!(report.ran(), 2);
        assert!(!report.passed());
        let table = report.markdown();
        assert!(
            table.contains("FAIL") && table.contains("not run"),
            "{table}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["runtimes"][0]["pass"], true);
    }
}

/// Errors of [`check_export`]: the model, the inputs, or the runtimes.
#[derive(Debug, thiserror::Error)]
pub enum ParityError {
    /// A model could not be opened or run.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// An input image could not be read.
    #[error(transparent)]
    Data(#[from] vmunet_data::DataError),
    /// The inputs asked for cannot be made.
    #[error("{0}")]
    Inputs(String),
}

/// What [`check_export`] compares.
#[derive(Debug, Clone)]
pub struct ParityJob {
    /// The exported model.
    pub model: PathBuf,
    /// Seeded random inputs.
    pub random: usize,
    /// A folder of real images (preprocessed as `infer` does).
    pub images: Option<PathBuf>,
    /// At most this many of them.
    pub max_images: usize,
    /// Input size (H = W) for size-dynamic exports.
    pub size: usize,
    /// The largest max |logit diff| that passes.
    pub threshold: f32,
    /// The `libonnxruntime.so` to load ([`crate::SessionOptions::ort_library`]).
    pub ort_library: Option<PathBuf>,
}

/// Compares the export `job.model` with `reference` (a checkpoint in burn, with its label) in
/// tract and ONNX Runtime, or, without a reference, ONNX Runtime with tract, on `job.random`
/// random inputs and the images. A runtime that cannot open the file is reported as not run.
pub fn check_export(
    job: &ParityJob,
    reference: Option<(Box<dyn Runtime>, String)>,
) -> Result<ParityReport, ParityError> {
    let file = crate::ModelFile::read(&job.model)?;
    let dim = |i: usize| match file.input.dims.get(i) {
        Some(crate::ModelDim::Fixed(v)) => Ok(*v),
        Some(crate::ModelDim::Free(_)) if i >= 2 => Ok(job.size),
        _ => Err(ParityError::Inputs(format!(
            "{}: input dimension {i} is not fixed",
            job.model.display()
        ))),
    };
    let (c, h, w) = (dim(1)?, dim(2)?, dim(3)?);
    let mut inputs = random_inputs(job.random, c, h, w);
    if let Some(dir) = &job.images {
        let files: Vec<PathBuf> = vmunet_data::image_files(std::slice::from_ref(dir))?
            .into_iter()
            .take(job.max_images)
            .collect();
        inputs.extend(image_inputs(&files, c, h, w)?);
    }
    if inputs.is_empty() {
        return Err(ParityError::Inputs(
            "no inputs: give --random N > 0 or --images DIR".into(),
        ));
    }
    let open = |kind| {
        let opts = crate::SessionOptions {
            runtime: Some(kind),
            ort_library: job.ort_library.clone(),
            ..Default::default()
        };
        crate::Session::open(&job.model, &opts)
    };
    let (mut reference, label, kinds) = match reference {
        Some((rt, label)) => (
            rt,
            label,
            vec![crate::RuntimeKind::Tract, crate::RuntimeKind::Ort],
        ),
        None => {
            let tract = open(crate::RuntimeKind::Tract)?;
            let label = tract.description();
            (
                Box::new(tract) as Box<dyn Runtime>,
                label,
                vec![crate::RuntimeKind::Ort],
            )
        }
    };
    let candidates = kinds
        .into_iter()
        .map(|kind| {
            let rt = open(kind).map(|s| Box::new(s) as Box<dyn Runtime>);
            (kind.as_str().to_string(), rt)
        })
        .collect();
    Ok(check_parity(
        &job.model.display().to_string(),
        &label,
        reference.as_mut(),
        candidates,
        &inputs,
        job.threshold,
    )?)
}
