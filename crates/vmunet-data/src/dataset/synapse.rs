//! Synapse multi-organ CT as preprocessed by TransUNet (and read by VM-UNet):
//! `ROOT/train_npz/<slice>.npz` (keys `image`, `label`, each (H, W)),
//! `ROOT/test_vol_h5/<case>.npy.h5` (datasets `image`, `label`, each (D, H, W)), listed by
//! `ROOT/lists/lists_Synapse/train.txt` and `ROOT/lists/lists_Synapse/test_vol.txt`.

use std::path::{Path, PathBuf};

use super::{format_err, io_err, out_of_range, Sample};
use crate::augment::{zoom, zoom_sample, ZoomOrder};
use crate::npy::Array;
use crate::{read_npz, DataError};

/// Folder of the list files, relative to the dataset root.
pub const LIST_DIR: &str = "lists/lists_Synapse";

/// Reads a list file: one name per line, blank lines skipped, surrounding space trimmed.
fn read_list(path: &Path) -> Result<Vec<String>, DataError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        return Err(format_err(path, "the list names no samples"));
    }
    Ok(names)
}

/// The files a list names: `ROOT/<dir>/<name><ext>` for each name in `ROOT/LIST_DIR/<list>`.
#[derive(Debug, Clone)]
struct Listed {
    root: PathBuf,
    dir: &'static str,
    ext: &'static str,
    names: Vec<String>,
}

impl Listed {
    /// Reads the list and checks that every named file exists; the error names the first
    /// missing file and the list that named it.
    fn open(
        root: &Path,
        list: &str,
        dir: &'static str,
        ext: &'static str,
    ) -> Result<Self, DataError> {
        let list = root.join(LIST_DIR).join(list);
        let names = read_list(&list)?;
        for n in &names {
            let p = root.join(dir).join(format!("{n}{ext}"));
            if !p.is_file() {
                return Err(format_err(
                    &p,
                    format!("file is missing (listed in {})", list.display()),
                ));
            }
        }
        Ok(Self {
            root: root.to_path_buf(),
            dir,
            ext,
            names,
        })
    }

    fn name(&self, i: usize) -> Option<&str> {
        self.names.get(i).map(String::as_str)
    }

    fn path(&self, i: usize) -> Option<PathBuf> {
        let (dir, ext) = (self.dir, self.ext);
        self.name(i)
            .map(|n| self.root.join(dir).join(format!("{n}{ext}")))
    }

    /// Item `i`'s name and path, or an error naming the dataset and the valid range.
    fn get(&self, i: usize) -> Result<(&str, PathBuf), DataError> {
        match (self.name(i), self.path(i)) {
            (Some(n), Some(p)) => Ok((n, p)),
            _ => Err(out_of_range(&self.root, i, self.names.len())),
        }
    }
}

fn take_2d(
    path: &Path,
    arrays: &mut std::collections::BTreeMap<String, Array>,
    key: &str,
) -> Result<Array, DataError> {
    let keys: Vec<String> = arrays.keys().cloned().collect();
    let a = arrays.remove(key).ok_or_else(|| {
        format_err(
            path,
            format!("has no '{key}' array (keys: {})", keys.join(", ")),
        )
    })?;
    if a.shape.len() != 2 {
        return Err(format_err(
            path,
            format!("'{key}' has shape {:?}; expected (H, W)", a.shape),
        ));
    }
    Ok(a)
}

/// Training slices of Synapse (`train.txt` / `train_npz`).
#[derive(Debug, Clone)]
pub struct SynapseSlices {
    files: Listed,
    size: usize,
}

impl SynapseSlices {
    /// Reads `lists/lists_Synapse/train.txt` and checks every listed `train_npz/<name>.npz`
    /// exists; [`get`](Self::get) yields `size x size` samples (224 for VM-UNet).
    pub fn open(root: &Path, size: usize) -> Result<Self, DataError> {
        Ok(Self {
            files: Listed::open(root, "train.txt", "train_npz", ".npz")?,
            size,
        })
    }

    /// Number of slices.
    pub fn len(&self) -> usize {
        self.files.names.len()
    }

    /// True when no slices are listed (never, after a successful `open`).
    pub fn is_empty(&self) -> bool {
        self.files.names.is_empty()
    }

