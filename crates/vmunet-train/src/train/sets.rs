//! The training and validation sets of a run.

use std::sync::Arc;

use crate::data::SegmentationSet;
use crate::{DatasetKind, TrainConfig, TrainError};

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
