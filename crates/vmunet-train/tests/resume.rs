//! Training end to end on a generated lesion set: checkpoints, logs, and a resumed run that
//! ends with exactly the weights of an uninterrupted one.

use std::path::Path;

use burn::backend::{Autodiff, NdArray};
use burn::module::Module;
use burn::tensor::backend::Backend;
use vmunet_model::{checkpoint, VmUnet};
use vmunet_train::{read_state, train, Silent, TrainConfig, TrainError};

type B = Autodiff<NdArray<f32>>;

fn config(data: &Path, out: &Path, epochs: usize) -> TrainConfig {
    let mut c = TrainConfig {
        data: data.to_path_buf(),
        out: out.to_path_buf(),
        epochs,
        batch_size: 4,
        image_size: Some(64),
        workers: 2,
        t_max: 2,
        seed: 3,
        ..TrainConfig::default()
    };
    c.model.dims = vec![8, 16, 32, 64];
    c.model.d_state = 4;
    c
}

fn weights(path: &Path) -> Vec<f32> {
    let (m, _) = checkpoint::load::<NdArray<f32>>(path, &Default::default()).unwrap();
    flatten(&m)
}

fn flatten<Bk: Backend>(m: &VmUnet<Bk>) -> Vec<f32> {
    let mut out = Vec::new();
    struct Collect<'a>(&'a mut Vec<f32>);
    impl<Bk: Backend> burn::module::ModuleVisitor<Bk> for Collect<'_> {
        fn visit_float<const D: usize>(
            &mut self,
            p: &burn::module::Param<burn::tensor::Tensor<Bk, D>>,
        ) {
            self.0.extend(
                p.val()
                    .into_data()
                    .convert::<f32>()
                    .to_vec::<f32>()
                    .unwrap(),
            );
        }
    }
    m.visit(&mut Collect(&mut out));
    out
}

#[test]
fn a_resumed_run_equals_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    vmunet_data::write_synthetic_isic(&data, 12, 4, 64, 1).unwrap();
    let dev = Default::default();

    // Uninterrupted: 3 epochs.
    let full = dir.path().join("full");
    let s = train::<B>(config(&data, &full, 3), false, &dev, &mut Silent).unwrap();
    assert_eq!((s.state.epochs_done, s.state.global_step), (3, 9));
    assert_eq!(s.state.history.len(), 3);
    for f in [
        "last.bpk",
        "best.bpk",
        "state.json",
        "metrics.csv",
        "metrics.json",
        "curves.png",
    ] {
        assert!(full.join(f).is_file(), "{f} missing");
    }
    let csv = std::fs::read_to_string(full.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(s
        .state
        .history
        .iter()
        .all(|r| r.val_loss.is_some() && r.train_loss.is_finite()));
    // Only the two newest epoch checkpoints are kept.
    assert!(!full.join("checkpoints/epoch-0001.model.bin").exists());
    assert!(full.join("checkpoints/epoch-0003.optim.bin").is_file());

    // Interrupted after epoch 1, then resumed to 3 epochs.
    let part = dir.path().join("part");
    train::<B>(config(&data, &part, 1), false, &dev, &mut Silent).unwrap();
    let w1 = weights(&part.join("last.bpk"));
    let s2 = train::<B>(config(&data, &part, 3), true, &dev, &mut Silent).unwrap();
    assert_eq!(s2.state.epochs_done, 3);
    assert_eq!(s2.state.history, {
        // Timings differ; everything else must be identical.
        let mut h = s.state.history.clone();
        for (a, b) in h.iter_mut().zip(&s2.state.history) {
            a.seconds = b.seconds;
            a.images_per_s = b.images_per_s;
        }
        h
    });
    let (a, b) = (
        weights(&full.join("last.bpk")),
        weights(&part.join("last.bpk")),
    );
    assert_eq!(a.len(), b.len());
    assert!(
        a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
        "weights differ"
    );
    assert!(
        w1.iter().zip(&a).any(|(x, y)| x != y),
        "training did not change the weights"
    );

    // A second start in the same folder is refused; resuming with another recipe too.
    let e = train::<B>(config(&data, &full, 3), false, &dev, &mut Silent).unwrap_err();
    assert!(e.to_string().contains("--resume"), "{e}");
    let mut other = config(&data, &full, 4);
    other.lr = 5e-4;
    let e = train::<B>(other, true, &dev, &mut Silent).unwrap_err();
    assert!(
        matches!(e, TrainError::Run { .. }) && e.to_string().contains("lr"),
        "{e}"
    );
    assert_eq!(read_state(&full.join("state.json")).unwrap().epochs_done, 3);
}

#[test]
fn missing_data_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let e = train::<B>(
        config(&dir.path().join("nope"), &dir.path().join("out"), 1),
        false,
        &Default::default(),
        &mut Silent,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("nope") && e.contains("ISIC layout"), "{e}");
}
