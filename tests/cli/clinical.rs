//! `vmunet infer` / `vmunet eval` on the clinic's formats: DICOM series (shuffled names,
//! oblique, both little-endian transfer syntaxes), an Enhanced CT multi-frame file, a JPEG
//! dermoscopy photo in DICOM and NIfTI, written by pydicom / nibabel (tests/clinical/
//! make_fixtures.py); results read back by highdicom, nibabel and dciodvfy
//! (tests/clinical/check_outputs.py), never by the code under test.
//!
//! What this group adds: the DICOM / NIfTI readers, the DICOM SEG and NIfTI writers and the
//! 3-D evaluation, checked against independent readers, across runtimes, and on bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// The Synapse classes, background first (what the 9-class export names them).
pub const CLASSES: &str =
    "background,aorta,gallbladder,kidney_l,kidney_r,liver,pancreas,spleen,stomach";

/// The test Python with pydicom, highdicom, nibabel and pynetdicom, or a SKIP message.
pub fn clinical_python() -> Option<PathBuf> {
    let py = python()?;
    let ok = Command::new(&py)
        .args(["-c", "import pydicom, highdicom, nibabel, pynetdicom"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!(
            "SKIP: pydicom / highdicom / nibabel / pynetdicom missing (run through `make test`)"
        );
        return None;
    }
    Some(py)
}

/// tests/clinical/NAME.
pub fn script(name: &str) -> PathBuf {
    vmunet_testdata::repo_root()
        .join("tests/clinical")
        .join(name)
}

/// The fixtures of make_fixtures.py in `dir/fx` (and the photo's JPEG from ../shared when it
/// is there, else a generated one).
pub fn fixtures(py: &Path, dir: &Path) -> PathBuf {
    let fx = dir.join("fx");
    let o = Command::new(py)
        .arg(script("make_fixtures.py"))
        .arg(&fx)
        .output()
        .unwrap();
    assert!(o.status.success(), "make_fixtures.py: {}", all_output(&o));
    fx
}

/// A small 9-class model (fresh weights) exported at 64x64 with the Synapse preprocessing:
/// (checkpoint, ONNX file).
pub fn ct_model(dir: &Path) -> (PathBuf, PathBuf) {
    let ck = dir.join("ct9.bpk");
    let onnx = dir.join("ct9.onnx");
    let o = run(&[
        "init",
        "--preset",
        "small",
        "--num-classes",
        "9",
        "--seed",
        "7",
        "-o",
        s(&ck),
    ]);
    assert!(o.status.success(), "{}", all_output(&o));
    let o = run(&[
        "export",
        "--checkpoint",
        s(&ck),
        "--size",
        "64",
        // The custom scan: tract plans it in a fraction of the time the Scan loop takes (the
        // tests run a few dozen segmentations).
        "--scan",
        "custom",
        "-o",
        s(&onnx),
    ]);
    assert!(o.status.success(), "{}", all_output(&o));
    assert!(
        stdout(&o).contains("preprocessing: synapse"),
        "{}",
        stdout(&o)
    );
    (ck, onnx)
}

/// check_outputs.py on `out/name.*` made from `source`; panics with its report on failure.
pub fn check_outputs(
    py: &Path,
    source: &Path,
    out: &Path,
    name: &str,
    extra: &[&str],
) -> serde_json::Value {
    let o = Command::new(py)
        .arg(script("check_outputs.py"))
        .args(["--source", s(source), "--out-dir", s(out), "--name", name])
        .args(extra)
        .output()
        .unwrap();
    let text = all_output(&o);
    assert!(o.status.success(), "check_outputs.py {name}: {text}");
    serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
}

fn labels(p: &Path) -> (vmunet_clinical::Geometry, Vec<u8>) {
    vmunet_clinical::nifti::read_labels(p).unwrap()
}

/// The mean DSC line of `vmunet eval --pred P --truth T`.
fn eval_json(pred: &Path, truth: &Path, dir: &Path) -> serde_json::Value {
    let j = dir.join("eval.json");
    let o = run(&[
        "eval",
        "--pred",
        s(pred),
        "--truth",
        s(truth),
        "--json",
        s(&j),
    ]);
    assert!(o.status.success(), "{}", all_output(&o));
    serde_json::from_slice(&std::fs::read(&j).unwrap()).unwrap()
}

/// The DICOM series (explicit and implicit VR, shuffled names, oblique), the Enhanced CT
/// file, a folder of two series and the NIfTI copy (another axis order) give the same labels
/// at the same world positions; every SEG passes highdicom (segments, codes, references,
/// pixels = the NIfTI labels), dciodvfy and nibabel (the source affine); LABELMAP too.
#[test]
fn dicom_series_enhanced_ct_and_nifti_segment_alike_and_pass_independent_readers() {
    let Some(py) = clinical_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixtures(&py, tmp.path());
    let (_, model) = ct_model(tmp.path());
    let out = tmp.path().join("out");
    let o = run(&[
        "infer",
        "--model",
        s(&model),
        s(&fx.join("ct")),
        s(&fx.join("ct-implicit")),
        s(&fx.join("enhanced-ct.dcm")),
        s(&fx.join("two-series")),
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", all_output(&o));
    let text = stdout(&o);
    assert!(text.contains("synapse preprocessing at 64"), "{text}");
    // The folder of two series: the 20-slice one is segmented, the scout reported.
    assert!(text.contains("also in the folder"), "{text}");
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("two-series.json")).unwrap()).unwrap();
    assert_eq!(rec["series"]["images"], 20, "{rec}");
    assert_eq!(rec["other_series"][0]["images"], 3, "{rec}");
    // --series picks the other one; an unknown UID is refused with the UIDs found.
    let scout = rec["other_series"][0]["series_uid"]
        .as_str()
        .unwrap()
        .to_string();
    let o = run(&[
        "infer",
        "--model",
        s(&model),
        s(&fx.join("two-series")),
        "--series",
        &scout,
        "--out",
        s(&tmp.path().join("scout")),
    ]);
    assert!(o.status.success(), "{}", all_output(&o));
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("scout/two-series.json")).unwrap())
            .unwrap();
    assert_eq!(rec["series"]["series_uid"], scout.as_str(), "{rec}");
    assert_eq!(rec["dims"][2], 3, "{rec}");
    let o = run(&[
        "infer",
        "--model",
        s(&model),
        s(&fx.join("two-series")),
        "--series",
        "1.2.3",
        "--out",
        s(&tmp.path().join("none")),
    ]);
    assert!(
        !o.status.success()
            && all_output(&o).contains("no series 1.2.3")
            && all_output(&o).contains(&scout),
        "{}",
        all_output(&o)
    );

    for (src, name) in [
        (fx.join("ct"), "ct"),
        (fx.join("ct-implicit"), "ct-implicit"),
        (fx.join("enhanced-ct.dcm"), "enhanced-ct"),
    ] {
        check_outputs(
            &py,
            &src,
            &out,
            name,
            &[
                "--expect-classes",
                CLASSES,
                "--labels",
                s(&fx.join("ct_labels.nii.gz")),
            ],
        );
    }
    // Same voxels, same labels: byte-equal across the three DICOM encodings.
    let (g, want) = labels(&out.join("ct.nii.gz"));
    let counts = want.iter().fold([0usize; 9], |mut c, &l| {
        c[usize::from(l)] += 1;
        c
    });
    assert!(
        counts.iter().filter(|&&c| c > 0).count() >= 3,
        "too few classes to compare: {counts:?}"
    );
    for n in ["ct-implicit", "enhanced-ct"] {
        let (g2, l2) = labels(&out.join(format!("{n}.nii.gz")));
        assert_eq!(g2.dims, g.dims);
        assert_eq!(l2, want, "{n}");
    }
    // The NIfTI copy stores the voxels in another axis order: the same labels at the same
    // world positions (eval compares in the canonical orientation: every organ scores as
    // the DICOM labels against themselves; organs absent from both score 0, as officially).
    let nout = tmp.path().join("out-nii");
    let o = run(&[
        "infer",
        "--model",
        s(&model),
        s(&fx.join("ct.nii.gz")),
        "--out",
        s(&nout),
    ]);
    assert!(o.status.success(), "{}", all_output(&o));
    assert!(
        !nout.join("ct.seg.dcm").exists(),
        "a NIfTI source gets no SEG"
    );
    check_outputs(&py, &fx.join("ct.nii.gz"), &nout, "ct", &[]);
    let (gn, ln) = labels(&nout.join("ct.nii.gz"));
    assert_ne!(
        gn.dims, g.dims,
        "the NIfTI fixture should use another axis order"
    );
    let m = eval_json(&nout.join("ct.nii.gz"), &out.join("ct.nii.gz"), tmp.path());
    let itself = eval_json(&out.join("ct.nii.gz"), &out.join("ct.nii.gz"), tmp.path());
    assert_eq!(m["organs"], itself["organs"], "{m}");
    assert_eq!(m["hd95"], 0.0, "{m}");
    assert_ne!(ln, want, "raw buffers differ (another axis order)");

    // LABELMAP.
    let lm = tmp.path().join("out-labelmap");
    let o = run(&[
        "infer",
        "--model",
        s(&model),
        s(&fx.join("ct")),
        "--seg-type",
        "labelmap",
        "--out",
        s(&lm),
    ]);
    assert!(o.status.success(), "{}", all_output(&o));
    check_outputs(
        &py,
        &fx.join("ct"),
        &lm,
        "ct",
        &["--expect-classes", CLASSES, "--seg-type", "labelmap"],
    );
}

