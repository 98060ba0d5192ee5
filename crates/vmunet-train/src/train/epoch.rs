//! One epoch: the optimizer steps over the shuffled, augmented training set, then validation
//! when it is due.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ElementConversion;
use vmunet_model::VmUnet;
use vmunet_scan::ScanBackend;

use super::observer::Observer;
use super::sets::SharedSet;
use super::state::EpochRecord;
use crate::data::{loader, shuffled, EpochItems};
use crate::eval::validate;
use crate::{cosine_lr, loss, LossKind, TrainConfig, TrainError};

/// What every epoch of a run reads.
pub(super) struct Epochs<'a, B: AutodiffBackend> {
    /// The run's configuration.
    pub cfg: &'a TrainConfig,
    /// The training set.
    pub train_set: SharedSet,
    /// The validation set.
    pub val_set: SharedSet,
    /// The loss trained and validated with.
    pub loss: LossKind,
    /// Images per batch (at most the training set's size).
    pub batch_size: usize,
    /// The device trained on.
    pub device: &'a B::Device,
}

/// The optimizer steps of one epoch.
struct Steps {
    steps: usize,
    images: usize,
    loss_sum: f64,
    seconds: f64,
}

impl<B> Epochs<'_, B>
where
    B: AutodiffBackend + ScanBackend,
    B::InnerBackend: ScanBackend,
{
    /// Trains epoch `epoch` (0-based) from `model`, counting steps in `global_step`, and
    /// validates when due; returns the trained model and the epoch's record.
    pub(super) fn run<O: Optimizer<VmUnet<B>, B>>(
        &self,
        model: VmUnet<B>,
        optim: &mut O,
        global_step: &mut usize,
        epoch: usize,
        observer: &mut dyn Observer,
    ) -> Result<(VmUnet<B>, EpochRecord), TrainError> {
        let cfg = self.cfg;
        let started = Instant::now();
        let lr = cosine_lr(cfg.lr, cfg.eta_min, cfg.t_max, epoch);
        let (model, done) = self.train_steps(model, optim, global_step, epoch, lr, observer)?;
        let last = epoch + 1 == cfg.epochs || cfg.max_steps.is_some_and(|m| *global_step >= m);
        let (val_loss, val) = if (epoch + 1).is_multiple_of(cfg.val_every) || last {
            let (l, m) = validate(
                &model.valid(),
                self.val_set.clone(),
                self.loss,
                self.batch_size,
                cfg.workers,
                cfg.threshold,
                self.device,
                observer,
            )?;
            (Some(l), Some(m))
        } else {
            (None, None)
        };
        let record = EpochRecord {
            epoch: epoch + 1,
            steps: done.steps,
            lr,
            train_loss: done.loss_sum / done.steps.max(1) as f64,
            val_loss,
            val,
            seconds: started.elapsed().as_secs_f64(),
            images_per_s: done.images as f64 / done.seconds.max(1e-9),
        };
        Ok((model, record))
    }

    /// The optimizer steps of epoch `epoch` at learning rate `lr`: the whole shuffled training
    /// set, or what is left of `max_steps`. The shuffle, each sample's augmentation and the
    /// backend seed (drop path) are functions of (seed, epoch), so a resumed run repeats them.
    fn train_steps<O: Optimizer<VmUnet<B>, B>>(
        &self,
        mut model: VmUnet<B>,
        optim: &mut O,
        global_step: &mut usize,
        epoch: usize,
        lr: f64,
        observer: &mut dyn Observer,
    ) -> Result<(VmUnet<B>, Steps), TrainError> {
        let cfg = self.cfg;
        B::seed(
            self.device,
            vmunet_data::sample_seed(cfg.seed, epoch as u64, u64::MAX - 1),
        );
        let n = self.train_set.len();
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
        let steps_total = n.div_ceil(self.batch_size);
        let budget = cfg
            .max_steps
            .map(|m| m - *global_step)
            .unwrap_or(usize::MAX)
            .min(steps_total);
        observer.epoch_start(epoch + 1, cfg.epochs, budget, lr);
        let dl = loader::<B>(
            self.train_set.clone(),
            EpochItems(items),
            self.batch_size,
            cfg.workers,
            self.device,
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
            let l = loss::loss(self.loss, logits, batch.targets);
            let value = l.clone().into_scalar().elem::<f64>();
            if !value.is_finite() {
                return Err(TrainError::Diverged {
                    epoch: epoch + 1,
                    step: *global_step + 1,
                    value,
                });
            }
            let grads = GradientsParams::from_grads(l.backward(), &model);
            model = optim.step(lr, model, grads);
            steps += 1;
            images += count;
            *global_step += 1;
            loss_sum += value;
            let ips = images as f64 / train_start.elapsed().as_secs_f64().max(1e-9);
            observer.step(steps, value, ips);
        }
        let done = Steps {
            steps,
            images,
            loss_sum,
            seconds: train_start.elapsed().as_secs_f64(),
        };
        Ok((model, done))
    }
}
