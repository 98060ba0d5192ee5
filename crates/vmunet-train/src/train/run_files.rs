//! The files of a run folder: `state.json` (the commit point), the per-epoch model and
//! optimizer records, `best.bpk` / `last.bpk`, and the logs. Every file is written durably
//! (`vmunet-fs`: a temporary file in the same folder, fsynced, renamed into place).

use std::path::{Path, PathBuf};

use burn::module::{AutodiffModule, Module};
use burn::optim::Optimizer;
use burn::record::{BinFileRecorder, FullPrecisionSettings, Record, Recorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::Serialize;
use vmunet_model::{checkpoint, VmUnet};

use super::state::{EpochRecord, RunState};
use crate::TrainError;

const STATE: &str = "state.json";

/// The run's `state.json` in the folder `out`.
pub(super) fn state_path(out: &Path) -> PathBuf {
    out.join(STATE)
}

/// A run folder and the recorder of its per-epoch training state.
pub(super) struct RunFolder {
    out: PathBuf,
    recorder: BinFileRecorder<FullPrecisionSettings>,
    /// Recorded in best.bpk / last.bpk: the training size (evaluation, export and inference
    /// default to it) and preprocessing (the export records it for every front end).
    record: checkpoint::CheckpointRecord,
}

impl RunFolder {
    /// The run folder `out` (its `checkpoints` folder created), training at `trained_size` on
    /// data with `preprocessing`.
    pub(super) fn create(
        out: &Path,
        trained_size: Option<usize>,
        preprocessing: vmunet_onnx_ir::Preprocessing,
    ) -> Result<Self, TrainError> {
        std::fs::create_dir_all(out.join("checkpoints")).map_err(|e| TrainError::io(out, e))?;
        Ok(Self {
            out: out.to_path_buf(),
            recorder: BinFileRecorder::new(),
            record: checkpoint::CheckpointRecord {
                input_size: trained_size,
                preprocessing: Some(preprocessing),
                history: Vec::new(),
            },
        })
    }

    fn epoch_file(&self, epoch: usize, ext: &str) -> PathBuf {
        self.out
            .join("checkpoints")
            .join(format!("epoch-{epoch:04}.{ext}"))
    }

    /// `model` with the weights committed after `epoch`. burn's own record keeps the parameter
    /// ids the optimizer state is keyed by.
    pub(super) fn load_model<B: Backend>(
        &self,
        model: VmUnet<B>,
        epoch: usize,
        device: &B::Device,
    ) -> Result<VmUnet<B>, TrainError> {
        let p = self.epoch_file(epoch, "model.bin");
        model
            .load_file(p.clone(), &self.recorder, device)
            .map_err(|e| TrainError::Run {
                path: p,
                reason: format!("cannot read the model state: {e}"),
            })
    }

    /// `optim` with the state committed after `epoch`.
    pub(super) fn load_optimizer<B: AutodiffBackend, O: Optimizer<VmUnet<B>, B>>(
        &self,
        optim: O,
        epoch: usize,
        device: &B::Device,
    ) -> Result<O, TrainError> {
        let p = self.epoch_file(epoch, "optim.bin");
        let record = self
            .recorder
            .load(p.clone(), device)
            .map_err(|e| TrainError::Run {
                path: p,
                reason: format!("cannot read the optimizer state: {e}"),
            })?;
        Ok(optim.load_record(record))
    }

    /// Commits epoch `record.epoch`: the model and optimizer records, `best.bpk` when
    /// `improved`, then `state.json` (the commit point), `last.bpk`, the logs; the records of
    /// older epochs are pruned.
    pub(super) fn commit_epoch<B: AutodiffBackend, O: Optimizer<VmUnet<B>, B>>(
        &self,
        model: &VmUnet<B>,
        optim: &O,
        state: &mut RunState,
        record: &EpochRecord,
        improved: bool,
    ) -> Result<(), TrainError> {
        let epoch = record.epoch;
        let inner = model.valid();
        self.save_record(
            model.clone().into_record(),
            &self.epoch_file(epoch, "model.bin"),
        )?;
        self.save_record(optim.to_record(), &self.epoch_file(epoch, "optim.bin"))?;
        if improved {
            let best = self.out.join("best.bpk");
            checkpoint::save_recorded(&inner, &best, &self.record)?;
            state.best = record.val_loss.map(|v| (epoch, v));
        }
        state.epochs_done = epoch;
        state.history.push(record.clone());
        write_json(&state_path(&self.out), state)?;
        let last = self.out.join("last.bpk");
        checkpoint::save_recorded(&inner, &last, &self.record)?;
        write_logs(&self.out, state)?;
        self.prune(epoch);
        Ok(())
    }

    fn save_record<B: Backend, R: Record<B>>(
        &self,
        record: R,
        path: &Path,
    ) -> Result<(), TrainError> {
        vmunet_fs::write_durable_with(path, |tmp| {
            // The recorder sets its own extension (`.bin`) on the path it is given.
            let written = tmp.with_extension("bin");
            let result = self
                .recorder
                .record(record, tmp.to_path_buf())
                .map_err(|e| std::io::Error::other(format!("cannot write the training state: {e}")))
                .and_then(|()| std::fs::rename(&written, tmp));
            if result.is_err() {
                let _ = std::fs::remove_file(&written);
            }
            result
        })?;
        Ok(())
    }

    /// Keeps the checkpoints of the two most recent epochs.
    fn prune(&self, epoch: usize) {
        if epoch > 2 {
            for ext in ["model.bin", "optim.bin"] {
                let _ = std::fs::remove_file(self.epoch_file(epoch - 2, ext));
            }
        }
    }
}

/// Reads a run's `state.json`.
pub fn read_state(path: &Path) -> Result<RunState, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::Run {
        path: path.to_path_buf(),
        reason: format!("cannot resume: {e} (no committed epoch in this folder?)"),
    })?;
    serde_json::from_str(&text).map_err(|e| TrainError::Run {
        path: path.to_path_buf(),
        reason: format!("not a vmunet run state: {e}"),
    })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| TrainError::Run {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    vmunet_fs::write_durable(path, text.as_bytes())?;
    Ok(())
}

