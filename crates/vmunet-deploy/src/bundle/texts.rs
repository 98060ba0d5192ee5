//! The bundle's texts for people and for the device: `run.sh`, the systemd unit and the
//! README, from the templates in `src/templates/` (`{{name}}` placeholders, filled in one
//! pass).

use std::fmt::Write as _;

use super::info::BundleInfo;

const RUN_SH: &str = include_str!("../templates/run.sh");
const SYSTEMD_UNIT: &str = include_str!("../templates/vmunet.service");
const README: &str = include_str!("../templates/README.md");
const README_ORT_OPS: &str = include_str!("../templates/README-ort-ops.md");

/// `template` with each `{{name}}` replaced by its value in `values`, in one pass (a value
/// is never searched for placeholders); a placeholder without a value is left as it is.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let (before, from) = rest.split_at(start);
        out.push_str(before);
        let value = from[2..].find("}}").and_then(|end| {
            let name = &from[2..2 + end];
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v, end + 4))
        });
        match value {
            Some((v, len)) => {
                out.push_str(v);
                rest = &from[len..];
            }
            None => {
                out.push_str("{{");
                rest = &from[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `run.sh`: one entry point for the technician and for systemd.
pub fn run_script(info: &BundleInfo) -> String {
    let model = info
        .models
        .first()
        .map(|m| m.file.as_str())
        .unwrap_or("models/model.onnx");
    fill(
        RUN_SH,
        &[
            ("profile", &info.profile),
            ("version", &info.toolkit_version),
            ("arch", &info.arch.to_string()),
            ("model", model),
        ],
    )
}

/// The systemd unit template (`@BUNDLE@` and `@USER@` are filled in by `run.sh
/// install-service`).
pub fn systemd_unit(info: &BundleInfo) -> String {
    fill(SYSTEMD_UNIT, &[("profile", &info.profile)])
}

/// The bundle's README.
pub fn readme(info: &BundleInfo) -> String {
    let mut models = String::new();
    for m in &info.models {
        let _ = writeln!(
            models,
            "| `{}` | {} | {} | {} | `{}` |",
            m.file,
            m.scan.as_deref().unwrap_or("-"),
            m.precision.as_deref().unwrap_or("-"),
            m.input.replace('`', ""),
            m.sha256
        );
    }
    fill(
        README,
        &[
            ("profile", &info.profile),
            ("version", &info.toolkit_version),
            ("created", &info.created),
            ("arch", &info.arch.to_string()),
            ("runtime", &info.runtime),
            ("providers", &info.providers.join(", ")),
            ("system", &info.expects.system),
            ("onnxruntime", &info.expects.onnxruntime),
            ("gpu", &info.expects.gpu),
            ("models", &models),
            ("ort_ops", if info.ort_ops { README_ORT_OPS } else { "" }),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::super::info::{BundledModel, Expectations};
    use super::*;
    use crate::elf::Arch;

    /// A bundle description with every field set, a model with and one without the optional
    /// fields, and text that looks like a placeholder in a value.
    fn info(ort_ops: bool) -> BundleInfo {
        BundleInfo {
            format: 1,
            toolkit_version: "0.1.0".into(),
            created: "2026-12-02T10:11:12.345Z".into(),
            profile: "jetson-orin-nano {{version}}".into(),
            runtime: "ort".into(),
            providers: vec!["tensorrt".into(), "cuda".into(), "cpu".into()],
            arch: Arch::Aarch64,
            models: vec![
                BundledModel {
                    file: "models/tiny-scan.onnx".into(),
                    sha256: "ab".repeat(32),
                    scan: Some("chunked".into()),
                    precision: Some("fp16".into()),
                    input: "input: f32[`N`, 3, 256, 256]".into(),
                    custom_op: false,
                },
                BundledModel {
                    file: "models/other.onnx".into(),
                    sha256: "cd".repeat(32),
                    scan: None,
                    precision: None,
                    input: "x: f32[1, 3, 64, 64]".into(),
                    custom_op: true,
                },
            ],
            ort_ops,
            ort_lib: Some("libonnxruntime.so.1.23.0".into()),
            expects: Expectations {
                system: "JetPack 6.1".into(),
                onnxruntime: "ONNX Runtime 1.23".into(),
                gpu: "CUDA 12.6".into(),
            },
        }
    }

    #[test]
    fn placeholders_are_filled_in_one_pass() {
        assert_eq!(
            fill("a {{x}} b {{y}} {{z}} {{x", &[("x", "{{y}}"), ("y", "2")]),
            "a {{y}} b 2 {{z}} {{x"
        );
        for t in [RUN_SH, SYSTEMD_UNIT, README] {
            let filled = fill(
                t,
                &[
                    "profile",
                    "version",
                    "arch",
                    "model",
                    "created",
                    "runtime",
                    "providers",
                    "system",
                    "onnxruntime",
                    "gpu",
                    "models",
                    "ort_ops",
                ]
                .map(|n| (n, "")),
            );
            assert!(!filled.contains("{{"), "{filled}");
        }
    }

    /// The texts as `format!` wrote them before the templates (SHA-256 of each, for
    /// `info(false)` and `info(true)`): the templates change no byte.
    #[test]
    fn texts_are_byte_identical_to_the_pre_template_ones() {
        const RUN_SH: &str = "0cbbc67a7c33bdc26b81ac3796a270693f280a29ce241b7f364f678efaf67bf0";
        const UNIT: &str = "661e2e4661c1e98e30330adddfd93c7782e84d23874336e2dcfcea4cecf1fd80";
        for (ort_ops, readme_sha) in [
            (
                false,
                "395c01bf273b9ba624a611431a03396eae4bcb1fe88cd4c962d90f545a942dfb",
            ),
            (
                true,
                "b7fcdbcc354960f06fb095ca1c6be02ea1059c9f2675bae35069240b83f8cf24",
            ),
        ] {
            let info = info(ort_ops);
            for (text, sha) in [
                (run_script(&info), RUN_SH),
                (systemd_unit(&info), UNIT),
                (readme(&info), readme_sha),
            ] {
                assert_eq!(vmunet_fs::sha256_hex(text.as_bytes()), sha, "{text}");
            }
        }
    }
}
