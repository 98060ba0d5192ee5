//! `vmunet infer` (alias `segment`).

use std::path::PathBuf;
use std::process::Command;

use crate::common::*;

#[test]
fn segment_writes_masks_at_original_size() {
    let Some(sh) = shared() else { return };
    let imgs = sh.join("data/isic2017-fullres/images");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&imgs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("masks");
    let ck = sh.join("fixtures/official-small/small_strong_model.pth");
    let o = run(&[
        "segment",
        "--checkpoint",
        s(&ck),
        s(&files[0]),
        s(&files[1]),
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in &files[..2] {
        let stem = f.file_stem().unwrap().to_str().unwrap();
        // Masks come out at the displayed size (EXIF orientation applied).
        let (w, h) = image::GenericImageView::dimensions(&vmunet_data::load_image(f).unwrap());
        let mask = image::open(out.join(format!("{stem}_mask.png")))
            .unwrap()
            .to_luma8();
        assert_eq!(mask.dimensions(), (w, h));
        assert!(mask.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
        let ov = image::open(out.join(format!("{stem}_overlay.png"))).unwrap();
        assert_eq!((ov.width(), ov.height()), (w, h));
    }
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        5,
        "only masks, overlays and timing.csv"
    );
    let csv = std::fs::read_to_string(out.join("timing.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("image,width,height,preprocess_ms,inference_ms"));
    assert!(lines[1].contains(files[0].file_name().unwrap().to_str().unwrap()));
}

#[test]
fn segment_bad_inputs_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let good = tmp.path().join("good.png");
    image::RgbImage::from_pixel(40, 30, image::Rgb([10, 20, 30]))
        .save(&good)
        .unwrap();
    let bad = tmp.path().join("broken.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff\xe0 truncated").unwrap();
    let o = run(&[
        "segment",
        "--preset",
        "small",
        s(&good),
        s(&bad),
        "--out",
        s(&out),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("broken.jpg"), "{}", stderr(&o));
    assert!(
        !out.exists() || std::fs::read_dir(&out).unwrap().count() == 0,
        "nothing written"
    );
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = run(&["segment", "--preset", "small", s(&empty), "--out", s(&out)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no images"), "{}", stderr(&o));
    let o = run(&[
        "segment",
        "--preset",
        "small",
        s(&good),
        "--out",
        s(&out),
        "--size",
        "100",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("multiples of 32"), "{}", stderr(&o));
}

#[test]
fn segment_a_generated_image_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("lesion.png");
    image::RgbImage::from_fn(300, 200, |x, y| {
        let d = ((x as f32 - 150.0).powi(2) + (y as f32 - 100.0).powi(2)).sqrt();
        if d < 50.0 {
            image::Rgb([90, 50, 40])
        } else {
            image::Rgb([220, 180, 160])
        }
    })
    .save(&img)
    .unwrap();
    let out = tmp.path().join("out");
    let o = run(&["segment", "--preset", "small", s(&img), "--out", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mask = image::open(out.join("lesion_mask.png")).unwrap();
    assert_eq!((mask.width(), mask.height()), (300, 200));
}

/// `infer` on a folder of real ISIC images with burn, tract and ONNX Runtime, on the standard
/// and the custom-op export: masks agree across runtimes, one CSV row per image.
#[test]
fn infer_a_folder_with_every_runtime() {
    let Some(sh) = shared() else { return };
    let fx = sh.join("fixtures/official-small");
    let ck = fx.join("small_strong_model.pth");
    let tmp = tempfile::tempdir().unwrap();
    let imgs = tmp.path().join("images");
    std::fs::create_dir(&imgs).unwrap();
    let val = sh.join("data/isic2017/val/images");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&val)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for f in &names[..3] {
        std::fs::copy(f, imgs.join(f.file_name().unwrap())).unwrap();
    }
    let mut runs: Vec<(String, Vec<String>)> =
        vec![("burn".into(), vec!["--checkpoint".into(), s(&ck).into()])];
    for scan in ["scan", "custom"] {
        let onnx = tmp.path().join(format!("{scan}.onnx"));
        let o = run(&[
            "export",
            "--checkpoint",
            s(&ck),
            "--scan",
            scan,
            "-o",
            s(&onnx),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let mut runtimes = vec!["tract"];
        if ort_lib().is_some() {
            runtimes.push("ort");
        }
        for rt in runtimes {
            runs.push((
                format!("{rt}-{scan}"),
                vec![
                    "--model".into(),
                    s(&onnx).into(),
                    "--runtime".into(),
                    rt.into(),
                ],
            ));
        }
    }
    let mut masks: Vec<(String, Vec<image::GrayImage>)> = Vec::new();
    for (label, args) in &runs {
        let out = tmp.path().join(format!("out-{label}"));
        let mut argv: Vec<&str> = vec!["infer"];
        argv.extend(args.iter().map(String::as_str));
        argv.extend([s(&imgs), "--out", s(&out)]);
        let o = run(&argv);
        assert!(o.status.success(), "{label}: {}", stderr(&o));
        assert!(stdout(&o).contains("3 images with"), "{}", stdout(&o));
        let csv = std::fs::read_to_string(out.join("timing.csv")).unwrap();
        assert_eq!(csv.lines().count(), 4, "{label}: {csv}");
        let ms: Vec<image::GrayImage> = names[..3]
            .iter()
            .map(|f| {
                let stem = f.file_stem().unwrap().to_str().unwrap();
                image::open(out.join(format!("{stem}_mask.png")))
                    .unwrap()
                    .to_luma8()
            })
            .collect();
        masks.push((label.clone(), ms));
    }
    let (_, reference) = &masks[0];
    for (label, ms) in &masks[1..] {
        for (a, b) in reference.iter().zip(ms) {
            let total = a.len() as f64;
            let same = a.pixels().zip(b.pixels()).filter(|(x, y)| x == y).count() as f64;
            eprintln!("{label}: mask agreement with burn {:.6}", same / total);
            assert!(same / total >= 0.999, "{label}: {}", same / total);
        }
    }
}

/// Bad model files, wrong sizes, undecodable images, empty folders and a missing
/// libonnxruntime: a clear error, a non-zero exit and an output folder left untouched.
#[test]
fn infer_bad_inputs_fail_cleanly_and_write_nothing() {
    let Some(sh) = shared() else { return };
    let fx = sh.join("fixtures/official-small");
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.png");
    image::RgbImage::from_pixel(64, 48, image::Rgb([120, 80, 60]))
        .save(&good)
        .unwrap();
    let onnx = tmp.path().join("model64.onnx");
    let o = run(&[
        "export",
        "--checkpoint",
        s(&fx.join("small_strong_model.pth")),
        "--size",
        "64",
        "-o",
        s(&onnx),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(&onnx).unwrap();
    let truncated = tmp.path().join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let not_onnx = tmp.path().join("notes.onnx");
    std::fs::write(&not_onnx, "this is not a model").unwrap();
    let broken = tmp.path().join("broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\n truncated").unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = tmp.path().join("out");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--model", s(&truncated), s(&good)], "truncated.onnx"),
        (vec!["--model", s(&not_onnx), s(&good)], "notes.onnx"),
        (
            vec!["--model", s(&onnx), "--size", "256", s(&good)],
            "fixed at 64x64",
        ),
        (vec!["--model", s(&onnx), s(&broken)], "broken.png"),
        (vec!["--model", s(&onnx), s(&empty)], "no images"),
        (
            vec!["--model", s(&onnx), "--runtime", "burn", s(&good)],
            "--checkpoint",
        ),
    ];
    for (args, needle) in cases {
        let mut argv = vec!["infer"];
        argv.extend(args);
        argv.extend(["--out", s(&out)]);
        let o = run(&argv);
        assert!(!o.status.success(), "{argv:?} succeeded");
        assert!(stderr(&o).contains(needle), "{argv:?}: {}", stderr(&o));
        assert!(!out.exists(), "{argv:?} created {}", out.display());
    }
    // A missing libonnxruntime.so says how to fix it.
    let o = Command::new(bin())
        .args([
            "infer",
            "--model",
            s(&onnx),
            "--runtime",
            "ort",
            s(&good),
            "--out",
            s(&out),
        ])
        .env(
            "ORT_DYLIB_PATH",
            tmp.path().join("nowhere/libonnxruntime.so"),
        )
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("ORT_DYLIB_PATH"), "{}", stderr(&o));
    assert!(!out.exists());
    // The same fixed-size model runs a 64x64 input.
    let o = run(&["infer", "--model", s(&onnx), s(&good), "--out", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("good_mask.png").is_file());
}

/// A truncated photo is refused with its name, and nothing is written for it (the first
/// 3,000 bytes of a JPEG used to decode into a mostly grey picture).
#[test]
fn infer_refuses_a_truncated_jpeg_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let img = image::RgbImage::from_fn(160, 120, |x, y| {
        image::Rgb([
            (x * 7 % 256) as u8,
            (y * 5 % 256) as u8,
            ((x ^ y) % 256) as u8,
        ])
    });
    let full = tmp.path().join("whole.jpg");
    img.save(&full).unwrap();
    let bytes = std::fs::read(&full).unwrap();
    let cut = tmp.path().join("cut.jpg");
    std::fs::write(&cut, &bytes[..bytes.len() * 6 / 10]).unwrap();
    let out = tmp.path().join("out");
    let model = vmunet_testdata::golden("tiny-scan.onnx");
    let o = run(&[
        "infer",
        "--model",
        s(&model),
        s(&full),
        s(&cut),
        "--out",
        s(&out),
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("cut.jpg") && err.contains("JPEG"), "{err}");
    assert!(!out.exists(), "nothing is written when an input is bad");
    // The intact photo alone goes through.
    let o = run(&["infer", "--model", s(&model), s(&full), "--out", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("whole_mask.png").is_file());
}

/// JPEG photos reach the model with the pixels the official code gives it: Pillow decodes
/// with libjpeg-turbo, and so does vmunet. For each full-resolution JPEG, the mask of a strong
/// random model (the official-small fixture's, whose masks react to small input changes)
/// equals the mask of the same photo decoded by Pillow and saved as PNG on >= 99.9 % of pixels
/// (the `image` crate's own JPEG decoder misses this on 0.2-0.6 % of pixels).
#[test]
fn jpeg_photos_decode_to_pillows_pixels() {
    let Some(sh) = shared() else { return };
    let Some(py) = python() else { return };
    let photos = sh.join("data/isic2017-fullres/images");
    let tmp = tempfile::tempdir().unwrap();
    let pngs = tmp.path().join("png");
    let script = r#"
import os, sys
from PIL import Image, ImageOps
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst)
for n in sorted(os.listdir(src)):
    if n.lower().endswith((".jpg", ".jpeg")):
        im = ImageOps.exif_transpose(Image.open(os.path.join(src, n))).convert("RGB")
        im.save(os.path.join(dst, os.path.splitext(n)[0] + ".png"), compress_level=1)
"#;
    let o = Command::new(&py)
        .args(["-c", script, s(&photos), s(&pngs)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", all_output(&o));
    let ck = sh.join("fixtures/official-small/small_strong_model.pth");
    let masks = |input: &PathBuf, out: &PathBuf| {
        let o = run(&["infer", "--checkpoint", s(&ck), s(input), "--out", s(out)]);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    let (from_jpeg, from_png) = (tmp.path().join("m-jpeg"), tmp.path().join("m-png"));
    masks(&photos, &from_jpeg);
    masks(&pngs, &from_png);
    let mut compared = 0;
    for e in std::fs::read_dir(&pngs).unwrap() {
        let png = e.unwrap().path();
        let stem = png.file_stem().unwrap().to_str().unwrap().to_string();
        let jpeg = photos.join(format!("{stem}.jpg"));
        // The decoded pixels themselves: the same decoder, so (nearly) the same bytes.
        let (a, b) = (
            vmunet_data::load_image(&jpeg).unwrap().to_rgb8(),
            image::open(&png).unwrap().to_rgb8(),
        );
        assert_eq!(a.dimensions(), b.dimensions(), "{stem}");
        let differ = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .filter(|(x, y)| x != y)
            .count();
        let mask = |dir: &PathBuf| {
            image::open(dir.join(format!("{stem}_mask.png")))
                .unwrap()
                .to_luma8()
                .into_raw()
        };
        let (mj, mp) = (mask(&from_jpeg), mask(&from_png));
        assert_eq!(mj.len(), mp.len(), "{stem}");
        let agree = mj.iter().zip(&mp).filter(|(x, y)| x == y).count() as f64 / mj.len() as f64;
        let fg = mp.iter().filter(|&&v| v > 0).count() as f64 / mp.len() as f64;
        eprintln!(
            "{stem}: {} x {}, decoded bytes differing from Pillow's: {differ}, mask agreement {:.5} % (foreground {:.1} %)",
            a.width(),
            a.height(),
            agree * 100.0,
            fg * 100.0
        );
        assert!(
            agree >= 0.999,
            "{stem}: masks agree on {:.4} %",
            agree * 100.0
        );
        compared += 1;
    }
    assert!(compared >= 10, "{compared} JPEG photos compared");
}
