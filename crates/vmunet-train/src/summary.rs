//! A run's progress and outcome in words, as `vmunet train` prints them.

use crate::{EpochRecord, RunSummary};

impl EpochRecord {
    /// One line: learning rate, losses, validation metrics, time, throughput (`best`: marks
    /// the best epoch so far).
    pub fn summary(&self, best: bool) -> String {
        let val = match (self.val_loss, self.val) {
            (Some(l), Some(m)) => format!(
                " val_loss {l:.4} DSC {:.4} mIoU {:.4} Acc {:.4} Sen {:.4} Spe {:.4}",
                m.dsc, m.miou, m.acc, m.sen, m.spe
            ),
            _ => String::new(),
        };
        format!(
            "epoch {:>3}: lr {:.2e} train_loss {:.4}{val} ({:.1} s, {:.1} img/s){}",
            self.epoch,
            self.lr,
            self.train_loss,
            self.seconds,
            self.images_per_s,
            if best { " *best" } else { "" }
        )
    }
}

impl RunSummary {
    /// One line: epochs, steps, the best epoch, the files written.
    pub fn summary(&self) -> String {
        let s = &self.state;
        format!(
            "run {}: {} epochs, {} steps; best epoch {}; checkpoints last.bpk, best.bpk; metrics.csv, curves.png",
            self.out.display(),
            s.epochs_done,
            s.global_step,
            s.best
                .map(|(e, l)| format!("{e} (val_loss {l:.4})"))
                .unwrap_or_else(|| "-".into())
        )
    }
}