    /// Name of slice `i` as listed.
    pub fn name(&self, i: usize) -> Option<&str> {
        self.files.name(i)
    }

    /// Path of slice `i`'s `.npz`.
    pub fn path(&self, i: usize) -> Option<PathBuf> {
        self.files.path(i)
    }

    /// Slice `i` at its stored resolution: image (1 channel) and label as stored.
    /// Feed this to [`crate::augment_synapse`] for the official order (augment, then zoom).
    pub fn get_raw(&self, i: usize) -> Result<Sample, DataError> {
        let (name, path) = self.files.get(i)?;
        let mut arrays = read_npz(&path)?;
        let image = take_2d(&path, &mut arrays, "image")?;
        let label = take_2d(&path, &mut arrays, "label")?;
        if image.shape != label.shape {
            return Err(format_err(
                &path,
                format!(
                    "'image' has shape {:?} but 'label' has {:?}",
                    image.shape, label.shape
                ),
            ));
        }
        Ok(Sample {
            name: name.to_string(),
            channels: 1,
            height: image.shape[0],
            width: image.shape[1],
            image: image.data,
            mask: label.data,
        })
    }

    /// Slice `i` zoomed to `size x size` (image cubic, label nearest), without augmentation.
    pub fn get(&self, i: usize) -> Result<Sample, DataError> {
        let mut s = self.get_raw(i)?;
        zoom_sample(&mut s, self.size, self.size);
        Ok(s)
    }
}

/// One Synapse test volume, C order (D, H, W).
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    /// Case name as listed.
    pub name: String,
    /// CT values, (D, H, W).
    pub image: Vec<f32>,
    /// Class index per voxel as f32, (D, H, W).
    pub label: Vec<f32>,
    /// Slices.
    pub depth: usize,
    /// Slice height.
    pub height: usize,
    /// Slice width.
    pub width: usize,
}

impl Volume {
    /// Image slice `d` (H, W), or `None` past the end.
    pub fn image_slice(&self, d: usize) -> Option<&[f32]> {
        let n = self.height * self.width;
        self.image.get(d * n..(d + 1) * n)
    }

    /// Label slice `d` (H, W), or `None` past the end.
    pub fn label_slice(&self, d: usize) -> Option<&[f32]> {
        let n = self.height * self.width;
        self.label.get(d * n..(d + 1) * n)
    }

    /// Model input for slice `d`, as the official evaluation makes it: the slice zoomed to
    /// `size x size` with cubic splines (unchanged when already that size).
    pub fn model_input(&self, d: usize, size: usize) -> Option<Vec<f32>> {
        let s = self.image_slice(d)?;
        Some(if (self.height, self.width) == (size, size) {
            s.to_vec()
        } else {
            zoom(s, self.height, self.width, size, size, ZoomOrder::Cubic)
        })
    }

    /// A `size x size` class prediction zoomed back to the slice size with nearest
    /// neighbour (order 0), as the official evaluation does. Panics if
    /// `pred.len() != size * size`.
    pub fn restore_prediction(&self, pred: &[f32], size: usize) -> Vec<f32> {
        zoom(
            pred,
            size,
            size,
            self.height,
            self.width,
            ZoomOrder::Nearest,
        )
    }
}

#[cfg(feature = "hdf5")]
mod h5 {
    use super::*;

    fn h5_err(path: &Path, e: hdf5_metno::Error) -> DataError {
        format_err(path, format!("HDF5: {e}"))
    }

    fn read_3d(
        path: &Path,
        file: &hdf5_metno::File,
        key: &str,
    ) -> Result<(Vec<usize>, Vec<f32>), DataError> {
        let ds = file.dataset(key).map_err(|_| {
            let keys = file.member_names().unwrap_or_default();
            format_err(
                path,
                format!("has no '{key}' dataset (members: {})", keys.join(", ")),
            )
        })?;
        let shape = ds.shape();
        if shape.len() != 3 {
            return Err(format_err(
                path,
                format!("'{key}' has shape {shape:?}; expected (D, H, W)"),
            ));
        }
        let data = ds
            .read_raw::<f32>()
            .map_err(|e| format_err(path, format!("cannot read '{key}' as float: {e}")))?;
        Ok((shape, data))
    }

