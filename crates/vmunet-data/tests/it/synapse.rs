//! Synapse in TransUNet's format, on files generated here (no real Synapse data exists
//! in ../shared): npz slices, `.npy.h5` volumes, list files, and their errors.

use std::path::Path;

use vmunet_data::dataset::synapse::{write_slice_npz, LIST_DIR};
use vmunet_data::{
    augment_synapse, read_npz, sample_seed, write_npz, write_synthetic_synapse, SynapseSlices,
};

fn write_list(root: &Path, file: &str, names: &[&str]) {
    let dir = root.join(LIST_DIR);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(file), names.join("\n") + "\n").unwrap();
}

/// A slice whose label is 3 exactly where the image is bright.
fn bright_square(h: usize, w: usize) -> (Vec<f32>, Vec<f32>) {
    let mut image = vec![0.1f32; h * w];
    let mut label = vec![0f32; h * w];
    for y in h / 4..h / 2 {
        for x in w / 3..(2 * w) / 3 {
            image[y * w + x] = 0.9;
            label[y * w + x] = 3.0;
        }
    }
    (image, label)
}

#[test]
fn slices_read_back_zoom_and_augment() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("train_npz")).unwrap();
    let (image, label) = bright_square(40, 30);
    write_slice_npz(
        &root.join("train_npz/case0005_slice010.npz"),
        &image,
        &label,
        40,
        30,
    )
    .unwrap();
    let (im2, lb2) = bright_square(24, 24);
    write_slice_npz(
        &root.join("train_npz/case0005_slice011.npz"),
        &im2,
        &lb2,
        24,
        24,
    )
    .unwrap();
    write_list(
        root,
        "train.txt",
        &["case0005_slice010", "  case0005_slice011 ", ""],
    );

    let ds = SynapseSlices::open(root, 24).unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(ds.name(1), Some("case0005_slice011"));
    let raw = ds.get_raw(0).unwrap();
    assert_eq!((raw.channels, raw.height, raw.width), (1, 40, 30));
    assert_eq!((raw.image.clone(), raw.mask.clone()), (image, label));
    let s = ds.get(0).unwrap();
    assert_eq!(
        (s.height, s.width, s.image.len(), s.mask.len()),
        (24, 24, 576, 576)
    );
    assert!(s.mask.iter().all(|m| *m == 0.0 || *m == 3.0));
    assert_eq!(ds.get(1).unwrap().image, im2, "already at size: unchanged");

    let mut distinct = std::collections::HashSet::new();
    for i in 0..12u64 {
        let seed = sample_seed(3, 0, i);
        let mut a = ds.get_raw(0).unwrap();
        augment_synapse(&mut a, seed, 24);
        let mut b = ds.get_raw(0).unwrap();
        augment_synapse(&mut b, seed, 24);
        assert_eq!(a, b, "deterministic");
        assert_eq!((a.height, a.width), (24, 24));
        assert!(a.mask.iter().all(|m| *m == 0.0 || *m == 3.0));
        distinct.insert(a.mask.iter().map(|m| *m as u8).collect::<Vec<_>>());
        // At native size (no zoom) image and label stay exactly aligned.
        let mut c = ds.get_raw(1).unwrap();
        augment_synapse(&mut c, seed, 24);
        for (v, m) in c.image.iter().zip(&c.mask) {
            assert_eq!(*v > 0.5, *m == 3.0);
        }
    }
    assert!(distinct.len() >= 4, "{} distinct", distinct.len());
}

#[test]
fn slice_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let e = SynapseSlices::open(root, 224).unwrap_err().to_string();
    assert!(e.contains("lists_Synapse/train.txt"), "{e}");

    std::fs::create_dir_all(root.join("train_npz")).unwrap();
    write_list(root, "train.txt", &["a", "b"]);
    let (image, label) = bright_square(8, 8);
    write_slice_npz(&root.join("train_npz/a.npz"), &image, &label, 8, 8).unwrap();
    let e = SynapseSlices::open(root, 8).unwrap_err().to_string();
    assert!(
        e.contains("train_npz/b.npz") && e.contains("train.txt"),
        "{e}"
    );

    // Missing key, wrong rank, mismatched shapes.
    write_npz(&root.join("train_npz/b.npz"), &[("image", &[8, 8], &image)]).unwrap();
    let ds = SynapseSlices::open(root, 8).unwrap();
    let e = ds.get(1).unwrap_err().to_string();
    assert!(e.contains("b.npz") && e.contains("no 'label'"), "{e}");
    write_npz(
        &root.join("train_npz/b.npz"),
        &[("image", &[1, 8, 8], &image), ("label", &[8, 8], &label)],
    )
    .unwrap();
    let e = ds.get(1).unwrap_err().to_string();
    assert!(e.contains("b.npz") && e.contains("[1, 8, 8]"), "{e}");
    write_npz(
        &root.join("train_npz/b.npz"),
        &[("image", &[8, 8], &image), ("label", &[4, 16], &label)],
    )
    .unwrap();
    let e = ds.get(1).unwrap_err().to_string();
    assert!(e.contains("b.npz") && e.contains("[4, 16]"), "{e}");
    std::fs::write(root.join("train_npz/b.npz"), b"not a zip").unwrap();
    let e = ds.get(1).unwrap_err().to_string();
    assert!(e.contains("b.npz"), "{e}");
    assert!(ds.get(0).is_ok());
}

