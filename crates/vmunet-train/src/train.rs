//! The training loop: AdamW + per-epoch cosine schedule, validation, checkpoints, resume.
//!
//! A run folder holds:
//! - `state.json`: the commit point of every epoch (config, epochs done, step, best, history);
//! - `checkpoints/epoch-NNNN.model.bin` + `.optim.bin`: model and optimizer after epoch NNNN in
//!   burn's own record format, which keeps the parameter ids the optimizer state refers to (the
//!   two most recent epochs are kept);
//! - `last.bpk`, `best.bpk` (lowest validation loss): loadable by every `--checkpoint` option;
//! - `metrics.csv`, `metrics.json`, `curves.png`.
//!
//! Every file is written to a temporary name and renamed; `state.json` is written after the
//! epoch's checkpoint, so a run killed at any moment resumes from the last committed epoch.
//! Randomness is a function of (seed, epoch): the shuffle, each sample's augmentation and the
//! backend seed (drop path) are derived from them, so a resumed run repeats exactly what the
//! uninterrupted run does.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ElementConversion;
use serde::{Deserialize, Serialize};
use vmunet_data::write_atomic;
use vmunet_metrics::BinaryMetrics;
use vmunet_model::{checkpoint, VmUnet};
use vmunet_scan::ScanBackend;

use crate::data::{loader, shuffled, EpochItems, SegmentationSet};
use crate::eval::validate;
use crate::{cosine_lr, loss, DatasetKind, LossKind, TrainConfig, TrainError};

/// One epoch's record in the metrics log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Optimizer steps taken in the epoch.
    pub steps: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Validation loss, when validated.
    pub val_loss: Option<f64>,
    /// Validation metrics (pooled confusion matrix; for Synapse slices, the foreground
    /// classes pooled), when validated.
    pub val: Option<BinaryMetrics>,
    /// Wall time of the epoch (training and validation), seconds.
    pub seconds: f64,
    /// Training throughput, images per second.
    pub images_per_s: f64,
}

/// The committed state of a run (`state.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The configuration the run started with (epochs and max_steps may grow on resume).
    pub config: TrainConfig,
    /// Dataset layout.
    pub dataset: DatasetKind,
    /// Completed epochs.
    pub epochs_done: usize,
    /// Optimizer steps so far.
    pub global_step: usize,
    /// Best epoch and its validation loss.
    pub best: Option<(usize, f64)>,
    /// Per-epoch records.
    pub history: Vec<EpochRecord>,
}

/// What the loop reports while it runs (progress bars live in the binary).
pub trait Observer {
    /// An epoch of `steps` optimizer steps starts.
    fn epoch_start(&mut self, _epoch: usize, _epochs: usize, _steps: usize, _lr: f64) {}
    /// One optimizer step finished.
    fn step(&mut self, _step_in_epoch: usize, _loss: f64, _images_per_s: f64) {}
    /// Validation starts over `batches` batches.
    fn validation_start(&mut self, _batches: usize) {}
    /// An epoch ended (checkpoint committed).
    fn epoch_end(&mut self, _record: &EpochRecord, _best: bool) {}
}

/// An observer that reports nothing.
pub struct Silent;
impl Observer for Silent {}

/// The outcome of [`train`].
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run folder.
    pub out: PathBuf,
    /// The final state.
    pub state: RunState,
}

const STATE: &str = "state.json";

fn run_file(out: &Path, name: &str) -> PathBuf {
    out.join(name)
}

/// A dataset shared with the loader threads.
pub type SharedSet = Arc<dyn SegmentationSet>;

/// Opens the training data of `cfg` (train split with augmentation, validation without).
pub fn open_sets(
    cfg: &TrainConfig,
    kind: DatasetKind,
) -> Result<(SharedSet, SharedSet), TrainError> {
    let size = cfg.size_for(kind);
    Ok(match kind {
        DatasetKind::Synapse => {
            let slices = vmunet_data::SynapseSlices::open(&cfg.data, size)?;
            let vols = vmunet_data::SynapseVolumes::open(&cfg.data)?;
            let val = crate::eval::synapse_val_slices(&vols, size, cfg.max_val_images)?;
            (
                Arc::new(crate::data::SynapseSet { slices, size }),
                Arc::new(val),
            )
        }
        _ => {
            let train = vmunet_data::IsicDataset::open(&cfg.data, vmunet_data::Split::Train, size)?;
            let val = vmunet_data::IsicDataset::open(&cfg.data, vmunet_data::Split::Val, size)?;
            (
                Arc::new(crate::data::IsicSet(train)),
                Arc::new(crate::eval::Limited {
                    inner: Arc::new(crate::data::IsicSet(val)),
                    max: cfg.max_val_images,
                }),
            )
        }
    })
}

