//! ISIC 2017/2018 in the official VM-UNet layout, `ROOT/{train,val}/{images,masks}`, or a
//! plain evaluation folder `DIR/{images,masks}`.

use std::path::{Path, PathBuf};

use image::DynamicImage;

use super::{io_err, out_of_range, require_dir, Sample};
use crate::{load_image, preprocess, resize_bilinear, DataError, Preprocess};

/// Which part of the dataset to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// `ROOT/train`.
    Train,
    /// `ROOT/val`.
    Val,
}

impl Split {
    /// The folder name of the split.
    pub fn dir_name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
        }
    }
}

/// An ISIC split: image `i` pairs with mask `i` in sorted file-name order, as the official
/// loader pairs `sorted(os.listdir(...))`. Hidden files (names starting with `.`) and
/// sub-folders are skipped.
#[derive(Debug, Clone)]
pub struct IsicDataset {
    root: PathBuf,
    size: usize,
    images: Vec<PathBuf>,
    masks: Vec<PathBuf>,
}

/// Regular, non-hidden files of `dir`, sorted by file name.
fn list_files(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(DataError::EmptyFolder {
            path: dir.to_path_buf(),
        });
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The first file without a partner: by name (`NAME.*` <-> `NAME_segmentation.*`) when
/// that identifies one, else the first file past the shorter list.
fn first_unpaired(images: &[PathBuf], masks: &[PathBuf]) -> PathBuf {
    let mask_stem = |p: &PathBuf| {
        let s = stem(p);
        s.strip_suffix("_segmentation")
            .map(str::to_owned)
            .unwrap_or(s)
    };
    let mask_names: std::collections::HashSet<String> = masks.iter().map(mask_stem).collect();
    let image_names: std::collections::HashSet<String> = images.iter().map(|p| stem(p)).collect();
    let by_name = if images.len() > masks.len() {
        images.iter().find(|p| !mask_names.contains(&stem(p)))
    } else {
        masks.iter().find(|p| !image_names.contains(&mask_stem(p)))
    };
    let n = images.len().min(masks.len());
    by_name
        .or_else(|| images.get(n))
        .or_else(|| masks.get(n))
        .cloned()
        .unwrap_or_default()
}

impl IsicDataset {
    /// Lists `root/<split>/images` and `root/<split>/masks`; samples are produced at
    /// `size x size` (256 for VM-UNet). Errors name a missing or empty folder, or the first
    /// unpaired file when the counts differ.
    pub fn open(root: &Path, split: Split, size: usize) -> Result<Self, DataError> {
        Self::open_pairs(root, &root.join(split.dir_name()), size)
    }

    /// A plain folder holding `dir/images` and `dir/masks` directly (the way a held-out test
    /// set is usually kept), paired by the same rules as [`IsicDataset::open`].
    pub fn open_folder(dir: &Path, size: usize) -> Result<Self, DataError> {
        Self::open_pairs(dir, dir, size)
    }

    /// The evaluation set at `dir`, whichever layout it has: a plain folder (`dir/images` +
    /// `dir/masks`, [`IsicDataset::open_folder`]) when `dir/images` exists, else the
    /// validation split of a dataset root (`dir/val/images` + `dir/val/masks`). With neither,
    /// the error says what was looked for.
    pub fn open_eval(dir: &Path, size: usize) -> Result<Self, DataError> {
        let dir_buf = require_dir(dir.to_path_buf())?;
        if dir_buf.join("images").is_dir() {
            Self::open_folder(dir, size)
        } else if dir_buf.join(Split::Val.dir_name()).is_dir() {
            Self::open(dir, Split::Val, size)
        } else {
            Err(DataError::Layout {
                path: dir_buf,
                expected: "images/ and masks/ (a plain evaluation folder) or val/images/ and \
                           val/masks/ (an ISIC dataset root)"
                    .into(),
            })
        }
    }

    /// Pairs `base/images` with `base/masks`; `root` names the dataset in errors.
    fn open_pairs(root: &Path, base: &Path, size: usize) -> Result<Self, DataError> {
        let img_dir = require_dir(base.join("images"))?;
        let msk_dir = require_dir(base.join("masks"))?;
        let images = list_files(&img_dir)?;
        let masks = list_files(&msk_dir)?;
        if images.len() != masks.len() {
            return Err(DataError::Unpaired {
                file: first_unpaired(&images, &masks),
                images: img_dir,
                masks: msk_dir,
                n_images: images.len(),
                n_masks: masks.len(),
            });
        }
        Ok(Self {
            root: root.to_path_buf(),
            size,
            images,
            masks,
        })
    }

    /// Number of image/mask pairs.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// True when the split has no pairs (never, after a successful `open`).
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Output size (height = width).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Name of sample `i`: the image file's stem.
    pub fn name(&self, i: usize) -> Option<String> {
        self.images.get(i).map(|p| stem(p))
    }

    /// Image and mask paths of sample `i`.
    pub fn paths(&self, i: usize) -> Option<(&Path, &Path)> {
        Some((self.images.get(i)?, self.masks.get(i)?))
    }

    /// Decodes sample `i` (both files through [`crate::load_image`]: structural check, EXIF
    /// orientation): the image with the official preprocessing ([`preprocess`]:
    /// per-image min-max to [0, 255], bilinear resize to `size`), the mask as grey / 255,
    /// resized bilinearly when needed and binarised at >= 0.5.
    pub fn get(&self, i: usize) -> Result<Sample, DataError> {
        let (img_path, msk_path) = self
            .paths(i)
            .ok_or_else(|| out_of_range(&self.root, i, self.len()))?;
        let img = load_image(img_path)?;
        let msk = load_image(msk_path)?;
        let (iw, ih) = (img.width() as usize, img.height() as usize);
        let (mw, mh) = (msk.width() as usize, msk.height() as usize);
        if (iw, ih) != (mw, mh) {
            return Err(DataError::SizeMismatch {
                image: img_path.to_path_buf(),
                mask: msk_path.to_path_buf(),
                image_w: iw,
                image_h: ih,
                mask_w: mw,
                mask_h: mh,
            });
        }
        let p = Preprocess {
            height: self.size,
            width: self.size,
            channels: 3,
        };
        let t = preprocess(&img, &p);
        let grey = pil_grey(&msk);
        let mask = resize_bilinear(&grey, 1, (mh, mw), (self.size, self.size))
            .into_iter()
            .map(|v| if v >= 0.5 { 1.0 } else { 0.0 })
            .collect();
        Ok(Sample {
            name: stem(img_path),
            image: t.data,
            channels: t.channels,
            height: t.height,
            width: t.width,
            mask,
        })
    }
}

/// PIL's `convert('L')` (ITU-R 601 luma, integer rounding) divided by 255.
fn pil_grey(img: &DynamicImage) -> Vec<f32> {
    match img {
        DynamicImage::ImageLuma8(g) => g.as_raw().iter().map(|&v| v as f32 / 255.0).collect(),
        _ => img
            .to_rgb8()
            .pixels()
            .map(|p| {
                let [r, g, b] = p.0.map(u32::from);
                ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) as f32 / 255.0
            })
            .collect(),
    }
}