/// Writes `metrics.csv`, `metrics.json` and `curves.png` from the history.
pub fn write_logs(out: &Path, state: &RunState) -> Result<(), TrainError> {
    let mut csv = String::from(
        "epoch,steps,lr,train_loss,val_loss,miou,dsc,acc,sen,spe,seconds,images_per_s\n",
    );
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_default();
    for r in &state.history {
        let m = r.val;
        csv.push_str(&format!(
            "{},{},{:.3e},{:.6},{},{},{},{},{},{},{:.2},{:.3}\n",
            r.epoch,
            r.steps,
            r.lr,
            r.train_loss,
            opt(r.val_loss),
            opt(m.map(|m| m.miou)),
            opt(m.map(|m| m.dsc)),
            opt(m.map(|m| m.acc)),
            opt(m.map(|m| m.sen)),
            opt(m.map(|m| m.spe)),
            r.seconds,
            r.images_per_s
        ));
    }
    vmunet_fs::write_durable(&out.join("metrics.csv"), csv.as_bytes())?;
    write_json(&out.join("metrics.json"), &state.history)?;
    let pts = |f: &dyn Fn(&EpochRecord) -> Option<f64>| -> Vec<(f64, f64)> {
        state
            .history
            .iter()
            .filter_map(|r| f(r).map(|v| (r.epoch as f64, v)))
            .collect()
    };
    use vmunet_plot::{Panel, Series};
    let panels = [
        Panel {
            title: "loss".into(),
            x_label: "epoch".into(),
            y_label: "BCE + Dice".into(),
            series: vec![
                Series::line("train", [31, 119, 180], pts(&|r| Some(r.train_loss))),
                Series::line("val", [214, 39, 40], pts(&|r| r.val_loss)),
            ],
        },
        Panel {
            title: "validation".into(),
            x_label: "epoch".into(),
            y_label: "score".into(),
            series: vec![
                Series::line("DSC", [44, 160, 44], pts(&|r| r.val.map(|m| m.dsc))),
                Series::line("mIoU", [148, 103, 189], pts(&|r| r.val.map(|m| m.miou))),
            ],
        },
    ];
    vmunet_plot::save(&panels, &out.join("curves.png")).map_err(|e| TrainError::Run {
        path: out.join("curves.png"),
        reason: e.to_string(),
    })?;
    Ok(())
}