/// Trains as `cfg` says; with `resume`, continues the run in `cfg.out` from its last committed
/// epoch (a new `epochs` / `max_steps` may extend it).
pub fn train<B>(
    cfg: TrainConfig,
    resume: bool,
    device: &B::Device,
    observer: &mut dyn Observer,
) -> Result<RunSummary, TrainError>
where
    B: AutodiffBackend + ScanBackend,
    B::InnerBackend: ScanBackend,
{
    let out = cfg.out.clone();
    let state_path = run_file(&out, STATE);
    let (mut state, cfg) = if resume {
        let prev = read_state(&state_path)?;
        check_resume(&prev.config, &cfg, &state_path)?;
        let mut prev = prev;
        prev.config.epochs = cfg.epochs;
        prev.config.max_steps = cfg.max_steps;
        prev.config.workers = cfg.workers;
        let c = prev.config.clone();
        (prev, c)
    } else {
        if state_path.exists() {
            return Err(TrainError::Run {
                path: out.clone(),
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
        (
            RunState {
                config: c.clone(),
                dataset: kind,
                epochs_done: 0,
                global_step: 0,
                best: None,
                history: Vec::new(),
            },
            c,
        )
    };
    let kind = state.dataset;
    // Recorded in best.bpk / last.bpk: evaluation, export and inference default to it.
    let trained_size = Some(cfg.size_for(kind));
    let loss_kind = cfg.loss.unwrap_or(kind.default_loss());
    check_classes(&cfg, loss_kind)?;
    std::fs::create_dir_all(out.join("checkpoints")).map_err(|e| TrainError::io(&out, e))?;
    let (train_set, val_set) = open_sets(&cfg, kind)?;
    if train_set.is_empty() {
        return Err(TrainError::Run {
            path: cfg.data.clone(),
            reason: "the training split is empty".into(),
        });
    }

    // Model and optimizer.
    B::seed(device, cfg.seed);
    let recorder = BinFileRecorder::<FullPrecisionSettings>::new();
    let mut model: VmUnet<B> = if state.epochs_done > 0 {
        // burn's own record keeps the parameter ids the optimizer state is keyed by.
        let p = epoch_file(&out, state.epochs_done, "model.bin");
        cfg.model
            .config()
            .init::<B>(device)?
            .load_file(p.clone(), &recorder, device)
            .map_err(|e| TrainError::Run {
                path: p,
                reason: format!("cannot read the model state: {e}"),
            })?
    } else {
        let m = cfg.model.config().init::<B>(device)?;
        match &cfg.init {
            Some(p) => checkpoint::load_pretrained(m, p)?.0,
            None => m,
        }
    };
    let adamw = AdamWConfig::new()
        .with_beta_1(cfg.betas[0] as f32)
        .with_beta_2(cfg.betas[1] as f32)
        .with_epsilon(cfg.eps as f32)
        .with_weight_decay(cfg.weight_decay as f32);
    let mut optim = adamw.init::<B, VmUnet<B>>();
    if state.epochs_done > 0 {
        let p = epoch_file(&out, state.epochs_done, "optim.bin");
        let record = recorder
            .load(p.clone(), device)
            .map_err(|e| TrainError::Run {
                path: p,
                reason: format!("cannot read the optimizer state: {e}"),
            })?;
        optim = optim.load_record(record);
    }

    let n = train_set.len();
    let bs = cfg.batch_size.min(n);
    for epoch in state.epochs_done..cfg.epochs {
        if cfg.max_steps.is_some_and(|m| state.global_step >= m) {
            break;
        }
        let started = Instant::now();
        let lr = cosine_lr(cfg.lr, cfg.eta_min, cfg.t_max, epoch);
        B::seed(
            device,
            vmunet_data::sample_seed(cfg.seed, epoch as u64, u64::MAX - 1),
        );
        let order = shuffled(n, cfg.seed, epoch as u64);
        let items: Vec<(usize, Option<u64>)> = order
            .iter()
            .map(|&i| {
                (
                    i,
                    Some(vmunet_data::sample_seed(cfg.seed, epoch as u64, i as u64)),
                )
            })
            .collect();
        let steps_total = n.div_ceil(bs);
        let budget = cfg
            .max_steps
            .map(|m| m - state.global_step)
            .unwrap_or(usize::MAX)
            .min(steps_total);
        observer.epoch_start(epoch + 1, cfg.epochs, budget, lr);
        let dl = loader::<B>(
            train_set.clone(),
            EpochItems(items),
            bs,
            cfg.workers,
            device,
        );
        let (mut loss_sum, mut steps, mut images) = (0.0, 0usize, 0usize);
        let train_start = Instant::now();
        for batch in dl.iter() {
            if steps >= budget {
                break;
            }
            let batch = batch.map_err(TrainError::Batch)?;
            let count = batch.names.len();
            let logits = model.forward(batch.images)?;
            let l = loss::loss(loss_kind, logits, batch.targets);
            let value = l.clone().into_scalar().elem::<f64>();
            if !value.is_finite() {
                return Err(TrainError::Diverged {
                    epoch: epoch + 1,
                    step: state.global_step + 1,
                    value,
                });
            }
            let grads = GradientsParams::from_grads(l.backward(), &model);
            model = optim.step(lr, model, grads);
            steps += 1;
            images += count;
            state.global_step += 1;
            loss_sum += value;
            let ips = images as f64 / train_start.elapsed().as_secs_f64().max(1e-9);
            observer.step(steps, value, ips);
        }
        let train_secs = train_start.elapsed().as_secs_f64();
        let last = epoch + 1 == cfg.epochs || cfg.max_steps.is_some_and(|m| state.global_step >= m);
        let (val_loss, val) = if (epoch + 1) % cfg.val_every == 0 || last {
            let (l, m) = validate(
                &model.valid(),
                val_set.clone(),
                loss_kind,
                bs,
                cfg.workers,
                cfg.threshold,
                device,
                observer,
            )?;
            (Some(l), Some(m))
        } else {
            (None, None)
        };
        let record = EpochRecord {
            epoch: epoch + 1,
            steps,
            lr,
            train_loss: loss_sum / steps.max(1) as f64,
            val_loss,
            val,
            seconds: started.elapsed().as_secs_f64(),
            images_per_s: images as f64 / train_secs.max(1e-9),
        };
        let improved = match (val_loss, state.best) {
            (Some(v), Some((_, b))) => v < b,
            (Some(_), None) => true,
            _ => false,
        };
        // Checkpoint, then commit.
        let inner = model.valid();
        save_record(
            &recorder,
            model.clone().into_record(),
            &epoch_file(&out, epoch + 1, "model.bin"),
        )?;
        save_record(
            &recorder,
            optim.to_record(),
            &epoch_file(&out, epoch + 1, "optim.bin"),
        )?;
        if improved {
            checkpoint::save_with_input_size(&inner, &run_file(&out, "best.bpk"), trained_size)?;
            state.best = val_loss.map(|v| (epoch + 1, v));
        }
        state.epochs_done = epoch + 1;
        state.history.push(record.clone());
        write_json(&state_path, &state)?;
        checkpoint::save_with_input_size(&inner, &run_file(&out, "last.bpk"), trained_size)?;
        write_logs(&out, &state)?;
        prune(&out, epoch + 1);
        observer.epoch_end(&record, improved);
    }
    Ok(RunSummary { out, state })
}

fn check_classes(cfg: &TrainConfig, loss: LossKind) -> Result<(), TrainError> {
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

fn epoch_file(out: &Path, epoch: usize, ext: &str) -> PathBuf {
    out.join("checkpoints")
        .join(format!("epoch-{epoch:04}.{ext}"))
}

fn save_record<R: burn::record::Record<B>, B: burn::tensor::backend::Backend>(
    recorder: &BinFileRecorder<FullPrecisionSettings>,
    record: R,
    path: &Path,
) -> Result<(), TrainError> {
    // The recorder sets its own extension (`.bin`) on the path it is given.
    let tmp_stem = path.with_file_name(format!(".optimizer-{}", std::process::id()));
    recorder
        .record(record, tmp_stem.clone())
        .map_err(|e| TrainError::Run {
            path: path.to_path_buf(),
            reason: format!("cannot write the training state: {e}"),
        })?;
    let written = tmp_stem.with_extension("bin");
    std::fs::rename(&written, path).map_err(|e| TrainError::io(path, e))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| TrainError::Run {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, text.as_bytes())?;
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
    write_atomic(&out.join("metrics.csv"), csv.as_bytes())?;
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

/// Keeps the checkpoints of the two most recent epochs.
fn prune(out: &Path, epoch: usize) {
    if epoch > 2 {
        for ext in ["model.bin", "optim.bin"] {
            let _ = std::fs::remove_file(epoch_file(out, epoch - 2, ext));
        }
    }
}