#[test]
fn synthetic_synapse_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    write_synthetic_synapse(dir.path(), 3, 2, 4, 32, 9).unwrap();
    let ds = SynapseSlices::open(dir.path(), 32).unwrap();
    assert_eq!(ds.len(), 3);
    let s = ds.get(2).unwrap();
    assert!(s.image.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(s
        .mask
        .iter()
        .all(|m| m.fract() == 0.0 && (0.0..=8.0).contains(m)));
    assert!(s.mask.iter().any(|m| *m > 0.0));
    let npz = read_npz(&ds.path(2).unwrap()).unwrap();
    assert_eq!(npz["image"].shape, vec![32, 32]);
    #[cfg(feature = "hdf5")]
    {
        let vols = vmunet_data::SynapseVolumes::open(dir.path()).unwrap();
        assert_eq!((vols.len(), vols.name(1)), (2, Some("case0002")));
        let v = vols.get(1).unwrap();
        assert_eq!((v.depth, v.height, v.width), (4, 32, 32));
    }
}

#[cfg(feature = "hdf5")]
mod volumes {
    use super::*;
    use hdf5_metno as h5;
    use vmunet_data::SynapseVolumes;

    /// Writes `image` as float64 and `label` as float32, like a file from h5py.
    fn write_h5(path: &Path, image: Option<(&[usize], &[f64])>, label: Option<(&[usize], &[f32])>) {
        let f = h5::File::create(path).unwrap();
        if let Some((shape, data)) = image {
            let ds = f.new_dataset::<f64>().shape(shape).create("image").unwrap();
            ds.write_raw(data).unwrap();
        }
        if let Some((shape, data)) = label {
            let ds = f.new_dataset::<f32>().shape(shape).create("label").unwrap();
            ds.write_raw(data).unwrap();
        }
    }

    #[test]
    fn volumes_read_back_and_evaluation_zoom() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("test_vol_h5")).unwrap();
        let (d, h, w) = (3, 20, 16);
        let image: Vec<f64> = (0..d * h * w).map(|v| v as f64 / 1000.0).collect();
        let label: Vec<f32> = (0..d * h * w).map(|v| (v % 9) as f32).collect();
        write_h5(
            &root.join("test_vol_h5/case0008.npy.h5"),
            Some((&[d, h, w], &image)),
            Some((&[d, h, w], &label)),
        );
        write_list(root, "test_vol.txt", &["case0008"]);
        let vols = SynapseVolumes::open(root).unwrap();
        assert_eq!(vols.len(), 1);
        let v = vols.get(0).unwrap();
        assert_eq!(
            (v.name.as_str(), v.depth, v.height, v.width),
            ("case0008", d, h, w)
        );
        let want: Vec<f32> = image.iter().map(|v| *v as f32).collect();
        assert_eq!(v.image, want);
        assert_eq!(v.label, label);
        assert_eq!(v.label_slice(2).unwrap(), &label[2 * h * w..]);
        assert!(v.image_slice(3).is_none());
        // Evaluation: slice -> size (cubic) -> prediction -> back (nearest).
        let x = v.model_input(1, 12).unwrap();
        assert_eq!(x.len(), 144);
        let pred: Vec<f32> = (0..144).map(|k| (k % 4) as f32).collect();
        let back = v.restore_prediction(&pred, 12);
        assert_eq!(back.len(), h * w);
        assert!(back
            .iter()
            .all(|c| c.fract() == 0.0 && (0.0..4.0).contains(c)));
        assert_eq!(v.model_input(0, 12), v.model_input(0, 12));
        assert!(vols
            .get(1)
            .unwrap_err()
            .to_string()
            .contains("out of range"));
    }

    #[test]
    fn volume_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let e = SynapseVolumes::open(root).unwrap_err().to_string();
        assert!(e.contains("lists_Synapse/test_vol.txt"), "{e}");
        std::fs::create_dir_all(root.join("test_vol_h5")).unwrap();
        write_list(root, "test_vol.txt", &["case0001", "case0002"]);
        let img = vec![0.5f64; 2 * 4 * 4];
        let lab = vec![1f32; 2 * 4 * 4];
        write_h5(
            &root.join("test_vol_h5/case0001.npy.h5"),
            Some((&[2, 4, 4], &img)),
            None,
        );
        let e = SynapseVolumes::open(root).unwrap_err().to_string();
        assert!(
            e.contains("test_vol_h5/case0002.npy.h5") && e.contains("test_vol.txt"),
            "{e}"
        );
        write_h5(
            &root.join("test_vol_h5/case0002.npy.h5"),
            Some((&[8, 4], &img)),
            Some((&[2, 4, 4], &lab)),
        );
        let vols = SynapseVolumes::open(root).unwrap();
        let e = vols.get(0).unwrap_err().to_string();
        assert!(
            e.contains("case0001.npy.h5") && e.contains("no 'label'"),
            "{e}"
        );
        let e = vols.get(1).unwrap_err().to_string();
        assert!(e.contains("case0002.npy.h5") && e.contains("[8, 4]"), "{e}");
        std::fs::write(root.join("test_vol_h5/case0002.npy.h5"), b"not hdf5").unwrap();
        let e = vols.get(1).unwrap_err().to_string();
        assert!(e.contains("case0002.npy.h5") && e.contains("HDF5"), "{e}");
    }
}

#[test]
fn augment_512_slice_to_224_timing() {
    let (image, label) = bright_square(512, 512);
    let base = vmunet_data::Sample {
        name: "t".into(),
        image,
        channels: 1,
        height: 512,
        width: 512,
        mask: label,
    };
    let n = 8;
    let t0 = std::time::Instant::now();
    for i in 0..n {
        let mut s = base.clone();
        augment_synapse(&mut s, sample_seed(0, 0, i), 224);
        assert_eq!((s.height, s.width), (224, 224));
        assert!(s.mask.iter().all(|m| *m == 0.0 || *m == 3.0));
    }
    eprintln!(
        "Synapse 512x512 -> 224: augment + zoom {:.2} ms/sample",
        t0.elapsed().as_secs_f64() * 1e3 / n as f64
    );
}
