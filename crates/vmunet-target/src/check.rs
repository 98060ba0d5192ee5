//! One check of a model against a device target: what will not run as the profile intends.
//! Callers decide what a finding means for them (compress refuses, bundle and Triton warn,
//! serve logs).

use vmunet_onnx_ir::{InputSize, ModelMetadata, Precision, ScanForm};

use crate::{DeviceProfile, RuntimeKind};

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The model runs, but not as the profile intends (slower, partitioned, less precise).
    Warning,
    /// The model cannot run at the profile's settings.
    Error,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Warning => "warning",
            Self::Error => "error",
        })
    }
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FindingKind {
    /// The export's scan form is not the one the profile runs.
    ScanForm,
    /// TensorRT is asked for, and the model uses the custom scan operator it cannot run.
    CustomOpOnTensorRt,
    /// TensorRT int8 is asked for, and the model is not quantised (QDQ).
    Int8WithoutQuantisation,
    /// The size-dynamic export does not reach the profile's input size.
    InputTooLarge,
}

/// One thing a model does not do as the target intends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Warning or error.
    pub severity: Severity,
    /// What it is about.
    pub kind: FindingKind,
    /// In words, naming the profile (callers prefix the model file).
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl DeviceProfile {
    /// Checks a model (its vmunet metadata) against this target. A model without vmunet
    /// metadata (no recorded scan form, precision or size) is not judged on what it lacks.
    pub fn check(&self, model: &ModelMetadata) -> Vec<Finding> {
        let mut out = Vec::new();
        let warn = |kind, message| Finding {
            severity: Severity::Warning,
            kind,
            message,
        };
        if let Some(scan) = model.scan.filter(|s| *s != self.scan) {
            let note = if self.scan == ScanForm::Chunked && self.uses_tensorrt() {
                " (TensorRT compiles only the chunked form whole; the rest falls back to CUDA / CPU)"
            } else {
                ""
            };
            out.push(warn(
                FindingKind::ScanForm,
                format!(
                    "exported with --scan {scan}, but profile `{}` runs the {} form{note}",
                    self.name, self.scan
                ),
            ));
        }
        if self.runtime == RuntimeKind::Ort
            && self.uses_tensorrt()
            && model.scan == Some(ScanForm::Custom)
        {
            out.push(warn(
                FindingKind::CustomOpOnTensorRt,
                "TensorRT cannot run the custom scan operator: ONNX Runtime partitions the graph \
                 and runs SelectiveScan on the CPU (export with --scan chunked for a \
                 whole-TensorRT model)"
                    .into(),
            ));
        }
        if self.precision == Precision::Int8
            && self.uses_tensorrt()
            && model.precision.is_some_and(|p| p != Precision::Int8)
        {
            out.push(warn(
                FindingKind::Int8WithoutQuantisation,
                format!(
                    "profile `{}` runs TensorRT in int8, which needs a quantised (QDQ) model; \
                     this one is {}: vmunet compress int8 --profile ...",
                    self.name,
                    model.precision.map_or("fp32", Precision::as_str)
                ),
            ));
        }
        if let Some(InputSize::Dynamic {
            max_size: Some(max),
        }) = model.input_size
        {
            if self.input_size > max {
                out.push(Finding {
                    severity: Severity::Error,
                    kind: FindingKind::InputTooLarge,
                    message: format!(
                        "the export takes inputs up to {max} pixels a side, but profile `{}` runs \
                         {s}x{s}: export again with --max-size {s} or more",
                        self.name,
                        s = self.input_size
                    ),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(name: &str) -> DeviceProfile {
        DeviceProfile::load(&vmunet_testdata::repo_root().join("devices").join(name)).unwrap()
    }

    fn model(scan: ScanForm) -> ModelMetadata {
        ModelMetadata {
            scan: Some(scan),
            ..Default::default()
        }
    }

    #[test]
    fn findings_name_the_profile_and_what_differs() {
        let nano = profile("jetson-orin-nano.toml");
        assert!(nano.check(&model(ScanForm::Chunked)).is_empty());
        let f = nano.check(&model(ScanForm::Custom));
        assert_eq!(
            f.iter().map(|f| f.kind).collect::<Vec<_>>(),
            [FindingKind::ScanForm, FindingKind::CustomOpOnTensorRt]
        );
        assert!(f.iter().all(|f| f.severity == Severity::Warning));
        assert!(f[0].message.contains("runs the chunked form"), "{}", f[0]);
        assert!(f[0].message.contains("TensorRT compiles only"), "{}", f[0]);
        let tract = profile("cpu-tract.toml");
        let f = tract.check(&model(ScanForm::Loop));
        assert_eq!(f.len(), 1);
        assert!(!f[0].message.contains("TensorRT"), "{}", f[0]);
        // A file without vmunet metadata is not judged on what it lacks.
        assert!(nano.check(&ModelMetadata::default()).is_empty());
        // A size-dynamic export that stops short of the profile's size cannot run there.
        let small = ModelMetadata {
            scan: Some(ScanForm::Chunked),
            input_size: Some(InputSize::Dynamic {
                max_size: Some(128),
            }),
            ..Default::default()
        };
        let f = nano.check(&small);
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].severity, f[0].kind),
            (Severity::Error, FindingKind::InputTooLarge)
        );
        let mut int8 = nano.clone();
        int8.precision = Precision::Int8;
        let fp32 = ModelMetadata {
            precision: Some(Precision::Fp32),
            ..model(ScanForm::Chunked)
        };
        assert_eq!(
            int8.check(&fp32)[0].kind,
            FindingKind::Int8WithoutQuantisation
        );
    }
}
