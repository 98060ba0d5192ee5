//! Batches for training and validation through burn's data loader.
//!
//! An epoch is a list of `(index, augmentation seed)` items in the epoch's shuffled order; the
//! [`SegBatcher`] decodes and augments a batch's images in parallel (rayon) and stacks them. The
//! loader runs one background thread so batches arrive in order: a run is reproducible and
//! a resumed run repeats exactly what the killed one would have done.

use std::sync::Arc;

use burn::data::dataloader::{batcher::Batcher, DataLoader, DataLoaderBuilder};
use burn::data::dataset::Dataset;
use burn::tensor::{backend::Backend, Tensor, TensorData};
use rayon::prelude::*;
use vmunet_data::{DataError, Sample};

/// A segmentation dataset that loads one sample at a time.
pub trait SegmentationSet: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;
    /// Whether it holds no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Loads sample `index`, augmented with `augment` as seed when given.
    fn load(&self, index: usize, augment: Option<u64>) -> Result<Sample, DataError>;
}

/// ISIC images with the official training augmentations.
pub struct IsicSet(pub vmunet_data::IsicDataset);

impl SegmentationSet for IsicSet {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn load(&self, index: usize, augment: Option<u64>) -> Result<Sample, DataError> {
        let mut s = self.0.get(index)?;
        if let Some(seed) = augment {
            vmunet_data::augment_isic(&mut s, seed);
        }
        Ok(s)
    }
}

/// Synapse training slices with the official `RandomGenerator`.
pub struct SynapseSet {
    /// The slices.
    pub slices: vmunet_data::SynapseSlices,
    /// Output size (224 in the paper).
    pub size: usize,
}

impl SegmentationSet for SynapseSet {
    fn len(&self) -> usize {
        self.slices.len()
    }
    fn load(&self, index: usize, augment: Option<u64>) -> Result<Sample, DataError> {
        match augment {
            // The official order: augment at the stored size, then zoom.
            Some(seed) => {
                let mut s = self.slices.get_raw(index)?;
                vmunet_data::augment_synapse(&mut s, seed, self.size);
                Ok(s)
            }
            None => self.slices.get(index),
        }
    }
}

/// Already decoded samples held in memory (validation slices of Synapse volumes, tests).
pub struct MemorySet(pub Vec<Sample>);

impl SegmentationSet for MemorySet {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn load(&self, index: usize, _augment: Option<u64>) -> Result<Sample, DataError> {
        Ok(self.0[index].clone())
    }
}

/// One batch: images `(N, C, H, W)`, targets `(N, H, W)` (0/1 or class indices), names.
#[derive(Debug, Clone)]
pub struct SegBatch<B: Backend> {
    /// Input images.
    pub images: Tensor<B, 4>,
    /// Targets.
    pub targets: Tensor<B, 3>,
    /// Sample names, in batch order.
    pub names: Vec<String>,
}

/// One epoch's items in order.
#[derive(Debug, Clone)]
pub struct EpochItems(pub Vec<(usize, Option<u64>)>);

impl Dataset<(usize, Option<u64>)> for EpochItems {
    fn get(&self, index: usize) -> Option<(usize, Option<u64>)> {
        self.0.get(index).copied()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Decodes, augments and stacks a batch; a bad file becomes an error naming it.
#[derive(Clone)]
pub struct SegBatcher {
    set: Arc<dyn SegmentationSet>,
    pool: Arc<rayon::ThreadPool>,
}

impl SegBatcher {
    /// A batcher over `set` decoding with `workers` threads.
    pub fn new(set: Arc<dyn SegmentationSet>, workers: usize) -> Self {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers.max(1))
            .thread_name(|i| format!("vmunet-data-{i}"))
            .build()
            .map(Arc::new)
            .unwrap_or_else(|_| {
                Arc::new(
                    rayon::ThreadPoolBuilder::new()
                        .build()
                        .expect("rayon builds a default pool"),
                )
            });
        Self { set, pool }
    }
}

/// A batch or the message of the first sample that failed.
pub type BatchResult<B> = Result<SegBatch<B>, String>;

impl<B: Backend> Batcher<B, (usize, Option<u64>), BatchResult<B>> for SegBatcher {
    fn batch(&self, items: Vec<(usize, Option<u64>)>, device: &B::Device) -> BatchResult<B> {
        let samples: Vec<Sample> = self
            .pool
            .install(|| {
                items
                    .par_iter()
                    .map(|&(i, seed)| self.set.load(i, seed))
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| e.to_string())?;
        stack(&samples, device)
    }
}

/// Stacks samples of one size into a batch.
pub fn stack<B: Backend>(samples: &[Sample], device: &B::Device) -> BatchResult<B> {
    let first = samples.first().ok_or("empty batch")?;
    let (c, h, w) = (first.channels, first.height, first.width);
    let mut images = Vec::with_capacity(samples.len() * c * h * w);
    let mut targets = Vec::with_capacity(samples.len() * h * w);
    for s in samples {
        if (s.channels, s.height, s.width) != (c, h, w) {
            return Err(format!(
                "{}: size {}x{}x{} differs from {}x{}x{} of {} in the same batch",
                s.name, s.channels, s.height, s.width, c, h, w, first.name
            ));
        }
        images.extend_from_slice(&s.image);
        targets.extend_from_slice(&s.mask);
    }
    let n = samples.len();
    Ok(SegBatch {
        images: Tensor::from_data(TensorData::new(images, [n, c, h, w]), device),
        targets: Tensor::from_data(TensorData::new(targets, [n, h, w]), device),
        names: samples.iter().map(|s| s.name.clone()).collect(),
    })
}

/// A loader over `items` in their order, `batch_size` at a time, on `device`.
pub fn loader<B: Backend>(
    set: Arc<dyn SegmentationSet>,
    items: EpochItems,
    batch_size: usize,
    workers: usize,
    device: &B::Device,
) -> Arc<dyn DataLoader<B, BatchResult<B>>> {
    DataLoaderBuilder::new(SegBatcher::new(set, workers))
        .batch_size(batch_size)
        .num_workers(1)
        .set_device(device.clone())
        .build(items)
}

/// The permutation of `0..n` for `epoch` (Fisher-Yates over a SplitMix64 stream).
pub fn shuffled(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut state = vmunet_data::sample_seed(seed, epoch, u64::MAX);
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        p.swap(i, j);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let a = shuffled(100, 7, 3);
        let mut s = a.clone();
        s.sort_unstable();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
        assert_eq!(a, shuffled(100, 7, 3));
        assert_ne!(a, shuffled(100, 7, 4));
        assert_ne!(a, shuffled(100, 8, 3));
    }
}
