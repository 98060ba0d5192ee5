//! ISIC dataset: real data from `../shared` (skipped when absent), synthetic round trip,
//! and bad inputs whose errors must name the file.

use std::path::{Path, PathBuf};
use std::time::Instant;

use vmunet_data::{augment_isic, sample_seed, write_synthetic_isic, IsicDataset, Split};

/// `../shared/data/isic2017`, or `None` (with a message) when absent.
fn isic2017() -> Option<PathBuf> {
    vmunet_testdata::shared_with("data/isic2017/train/images", "ISIC 2017 data tests")
        .map(|r| r.join("data/isic2017"))
}

fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

#[test]
fn real_isic2017_pairs_decodes_and_augments() {
    let Some(root) = isic2017() else { return };
    let train = IsicDataset::open(&root, Split::Train, 256).unwrap();
    let val = IsicDataset::open(&root, Split::Val, 256).unwrap();
    assert_eq!((train.len(), val.len()), (1400, 300));
    for ds in [&train, &val] {
        for i in 0..ds.len() {
            let (img, msk) = ds.paths(i).unwrap();
            assert_eq!(format!("{}_segmentation", stem(img)), stem(msk));
        }
    }
    let n = 40;
    let t0 = Instant::now();
    let mut samples = Vec::new();
    for i in 0..n {
        samples.push(train.get(i).unwrap());
    }
    let t_get = t0.elapsed();
    let t0 = Instant::now();
    for (i, s) in samples.iter_mut().enumerate() {
        augment_isic(s, sample_seed(1, 0, i as u64));
    }
    let t_aug = t0.elapsed();
    eprintln!(
        "ISIC 256x256: get {:.2} ms/sample, augment {:.2} ms/sample",
        t_get.as_secs_f64() * 1e3 / n as f64,
        t_aug.as_secs_f64() * 1e3 / n as f64
    );
    let s = train.get(0).unwrap();
    assert_eq!(s.name, stem(train.paths(0).unwrap().0));
    assert_eq!((s.channels, s.height, s.width), (3, 256, 256));
    assert_eq!((s.image.len(), s.mask.len()), (3 * 256 * 256, 256 * 256));
    let (lo, hi) = s
        .image
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    assert!(lo.abs() < 1e-3 && (hi - 255.0).abs() < 1e-3, "{lo} {hi}");
    for s in &samples {
        assert!(s.mask.iter().all(|m| *m == 0.0 || *m == 1.0));
        let fg = s.mask.iter().sum::<f32>();
        assert!(fg > 0.0, "{}: lesion present", s.name);
    }
    // Smaller model size: the mask is resized and re-binarised.
    let small = IsicDataset::open(&root, Split::Val, 96)
        .unwrap()
        .get(3)
        .unwrap();
    assert_eq!((small.height, small.mask.len()), (96, 96 * 96));
    assert!(small.mask.iter().all(|m| *m == 0.0 || *m == 1.0));
}

#[test]
fn synthetic_isic_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    write_synthetic_isic(dir.path(), 5, 3, 64, 42).unwrap();
    let train = IsicDataset::open(dir.path(), Split::Train, 64).unwrap();
    let val = IsicDataset::open(dir.path(), Split::Val, 48).unwrap();
    assert_eq!((train.len(), val.len()), (5, 3));
    assert_eq!(train.name(0).as_deref(), Some("synth_00000"));
    for ds in [&train, &val] {
        for i in 0..ds.len() {
            let s = ds.get(i).unwrap();
            assert_eq!(s.image.len(), 3 * s.height * s.width);
            assert!(s.mask.iter().all(|m| *m == 0.0 || *m == 1.0));
            let area = s.mask.iter().sum::<f32>() / s.mask.len() as f32;
            assert!((0.01..0.6).contains(&area), "lesion area {area}");
            // The lesion is darker than the skin around it.
            let plane = s.height * s.width;
            let (mut inside, mut outside) = ((0.0, 0.0), (0.0, 0.0));
            for k in 0..plane {
                let v = (0..3).map(|c| s.image[c * plane + k]).sum::<f32>();
                let acc = if s.mask[k] == 1.0 {
                    &mut inside
                } else {
                    &mut outside
                };
                acc.0 += v;
                acc.1 += 1.0;
            }
            assert!(inside.0 / inside.1 < 0.7 * outside.0 / outside.1);
        }
    }
    // Same seed, same files.
    let again = tempfile::tempdir().unwrap();
    write_synthetic_isic(again.path(), 5, 3, 64, 42).unwrap();
    let f = "train/images/synth_00003.png";
    assert_eq!(
        std::fs::read(dir.path().join(f)).unwrap(),
        std::fs::read(again.path().join(f)).unwrap()
    );
}

fn small_set() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_synthetic_isic(dir.path(), 3, 1, 32, 7).unwrap();
    dir
}

#[test]
fn missing_or_empty_folder_is_named() {
    let dir = small_set();
    let masks = dir.path().join("val/masks");
    std::fs::remove_dir_all(&masks).unwrap();
    let e = IsicDataset::open(dir.path(), Split::Val, 32)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&masks.display().to_string()) && e.contains("missing"),
        "{e}"
    );
    std::fs::create_dir(&masks).unwrap();
    let e = IsicDataset::open(dir.path(), Split::Val, 32)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&masks.display().to_string()) && e.contains("empty"),
        "{e}"
    );
    let e = IsicDataset::open(&dir.path().join("nope"), Split::Train, 32)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("nope/train/images") && e.contains("missing"),
        "{e}"
    );
}

