//! Validation during training and the paper's evaluation (`vmunet eval`).

use std::path::Path;
use std::sync::Arc;

use burn::tensor::{activation, backend::Backend, ElementConversion, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use vmunet_data::{DataError, Sample};
use vmunet_metrics::{BinaryMetrics, Confusion, SynapseMetrics, SynapseSummary};
use vmunet_model::VmUnet;
use vmunet_scan::ScanBackend;

use crate::data::{loader, EpochItems, MemorySet, SegmentationSet};
use crate::{loss, LossKind, Observer, TrainError};

/// Where logits come from during evaluation: a burn model, or any runtime running an exported
/// (or compressed) ONNX model, so both are scored by the same code.
pub trait LogitSource<B: Backend> {
    /// Logits `(N, classes, H, W)` of a preprocessed batch `(N, C, H, W)`.
    fn logits(&mut self, images: Tensor<B, 4>) -> Result<Tensor<B, 4>, TrainError>;
    /// Output classes.
    fn num_classes(&self) -> usize;
}

impl<B: Backend + ScanBackend> LogitSource<B> for &VmUnet<B> {
    fn logits(&mut self, images: Tensor<B, 4>) -> Result<Tensor<B, 4>, TrainError> {
        Ok(self.forward(images)?)
    }
    fn num_classes(&self) -> usize {
        VmUnet::num_classes(self)
    }
}

/// A runtime (tract, ONNX Runtime, ...) as a [`LogitSource`]: batches go to the host, through
/// the runtime, and back.
pub struct RuntimeSource<'a> {
    /// The opened model.
    pub runtime: &'a mut dyn vmunet_runtime::Runtime,
    /// Its output classes.
    pub classes: usize,
}

impl<B: Backend> LogitSource<B> for RuntimeSource<'_> {
    fn logits(&mut self, images: Tensor<B, 4>) -> Result<Tensor<B, 4>, TrainError> {
        let device = images.device();
        let shape = images.dims().to_vec();
        let x = vmunet_data::Array {
            shape,
            data: host(images),
        };
        let y = self.runtime.run(&x)?;
        let dims: [usize; 4] = y.shape.clone().try_into().map_err(|_| {
            TrainError::Batch(format!(
                "the model returned a {:?} output, not 4-D",
                y.shape
            ))
        })?;
        Ok(Tensor::from_data(TensorData::new(y.data, dims), &device))
    }
    fn num_classes(&self) -> usize {
        self.classes
    }
}

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
    validate_with(
        &mut &*model,
        set,
        loss_kind,
        batch_size,
        workers,
        threshold,
        device,
        observer,
    )
}

/// [`validate`] for any [`LogitSource`].
#[allow(clippy::too_many_arguments)]
pub fn validate_with<B: Backend>(
    source: &mut dyn LogitSource<B>,
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
        let logits = source.logits(batch.images)?;
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
pub fn evaluate_isic<B: Backend>(
    source: &mut dyn LogitSource<B>,
    set: Arc<dyn SegmentationSet>,
    batch_size: usize,
    workers: usize,
    threshold: f64,
    device: &B::Device,
    observer: &mut dyn Observer,
) -> Result<IsicReport, TrainError> {
    let images = set.len();
    let (loss, metrics) = validate_with(
        source,
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
pub fn evaluate_synapse<B: Backend>(
    source: &mut dyn LogitSource<B>,
    volumes: &vmunet_data::SynapseVolumes,
    size: usize,
    batch_size: usize,
    device: &B::Device,
    mut progress: impl FnMut(usize, usize),
) -> Result<SynapseSummary, TrainError> {
    let classes = source.num_classes();
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
            let labels = source.logits(x)?.argmax(1).float();
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

/// Options of [`evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    /// Input size (H = W); default 256 for ISIC, 224 for Synapse.
    pub size: Option<usize>,
    /// Images per batch.
    pub batch_size: usize,
    /// Evaluate at most this many images (ISIC).
    pub max_images: Option<usize>,
    /// Foreground threshold (ISIC).
    pub threshold: f64,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            size: None,
            batch_size: 8,
            max_images: None,
            threshold: 0.5,
        }
    }
}

/// The paper's evaluation of one model on one dataset.
#[derive(Debug, Clone)]
pub enum EvalReport {
    /// ISIC: pooled-confusion metrics over the images.
    Isic {
        /// What was evaluated (a checkpoint or an ONNX file and its runtime).
        model: String,
        /// The metrics and loss.
        report: IsicReport,
        /// Foreground threshold used.
        threshold: f64,
    },
    /// Synapse: per-organ DSC and HD95 over the test volumes.
    Synapse {
        /// What was evaluated.
        model: String,
        /// The per-organ and per-case summary.
        summary: SynapseSummary,
    },
}

impl EvalReport {
    /// The paper's table in Markdown.
    pub fn markdown(&self) -> String {
        match self {
            EvalReport::Isic { report: r, .. } => {
                let m = &r.metrics;
                format!(
                    "| images | mIoU | DSC | Acc | Sen | Spe |\n|---|---|---|---|---|---|\n| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
                    r.images,
                    m.miou * 100.0,
                    m.dsc * 100.0,
                    m.acc * 100.0,
                    m.sen * 100.0,
                    m.spe * 100.0
                )
            }
            EvalReport::Synapse { summary: s, .. } => {
                let mut t = String::from("| organ | DSC | HD95 |\n|---|---|---|\n");
                for o in &s.organs {
                    t += &format!("| {} | {:.4} | {:.2} |\n", o.name, o.mean_dice, o.mean_hd95);
                }
                t += &format!("| mean | {:.4} | {:.2} |\n", s.mean_dice, s.mean_hd95);
                t
            }
        }
    }

    /// The report as JSON (`dataset` says which form).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            EvalReport::Isic {
                model,
                report: r,
                threshold,
            } => {
                let m = &r.metrics;
                serde_json::json!({
                    "dataset": "isic",
                    "model": model,
                    "images": r.images,
                    "loss": r.loss,
                    "threshold": threshold,
                    "miou": m.miou,
                    "dsc": m.dsc,
                    "acc": m.acc,
                    "sen": m.sen,
                    "spe": m.spe,
                })
            }
            EvalReport::Synapse { model, summary: s } => {
                let organs: serde_json::Map<String, serde_json::Value> = s
                    .organs
                    .iter()
                    .map(|o| {
                        (
                            o.name.clone(),
                            serde_json::json!({"dsc": o.mean_dice, "hd95": o.mean_hd95}),
                        )
                    })
                    .collect();
                serde_json::json!({
                    "dataset": "synapse",
                    "model": model,
                    "cases": s.num_cases,
                    "dsc": s.mean_dice,
                    "hd95": s.mean_hd95,
                    "organs": organs,
                    "per_case": s.cases,
                })
            }
        }
    }
}