    /// Reads a `.npy.h5` test volume (datasets `image` and `label`, (D, H, W)).
    pub fn read_volume_h5(path: &Path, name: &str) -> Result<Volume, DataError> {
        if !path.is_file() {
            return Err(DataError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        let file = hdf5_metno::File::open(path).map_err(|e| h5_err(path, e))?;
        let (shape, image) = read_3d(path, &file, "image")?;
        let (lshape, label) = read_3d(path, &file, "label")?;
        if shape != lshape {
            return Err(format_err(
                path,
                format!("'image' has shape {shape:?} but 'label' has {lshape:?}"),
            ));
        }
        Ok(Volume {
            name: name.to_owned(),
            image,
            label,
            depth: shape[0],
            height: shape[1],
            width: shape[2],
        })
    }

    /// Writes a volume as a TransUNet-style `.npy.h5` (float32 datasets `image`, `label`).
    pub fn write_volume_h5(path: &Path, v: &Volume) -> Result<(), DataError> {
        let n = v.depth * v.height * v.width;
        if v.image.len() != n || v.label.len() != n {
            return Err(format_err(
                path,
                format!(
                    "volume buffers ({} image, {} label values) do not fill {}x{}x{}",
                    v.image.len(),
                    v.label.len(),
                    v.depth,
                    v.height,
                    v.width
                ),
            ));
        }
        let file = hdf5_metno::File::create(path).map_err(|e| h5_err(path, e))?;
        for (key, data) in [("image", &v.image), ("label", &v.label)] {
            let ds = file
                .new_dataset::<f32>()
                .shape([v.depth, v.height, v.width])
                .create(key)
                .map_err(|e| h5_err(path, e))?;
            ds.write_raw(data.as_slice()).map_err(|e| h5_err(path, e))?;
        }
        file.close().map_err(|e| h5_err(path, e))
    }
}

#[cfg(feature = "hdf5")]
pub use h5::{read_volume_h5, write_volume_h5};

/// Without the `hdf5` feature (the Python wheel, the deployment build): `.npy.h5` volumes
/// cannot be read, and saying so names the file.
#[cfg(not(feature = "hdf5"))]
pub fn read_volume_h5(path: &Path, _name: &str) -> Result<Volume, DataError> {
    Err(format_err(
        path,
        "this build of vmunet reads HDF5 volumes only with the `hdf5` feature (the command-line \
         tool's full build has it); convert the volume to .npz or NIfTI, or use that build"
            .to_string(),
    ))
}

/// Test volumes of Synapse (`test_vol.txt` / `test_vol_h5`).
#[derive(Debug, Clone)]
pub struct SynapseVolumes {
    files: Listed,
}

impl SynapseVolumes {
    /// Reads `lists/lists_Synapse/test_vol.txt` and checks every listed
    /// `test_vol_h5/<case>.npy.h5` exists.
    pub fn open(root: &Path) -> Result<Self, DataError> {
        Ok(Self {
            files: Listed::open(root, "test_vol.txt", "test_vol_h5", ".npy.h5")?,
        })
    }

    /// Number of volumes.
    pub fn len(&self) -> usize {
        self.files.names.len()
    }

    /// True when no volumes are listed (never, after a successful `open`).
    pub fn is_empty(&self) -> bool {
        self.files.names.is_empty()
    }

    /// Case name of volume `i` as listed.
    pub fn name(&self, i: usize) -> Option<&str> {
        self.files.name(i)
    }

    /// Path of volume `i`'s `.npy.h5`.
    pub fn path(&self, i: usize) -> Option<PathBuf> {
        self.files.path(i)
    }

    /// Reads volume `i`.
    pub fn get(&self, i: usize) -> Result<Volume, DataError> {
        let (name, path) = self.files.get(i)?;
        read_volume_h5(&path, name)
    }
}

/// Writes one TransUNet-style training slice `.npz` (float32 `image` and `label`, (H, W)).
pub fn write_slice_npz(
    path: &Path,
    image: &[f32],
    label: &[f32],
    height: usize,
    width: usize,
) -> Result<(), DataError> {
    let shape = [height, width];
    crate::npy::write_npz(path, &[("image", &shape, image), ("label", &shape, label)])
}
