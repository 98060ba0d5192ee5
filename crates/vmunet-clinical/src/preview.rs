//! A picture of a result, as a viewer shows it: for a volume, the slice with the most labelled
//! voxels in the canonical orientation (radiological display: the patient's right on the
//! left, anterior up), Hounsfield units through the Synapse window as grey, each class tinted
//! with its outline (the photo pipeline's overlay); for a photo, the photo's overlay.

use image::{DynamicImage, GrayImage, RgbImage};
use vmunet_data::{overlay, Mask};
use vmunet_onnx_ir::Preprocessing;

use crate::source::Content;

/// The preview of `labels` (source voxel order) over `content`; `classes` counts output
/// channels (1 = binary). Returns the picture and the source slice index shown (canonical).
pub fn preview(content: &Content, labels: &[u8], classes: usize) -> (RgbImage, usize) {
    match content {
        Content::Photo { image, geometry } => {
            let mask = Mask {
                data: labels.to_vec(),
                width: geometry.dims[0],
                height: geometry.dims[1],
                classes,
            };
            (overlay(image, &mask), 0)
        }
        Content::Volume(scan) => {
            let r = scan.geometry.canonical();
            let [w, h, d] = r.dims();
            let voxels = r.to_canonical(&scan.voxels);
            let labels = r.to_canonical(labels);
            let plane = w * h;
            let k = (0..d)
                .max_by_key(|&k| {
                    (
                        labels[k * plane..(k + 1) * plane]
                            .iter()
                            .filter(|&&l| l > 0)
                            .count(),
                        std::cmp::Reverse(k.abs_diff(d / 2)),
                    )
                })
                .unwrap_or(0);
            let (lo, hi) = (Preprocessing::HU_MIN, Preprocessing::HU_MAX);
            let grey: Vec<u8> = voxels[k * plane..(k + 1) * plane]
                .iter()
                .map(|&v| ((v.clamp(lo, hi) - lo) / (hi - lo) * 255.0).round() as u8)
                .collect();
            let img = GrayImage::from_raw(w as u32, h as u32, grey)
                .map(DynamicImage::ImageLuma8)
                .unwrap_or_else(|| unreachable!("the slice buffer has the slice's size"));
            let mask = Mask {
                data: labels[k * plane..(k + 1) * plane].to_vec(),
                width: w,
                height: h,
                classes,
            };
            (overlay(&img, &mask), k)
        }
    }
}