/// Evaluates `source` on `data` with the paper's metrics: Synapse volumes (multi-class models)
/// when `data` is in the Synapse layout, else ISIC images (one-class models): the `val` split of
/// an ISIC root or a plain `images/` + `masks/` folder ([`vmunet_data::IsicDataset::open_eval`]). `progress` is called after each Synapse case.
pub fn evaluate<B: Backend>(
    source: &mut dyn LogitSource<B>,
    model: &str,
    data: &Path,
    opts: &EvalOptions,
    device: &B::Device,
    progress: impl FnMut(usize, usize),
) -> Result<EvalReport, TrainError> {
    let classes = source.num_classes();
    if data.join("test_vol_h5").is_dir() {
        if classes < 2 {
            return Err(TrainError::Run {
                path: model.into(),
                reason: format!(
                    "a {classes}-class model cannot be evaluated on Synapse (9 classes)"
                ),
            });
        }
        let vols = vmunet_data::SynapseVolumes::open(data)?;
        let size = opts.size.unwrap_or(224);
        let summary = evaluate_synapse(source, &vols, size, opts.batch_size, device, progress)?;
        return Ok(EvalReport::Synapse {
            model: model.into(),
            summary,
        });
    }
    if classes != 1 {
        return Err(TrainError::Run {
            path: model.into(),
            reason: format!(
                "ISIC evaluation needs a one-class model, this one has {classes} classes"
            ),
        });
    }
    let size = opts.size.unwrap_or(256);
    let set = Arc::new(Limited {
        inner: Arc::new(crate::data::IsicSet(vmunet_data::IsicDataset::open_eval(
            data, size,
        )?)),
        max: opts.max_images,
    });
    let report = evaluate_isic(
        source,
        set,
        opts.batch_size,
        2,
        opts.threshold,
        device,
        &mut crate::Silent,
    )?;
    Ok(EvalReport::Isic {
        model: model.into(),
        report,
        threshold: opts.threshold,
    })
}

impl<'a> RuntimeSource<'a> {
    /// An opened exported model, with its output classes from the configuration it records.
    pub fn for_session(session: &'a mut vmunet_runtime::Session) -> Result<Self, TrainError> {
        let classes = output_classes(session)?;
        Ok(Self {
            runtime: session,
            classes,
        })
    }
}

/// The number of output classes an exported model predicts (from its recorded config).
fn output_classes(session: &vmunet_runtime::Session) -> Result<usize, TrainError> {
    let file = session.file().ok_or_else(|| TrainError::Run {
        path: session.label().into(),
        reason: "not an ONNX session: no file information".into(),
    })?;
    let bad = |reason: &str| TrainError::Run {
        path: file.path.clone(),
        reason: reason.into(),
    };
    let cfg = file
        .metadata
        .config
        .as_deref()
        .ok_or_else(|| bad("no architecture config in the metadata"))?;
    let cfg: vmunet_model::VmUnetConfig =
        serde_json::from_str(cfg).map_err(|_| bad("unreadable architecture config"))?;
    Ok(cfg.num_classes)
}

/// Evaluates a checkpoint (burn, CPU) on `data`; it is scored at the size it was trained at
/// unless `opts.size` says otherwise. `progress` is called after each Synapse case.
pub fn evaluate_checkpoint(
    path: &Path,
    data: &Path,
    opts: &EvalOptions,
    progress: impl FnMut(usize, usize),
) -> Result<EvalReport, TrainError> {
    use vmunet_model::{checkpoint, CpuBackend};
    let device = Default::default();
    let (model, info) = checkpoint::load::<CpuBackend>(path, &device)?;
    let opts = EvalOptions {
        size: opts.size.or(info.input_size),
        ..opts.clone()
    };
    let label = path.display().to_string();
    evaluate::<CpuBackend>(&mut &model, &label, data, &opts, &device, progress)
}

/// Evaluates an exported (or compressed) model in its session on `data`; a fixed-size export
/// runs at its own size (a different `opts.size` is an error).
pub fn evaluate_session(
    session: &mut vmunet_runtime::Session,
    data: &Path,
    opts: &EvalOptions,
    progress: impl FnMut(usize, usize),
) -> Result<EvalReport, TrainError> {
    use vmunet_runtime::Runtime as _;
    let mut opts = opts.clone();
    if session.fixed_size().is_some() {
        opts.size = Some(session.input_size(opts.size)?.0);
    }
    let label = format!("{} ({})", session.label(), session.description());
    let mut source = RuntimeSource::for_session(session)?;
    evaluate::<vmunet_model::CpuBackend>(
        &mut source,
        &label,
        data,
        &opts,
        &Default::default(),
        progress,
    )
}
