//! Starting or resuming a run: the configuration and state to train with, and the model and
//! optimizer to start from.

use std::path::{Path, PathBuf};

use burn::optim::{AdamWConfig, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use vmunet_model::{checkpoint, VmUnet};
use vmunet_scan::ScanBackend;

use super::run_files::{read_state, state_path, RunFolder};
use super::state::RunState;
use crate::{DatasetKind, LossKind, TrainConfig, TrainError};

/// The state and configuration to train with: a new run's in `out`, or with `resume` the
/// committed state of the run in `out` (a new `epochs` / `max_steps` / `workers` may extend it).
pub(super) fn start_or_resume(
    cfg: TrainConfig,
    resume: bool,
    out: &Path,
) -> Result<(RunState, TrainConfig), TrainError> {
    let state_path = state_path(out);
    if resume {
        let mut prev = read_state(&state_path)?;
        check_resume(&prev.config, &cfg, &state_path)?;
        prev.config.epochs = cfg.epochs;
        prev.config.max_steps = cfg.max_steps;
        prev.config.workers = cfg.workers;
        let c = prev.config.clone();
        return Ok((prev, c));
    }
    if state_path.exists() {
        return Err(TrainError::Run {
            path: out.to_path_buf(),
            reason: "this folder already holds a run: pass --resume to continue it, or choose \
                     another --out"
                .into(),
        });
    }
    cfg.validate("training configuration")?;
    let kind = cfg.dataset.resolve(&cfg.data)?;
    let mut c = cfg;
    // A structurally pruned checkpoint brings its architecture (per-block widths).
    if let Some(p) = &c.init {
        if let Ok(info) = checkpoint::inspect(p) {
            if info.config.block_widths.is_some() {
                c.model.adopt(&info.config);
            }
        }
    }
    c.dataset = kind;
    let state = RunState {
        config: c.clone(),
        dataset: kind,
        epochs_done: 0,
        global_step: 0,
        best: None,
        history: Vec::new(),
    };
    Ok((state, c))
}

/// A resumed run must train the same model on the same data with the same recipe.
fn check_resume(prev: &TrainConfig, now: &TrainConfig, path: &Path) -> Result<(), TrainError> {
    let mut a = prev.clone();
    let mut b = now.clone();
    for c in [&mut a, &mut b] {
        c.epochs = 0;
        c.max_steps = None;
        c.workers = 0;
        c.dataset = DatasetKind::Auto;
        c.out = PathBuf::new();
    }
    if a == b {
        return Ok(());
    }
    let (ja, jb) = (
        serde_json::to_value(&a).unwrap_or_default(),
        serde_json::to_value(&b).unwrap_or_default(),
    );
    let diff: Vec<String> = match (ja.as_object(), jb.as_object()) {
        (Some(x), Some(y)) => x
            .iter()
            .filter(|(k, v)| y.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k}: {v} -> {}", y.get(k).cloned().unwrap_or_default()))
            .collect(),
        _ => vec![],
    };
    Err(TrainError::Run {
        path: path.to_path_buf(),
        reason: format!(
            "--resume must keep the run's configuration (only epochs, max_steps and workers may \
             change); changed: {}",
            diff.join(", ")
        ),
    })
}

/// The loss must match the model's output channels.
pub(super) fn check_classes(cfg: &TrainConfig, loss: LossKind) -> Result<(), TrainError> {
    let k = cfg.model.num_classes;
    let ok = match loss {
        LossKind::BceDice => k == 1,
        LossKind::CeDice => k >= 2,
    };
    if ok {
        Ok(())
    } else {
        Err(TrainError::Config {
            origin: "training configuration".into(),
            reason: format!(
                "loss {loss:?} needs {} classes but model.num_classes = {k} (ISIC: 1, Synapse: 9)",
                if loss == LossKind::BceDice {
                    "1"
                } else {
                    "2 or more"
                }
            ),
        })
    }
}

/// The model to train from: the weights committed after epoch `epochs_done`, else the
/// `init` checkpoint's, else a fresh initialisation.
pub(super) fn initial_model<B: AutodiffBackend + ScanBackend>(
    cfg: &TrainConfig,
    folder: &RunFolder,
    epochs_done: usize,
    device: &B::Device,
) -> Result<VmUnet<B>, TrainError> {
    let m = cfg.model.config().init::<B>(device)?;
    if epochs_done > 0 {
        return folder.load_model(m, epochs_done, device);
    }
    Ok(match &cfg.init {
        Some(p) => checkpoint::load_pretrained(m, p)?.0,
        None => m,
    })
}

/// AdamW as `cfg` says, with the state committed after epoch `epochs_done` (if any).
pub(super) fn optimizer<B: AutodiffBackend + ScanBackend>(
    cfg: &TrainConfig,
    folder: &RunFolder,
    epochs_done: usize,
    device: &B::Device,
) -> Result<impl Optimizer<VmUnet<B>, B>, TrainError> {
    let adamw = AdamWConfig::new()
        .with_beta_1(cfg.betas[0] as f32)
        .with_beta_2(cfg.betas[1] as f32)
        .with_epsilon(cfg.eps as f32)
        .with_weight_decay(cfg.weight_decay as f32);
    let optim = adamw.init::<B, VmUnet<B>>();
    if epochs_done > 0 {
        return folder.load_optimizer(optim, epochs_done, device);
    }
    Ok(optim)
}