/// tract, ONNX Runtime and burn (the checkpoint itself, batched slices) give the same labels.
#[test]
fn every_runtime_gives_the_same_labels_for_a_series() {
    let Some(py) = clinical_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixtures(&py, tmp.path());
    let (ck, model) = ct_model(tmp.path());
    let series = fx.join("ct");
    let run_to = |args: &[&str], out: &Path| {
        let mut a: Vec<&str> = vec!["infer"];
        a.extend_from_slice(args);
        a.extend_from_slice(&[s(&series), "--out", s(out), "--batch", "6"]);
        let o = run(&a);
        assert!(o.status.success(), "{}", all_output(&o));
        labels(&out.join("ct.nii.gz")).1
    };
    let tract = run_to(&["--model", s(&model)], &tmp.path().join("tract"));
    let burn = run_to(
        &["--checkpoint", s(&ck), "--size", "64"],
        &tmp.path().join("burn"),
    );
    assert_eq!(burn, tract, "burn and tract labels differ");
    if ort_lib().is_some() {
        let ort = run_to(
            &["--model", s(&model), "--runtime", "ort"],
            &tmp.path().join("ort"),
        );
        assert_eq!(ort, tract, "ONNX Runtime and tract labels differ");
    }
}

/// A dermoscopy photo stored as JPEG in a VL Photographic DICOM: segmented as the JPEG file is
/// (same mask), its SEG readable by highdicom with the lesion's codes.
#[test]
fn a_dicom_dermoscopy_photo_is_segmented_as_its_jpeg() {
    let Some(py) = clinical_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixtures(&py, tmp.path());
    let out = tmp.path().join("out");
    let o = run(&["infer", s(&fx.join("photo.dcm")), "--out", s(&out)]);
    assert!(o.status.success(), "{}", all_output(&o));
    assert!(stdout(&o).contains("isic preprocessing"), "{}", stdout(&o));
    check_outputs(&py, &fx.join("photo.dcm"), &out, "photo", &[]);
    let jpg = tmp.path().join("jpg");
    let o = run(&["infer", s(&fx.join("photo.jpg")), "--out", s(&jpg)]);
    assert!(o.status.success(), "{}", all_output(&o));
    let mask = image::open(jpg.join("photo_mask.png")).unwrap().to_luma8();
    let (g, l) = labels(&out.join("photo.nii.gz"));
    assert_eq!(
        (g.dims[0], g.dims[1]),
        (mask.width() as usize, mask.height() as usize)
    );
    let same = mask
        .as_raw()
        .iter()
        .zip(&l)
        .filter(|(m, l)| (**m > 0) == (**l > 0))
        .count();
    assert_eq!(
        same,
        l.len(),
        "the DICOM photo's labels differ from the JPEG's mask"
    );
    assert!(
        l.iter().any(|&v| v > 0),
        "no lesion found: the comparison would be empty"
    );
}

