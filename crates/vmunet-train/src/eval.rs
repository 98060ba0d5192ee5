//! Validation during training and the paper's evaluation (`vmunet eval`).

use std::sync::Arc;

use burn::tensor::{activation, backend::Backend, ElementConversion, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use vmunet_data::{DataError, Sample};
use vmunet_metrics::{BinaryMetrics, Confusion, SynapseMetrics, SynapseSummary};
use vmunet_model::VmUnet;
use vmunet_scan::ScanBackend;

use crate::data::{loader, EpochItems, MemorySet, SegmentationSet};
use crate::{loss, LossKind, Observer, TrainError};

/// The first `max` samples of a set (all when `None`).
pub struct Limited {
    /// The set.
    pub inner: Arc<dyn SegmentationSet>,
    /// Limit.
    pub max: Option<usize>,
}

impl SegmentationSet for Limited {
    fn len(&self) -> usize {
        self.max
            .map_or(self.inner.len(), |m| m.min(self.inner.len()))
    }
    fn load(&self, index: usize, augment: Option<u64>) -> Result<Sample, DataError> {
        self.inner.load(index, augment)
    }
}

/// Validation loss and metrics of `model` on `set` (no augmentation).
///
/// Binary models: one confusion matrix pooled over every pixel at `threshold` (the official
/// ISIC metrics). Multi-class models: foreground (any organ) against background, pooled the
/// same way; the per-organ DSC / HD95 of the paper come from [`evaluate_synapse`].
#[allow(clippy::too_many_arguments)]
pub fn validate<B: Backend + ScanBackend>(
    model: &VmUnet<B>,
    set: Arc<dyn SegmentationSet>,
    loss_kind: LossKind,
    batch_size: usize,
    workers: usize,
    threshold: f64,
    device: &B::Device,
    observer: &mut dyn Observer,
) -> Result<(f64, BinaryMetrics), TrainError> {
    let n = set.len();
    let items = EpochItems((0..n).map(|i| (i, None)).collect());
    observer.validation_start(n.div_ceil(batch_size.max(1)));
    let dl = loader::<B>(set, items, batch_size.max(1), workers, device);
    let mut confusion = Confusion::default();
    let (mut loss_sum, mut count) = (0.0, 0usize);
    for batch in dl.iter() {
        let batch = batch.map_err(TrainError::Batch)?;
        let k = batch.names.len();
        let logits = model.forward(batch.images)?;
        let l = loss::loss(loss_kind, logits.clone(), batch.targets.clone());
        loss_sum += l.into_scalar().elem::<f64>() * k as f64;
        count += k;
        let (probs, truth) = foreground(logits, batch.targets);
        confusion.add_with_threshold(&probs, &truth, threshold as f32)?;
    }
    Ok((loss_sum / count.max(1) as f64, confusion.metrics()))
}

/// Foreground probability and 0/1 truth per pixel, on the host.
fn foreground<B: Backend>(logits: Tensor<B, 4>, targets: Tensor<B, 3>) -> (Vec<f32>, Vec<f32>) {
    let [_, k, _, _] = logits.dims();
    let probs = if k == 1 {
        activation::sigmoid(logits)
    } else {
        // P(any organ) = 1 - P(background).
        activation::softmax(logits, 1).narrow(1, 0, 1).neg() + 1.0
    };
    let truth = targets.greater_elem(0.5).float();
    (host(probs), host(truth))
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .unwrap_or_default()
}

/// The validation slices of Synapse: every slice of the test volumes at the model size
/// (at most `max` slices, spread over the volumes).
pub fn synapse_val_slices(
    volumes: &vmunet_data::SynapseVolumes,
    size: usize,
    max: Option<usize>,
) -> Result<MemorySet, TrainError> {
    let mut out = Vec::new();
    for i in 0..volumes.len() {
        let v = volumes.get(i)?;
        for d in 0..v.depth {
            let image = v.model_input(d, size).unwrap_or_default();
            let label = v
                .label_slice(d)
                .map(|l| {
                    vmunet_data::zoom(
                        l,
                        v.height,
                        v.width,
                        size,
                        size,
                        vmunet_data::ZoomOrder::Nearest,
                    )
                })
                .unwrap_or_default();
            out.push(Sample {
                name: format!("{}#{d}", v.name),
                image,
                channels: 1,
                height: size,
                width: size,
                mask: label,
            });
        }
    }
    if let Some(m) = max {
        if out.len() > m {
            let stride = out.len() as f64 / m as f64;
            out = (0..m)
                .map(|i| out[(i as f64 * stride) as usize].clone())
                .collect();
        }
    }
    Ok(MemorySet(out))
}

/// The paper's ISIC table: pooled-confusion metrics and the loss over a split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IsicReport {
    /// Images evaluated.
    pub images: usize,
    /// Mean loss (BceDice).
    pub loss: f64,
    /// Metrics.
    #[serde(flatten)]
    pub metrics: BinaryMetrics,
}

/// Evaluates a binary model on an ISIC-layout folder's `val` split.
pub fn evaluate_isic<B: Backend + ScanBackend>(
    model: &VmUnet<B>,
    set: Arc<dyn SegmentationSet>,
    batch_size: usize,
    workers: usize,
    threshold: f64,
    device: &B::Device,
    observer: &mut dyn Observer,
) -> Result<IsicReport, TrainError> {
    let images = set.len();
    let (loss, metrics) = validate(
        model,
        set,
        LossKind::BceDice,
        batch_size,
        workers,
        threshold,
        device,
        observer,
    )?;
    Ok(IsicReport {
        images,
        loss,
        metrics,
    })
}

/// Evaluates a multi-class model on Synapse test volumes as the official `test_single_volume`:
/// each slice zoomed to `size` (cubic), argmax, zoomed back (nearest), then per case and organ
/// DSC and HD95 (medpy conventions), averaged over cases, then organs.
pub fn evaluate_synapse<B: Backend + ScanBackend>(
    model: &VmUnet<B>,
    volumes: &vmunet_data::SynapseVolumes,
    size: usize,
    batch_size: usize,
    device: &B::Device,
    mut progress: impl FnMut(usize, usize),
) -> Result<SynapseSummary, TrainError> {
    let classes = model.num_classes();
    let mut metrics = SynapseMetrics::new(classes)?;
    for i in 0..volumes.len() {
        let v = volumes.get(i)?;
        let mut pred = Vec::with_capacity(v.image.len());
        for start in (0..v.depth).step_by(batch_size.max(1)) {
            let end = (start + batch_size.max(1)).min(v.depth);
            let mut input = Vec::with_capacity((end - start) * size * size);
            for d in start..end {
                input.extend(v.model_input(d, size).unwrap_or_default());
            }
            let x = Tensor::<B, 4>::from_data(
                TensorData::new(input, [end - start, 1, size, size]),
                device,
            );
            let labels = model.forward(x)?.argmax(1).float();
            let labels = host(labels);
            for (j, _) in (start..end).enumerate() {
                let slice = &labels[j * size * size..(j + 1) * size * size];
                pred.extend(v.restore_prediction(slice, size));
            }
        }
        let p: Vec<u8> = pred
            .iter()
            .map(|&x| x.round().clamp(0.0, 255.0) as u8)
            .collect();
        let g: Vec<u8> = v
            .label
            .iter()
            .map(|&x| x.round().clamp(0.0, 255.0) as u8)
            .collect();
        metrics.add_case(&v.name, &p, &g, &[v.depth, v.height, v.width])?;
        progress(i + 1, volumes.len());
    }
    Ok(metrics.summary())
}