#[test]
fn unpaired_file_is_named() {
    let dir = small_set();
    std::fs::remove_file(dir.path().join("train/masks/synth_00001_segmentation.png")).unwrap();
    let e = IsicDataset::open(dir.path(), Split::Train, 32)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("synth_00001.png") && e.contains("3 files"),
        "{e}"
    );
    // An extra mask is named too.
    let dir = small_set();
    let extra = dir.path().join("train/masks/zzz_segmentation.png");
    std::fs::copy(
        dir.path().join("train/masks/synth_00000_segmentation.png"),
        &extra,
    )
    .unwrap();
    let e = IsicDataset::open(dir.path(), Split::Train, 32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("zzz_segmentation.png"), "{e}");
}

#[test]
fn unreadable_image_is_named() {
    let dir = small_set();
    let img = dir.path().join("train/images/synth_00002.png");
    std::fs::write(&img, b"this is not a png").unwrap();
    let ds = IsicDataset::open(dir.path(), Split::Train, 32).unwrap();
    assert!(ds.get(0).is_ok());
    let e = ds.get(2).unwrap_err().to_string();
    assert!(e.contains("synth_00002.png") && e.contains("decode"), "{e}");
    let e = ds.get(3).unwrap_err().to_string();
    assert!(e.contains("out of range"), "{e}");
}

#[test]
fn mask_size_mismatch_names_both_files() {
    let dir = small_set();
    let msk = dir.path().join("train/masks/synth_00001_segmentation.png");
    image::GrayImage::new(20, 32).save(&msk).unwrap();
    let ds = IsicDataset::open(dir.path(), Split::Train, 32).unwrap();
    let e = ds.get(1).unwrap_err().to_string();
    assert!(
        e.contains("synth_00001_segmentation.png")
            && e.contains("synth_00001.png")
            && e.contains("20x32")
            && e.contains("32x32"),
        "{e}"
    );
}

#[test]
fn plain_folder_pairs_like_a_split() {
    let dir = small_set();
    let split = IsicDataset::open(dir.path(), Split::Val, 32).unwrap();
    // A held-out set kept as DIR/images + DIR/masks.
    let plain = dir.path().join("val");
    let folder = IsicDataset::open_folder(&plain, 32).unwrap();
    assert_eq!(folder.len(), 1);
    assert_eq!(folder.paths(0), split.paths(0));
    assert_eq!(folder.get(0).unwrap(), split.get(0).unwrap());
    // Auto-detection: the plain folder, or a dataset root's validation split.
    let auto = IsicDataset::open_eval(&plain, 32).unwrap();
    assert_eq!(auto.paths(0), split.paths(0));
    let auto = IsicDataset::open_eval(dir.path(), 32).unwrap();
    assert_eq!(auto.paths(0), split.paths(0));
    let e = folder.get(1).unwrap_err().to_string();
    assert!(e.contains("out of range") && e.contains("val"), "{e}");
}

#[test]
fn plain_folder_errors_say_what_is_missing() {
    let dir = small_set();
    let plain = dir.path().join("train");
    std::fs::remove_file(plain.join("masks/synth_00001_segmentation.png")).unwrap();
    for e in [
        IsicDataset::open_folder(&plain, 32).unwrap_err(),
        IsicDataset::open_eval(&plain, 32).unwrap_err(),
    ] {
        let e = e.to_string();
        assert!(
            e.contains("synth_00001.png") && e.contains("3 files"),
            "{e}"
        );
    }
    std::fs::remove_dir_all(plain.join("masks")).unwrap();
    let e = IsicDataset::open_eval(&plain, 32).unwrap_err().to_string();
    assert!(e.contains("train/masks") && e.contains("missing"), "{e}");
    // Neither layout.
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir(empty.path().join("pictures")).unwrap();
    let e = IsicDataset::open_eval(empty.path(), 32)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&empty.path().display().to_string())
            && e.contains("images/ and masks/")
            && e.contains("val/images/"),
        "{e}"
    );
    let e = IsicDataset::open_folder(empty.path(), 32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("images") && e.contains("missing"), "{e}");
    let e = IsicDataset::open_eval(&empty.path().join("nope"), 32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope") && e.contains("missing"), "{e}");
}

#[test]
fn truncated_mask_is_refused_and_named() {
    let dir = small_set();
    let msk = dir.path().join("train/masks/synth_00001_segmentation.png");
    let bytes = std::fs::read(&msk).unwrap();
    std::fs::write(&msk, &bytes[..bytes.len() - 12]).unwrap();
    let ds = IsicDataset::open(dir.path(), Split::Train, 32).unwrap();
    assert!(ds.get(0).is_ok());
    let e = ds.get(1).unwrap_err().to_string();
    assert!(
        e.contains("synth_00001_segmentation.png") && e.contains("IEND"),
        "{e}"
    );
}