/// Each bad input: a non-zero exit, the file and what is wrong named, nothing written.
#[test]
fn bad_clinical_inputs_fail_clearly_and_write_nothing() {
    let Some(py) = clinical_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixtures(&py, tmp.path());
    let (_, model) = ct_model(tmp.path());
    let bad = fx.join("bad");
    for (input, words) in [
        (
            "missing-slice",
            &["missing-slice", "gap", "1 slice(s) missing", "2.500 mm"][..],
        ),
        (
            "mixed-orientation",
            &["mixed-orientation", "mixed orientations"][..],
        ),
        (
            "non-image.dcm",
            &[
                "non-image.dcm",
                "1.2.840.10008.5.1.4.1.1.88.11",
                "not an image",
            ][..],
        ),
        (
            "truncated.dcm",
            &["truncated.dcm", "not a readable DICOM file"][..],
        ),
        (
            "wrong-ts.dcm",
            &[
                "wrong-ts.dcm",
                "JPEG 2000 Lossless",
                "not decoded",
                "supported:",
            ][..],
        ),
        ("not-dicom.dcm", &["not-dicom.dcm", "not a DICOM file"][..]),
    ] {
        let out = tmp.path().join(format!("out-{input}"));
        let o = run(&[
            "infer",
            "--model",
            s(&model),
            s(&bad.join(input)),
            "--out",
            s(&out),
        ]);
        let text = all_output(&o);
        assert!(!o.status.success(), "{input}: {text}");
        assert!(!text.contains("panicked"), "{input}: {text}");
        for w in words {
            assert!(text.contains(w), "{input}: `{w}` missing from: {text}");
        }
        assert!(
            !out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(),
            "{input}: wrote something"
        );
    }
    // A good source beside a bad one: nothing is written for either (all are read first).
    let out = tmp.path().join("out-mixed");
    let o = run(&[
        "infer",
        "--model",
        s(&model),
        s(&fx.join("ct")),
        s(&bad.join("truncated.dcm")),
        "--out",
        s(&out),
    ]);
    assert!(!o.status.success());
    assert!(!out.join("ct.nii.gz").exists() && !out.join("ct.seg.dcm").exists());
}

/// The 3-D Synapse metrics read the same labels from NIfTI, BINARY SEG and LABELMAP SEG, and
/// from a model run on the source; a perfect prediction scores DSC 1.
#[test]
fn eval_scores_nifti_and_seg_label_volumes_alike() {
    let Some(py) = clinical_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixtures(&py, tmp.path());
    let (_, model) = ct_model(tmp.path());
    let truth = fx.join("ct_labels.nii.gz");
    let perfect = eval_json(&truth, &truth, tmp.path());
    assert_eq!(perfect["dsc"], 1.0, "{perfect}");
    let (b, l) = (tmp.path().join("b"), tmp.path().join("l"));
    for (out, kind) in [(&b, "binary"), (&l, "labelmap")] {
        let o = run(&[
            "infer",
            "--model",
            s(&model),
            s(&fx.join("ct")),
            "--seg-type",
            kind,
            "--out",
            s(out),
        ]);
        assert!(o.status.success(), "{}", all_output(&o));
    }
    let from_nifti = eval_json(&b.join("ct.nii.gz"), &truth, tmp.path());
    let from_seg = eval_json(&b.join("ct.seg.dcm"), &truth, tmp.path());
    let from_labelmap = eval_json(&l.join("ct.seg.dcm"), &truth, tmp.path());
    assert_eq!(from_seg["organs"], from_nifti["organs"]);
    assert_eq!(from_labelmap["organs"], from_nifti["organs"]);
    let j = tmp.path().join("src.json");
    let o = run(&[
        "eval",
        "--model",
        s(&model),
        "--source",
        s(&fx.join("ct")),
        "--truth",
        s(&truth),
        "--json",
        s(&j),
    ]);
    assert!(o.status.success(), "{}", all_output(&o));
    let from_source: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&j).unwrap()).unwrap();
    assert_eq!(from_source["organs"], from_nifti["organs"]);
    assert!(
        from_nifti["dsc"].as_f64().unwrap() < 1.0,
        "an untrained model cannot be perfect"
    );
    // A CT volume given as ground truth is refused, naming the file and the voxel.
    let o = run(&[
        "eval",
        "--pred",
        s(&b.join("ct.nii.gz")),
        "--truth",
        s(&fx.join("ct.nii.gz")),
    ]);
    let text = all_output(&o);
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("ct.nii.gz") && text.contains("is not a label"),
        "{text}"
    );
}
