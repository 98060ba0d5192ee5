//! Overlap and surface-distance metrics with medpy (`medpy.metric.binary`)
//! semantics: Dice (`dc`), object surfaces, an exact Euclidean distance
//! transform, surface distances and the 95th-percentile Hausdorff distance
//! (`hd95`).
//!
//! Arrays are flat, row-major (C order, last axis fastest) like numpy's
//! default layout; `shape` lists the axis lengths and `spacing` (medpy's
//! `voxelspacing`) gives the physical voxel size per axis in the same order.

use crate::MetricsError;

/// Number of elements described by `shape`, rejecting 0-axis shapes and
/// overflowing products.
pub(crate) fn shape_len(shape: &[usize]) -> Result<usize, MetricsError> {
    if shape.is_empty() {
        return Err(MetricsError::InvalidShape {
            shape: shape.to_vec(),
        });
    }
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| MetricsError::InvalidShape {
            shape: shape.to_vec(),
        })
}

/// Checks that a buffer of length `len` matches `shape`.
pub(crate) fn check_shape(
    shape: &[usize],
    what: &'static str,
    len: usize,
) -> Result<usize, MetricsError> {
    let expected = shape_len(shape)?;
    if expected != len {
        return Err(MetricsError::ShapeMismatch {
            shape: shape.to_vec(),
            expected,
            what,
            got: len,
        });
    }
    Ok(expected)
}

/// Validates `spacing` against `ndim`; `None` means 1 on every axis.
fn resolve_spacing(spacing: Option<&[f64]>, ndim: usize) -> Result<Vec<f64>, MetricsError> {
    match spacing {
        None => Ok(vec![1.0; ndim]),
        Some(s) => {
            if s.len() != ndim {
                return Err(MetricsError::SpacingLength {
                    expected: ndim,
                    got: s.len(),
                });
            }
            if let Some((axis, &value)) = s
                .iter()
                .enumerate()
                .find(|(_, v)| !(v.is_finite() && **v > 0.0))
            {
                return Err(MetricsError::InvalidSpacing { axis, value });
            }
            Ok(s.to_vec())
        }
    }
}

/// Advances an odometer `coord` over `dims`; returns `false` after the last.
fn next_coord(coord: &mut [usize], dims: &[usize]) -> bool {
    for ax in (0..coord.len()).rev() {
        coord[ax] += 1;
        if coord[ax] < dims[ax] {
            return true;
        }
        coord[ax] = 0;
    }
    false
}

/// Dice coefficient `2|A∩B| / (|A| + |B|)` (medpy `dc`).
///
/// **Two empty masks give 0.0**, not 1.0: medpy yields NaN there, and the
/// per-case convention of [`crate::calculate_metric_percase`] scores an empty
/// prediction 0 whatever the ground truth, so the Synapse numbers never reach
/// this case. A caller comparing two predictions for agreement (where two
/// empty masks agree perfectly) must decide that case itself before calling;
/// this function keeps the medpy-compatible value. Errors when the lengths
/// differ.
pub fn dice(pred: &[bool], gt: &[bool]) -> Result<f64, MetricsError> {
    if pred.len() != gt.len() {
        return Err(MetricsError::LengthMismatch {
            left: "pred",
            left_len: pred.len(),
            right: "gt",
            right_len: gt.len(),
        });
    }
    let (mut inter, mut sa, mut sb) = (0u64, 0u64, 0u64);
    for (&a, &b) in pred.iter().zip(gt) {
        inter += u64::from(a && b);
        sa += u64::from(a);
        sb += u64::from(b);
    }
    if sa + sb == 0 {
        return Ok(0.0);
    }
    Ok(2.0 * inter as f64 / (sa + sb) as f64)
}

/// Surface voxels of `mask`: `mask XOR binary_erosion(mask)` with the
/// connectivity-1 (cross) structuring element and a background border, so
/// foreground voxels on the array border are surface voxels.
pub fn surface_voxels(mask: &[bool], shape: &[usize]) -> Result<Vec<bool>, MetricsError> {
    check_shape(shape, "mask", mask.len())?;
    Ok(surface_unchecked(mask, shape))
}

fn surface_unchecked(mask: &[bool], shape: &[usize]) -> Vec<bool> {
    let nd = shape.len();
    let last = shape[nd - 1];
    let mut surf = vec![false; mask.len()];
    if last == 0 {
        return surf;
    }
    let mut strides = vec![1usize; nd];
    for ax in (0..nd - 1).rev() {
        strides[ax] = strides[ax + 1] * shape[ax + 1];
    }
    // Row by row along the last axis, so neighbours on every axis are read
    // as sequential streams.
    let mut coord = vec![0usize; nd - 1];
    for (r, row) in surf.chunks_exact_mut(last).enumerate() {
        let base = r * last;
        let outer_border = coord.iter().zip(shape).any(|(&c, &d)| c == 0 || c + 1 == d);
        for (x, out) in row.iter_mut().enumerate() {
            let idx = base + x;
            if !mask[idx] {
                continue;
            }
            *out = outer_border
                || x == 0
                || x + 1 == last
                || !mask[idx - 1]
                || !mask[idx + 1]
                || strides[..nd - 1]
                    .iter()
                    .any(|&st| !mask[idx - st] || !mask[idx + st]);
        }
        next_coord(&mut coord, &shape[..nd - 1]);
    }
    surf
}

/// Squared Euclidean distance from every voxel to the nearest `true` voxel
/// of `sites` (infinity when there is none), computed exactly with the
/// separable Felzenszwalb–Huttenlocher lower-envelope algorithm in O(n) per
/// axis. `sqrt` of the result equals scipy's
/// `distance_transform_edt(~sites, sampling=spacing)`.
pub fn edt_squared(
    sites: &[bool],
    shape: &[usize],
    spacing: Option<&[f64]>,
) -> Result<Vec<f64>, MetricsError> {
    check_shape(shape, "sites", sites.len())?;
    let spacing = resolve_spacing(spacing, shape.len())?;
    let mut buf: Vec<f64> = sites
        .iter()
        .map(|&s| if s { 0.0 } else { f64::INFINITY })
        .collect();
    edt_in_place(&mut buf, shape, &spacing);
    Ok(buf)
}

/// Lines transformed together on strided axes, so that the gather reads
/// `LINE_BLOCK` contiguous values per step instead of one value per line.
const LINE_BLOCK: usize = 32;

/// Runs the 1-D squared distance transform along every axis of `buf`.
fn edt_in_place(buf: &mut [f64], shape: &[usize], spacing: &[f64]) {
    let max_len = shape.iter().copied().max().unwrap_or(0);
    let mut block = vec![0.0f64; max_len * LINE_BLOCK];
    let mut line = vec![0.0f64; max_len];
    let mut out = vec![0.0f64; max_len];
    let mut v = vec![0usize; max_len];
    let mut z = vec![0.0f64; max_len + 1];
    // Last axis first: it is contiguous and usually the longest.
    for axis in (0..shape.len()).rev() {
        let w2 = spacing[axis] * spacing[axis];
        let len = shape[axis];
        let inner: usize = shape[axis + 1..].iter().product();
        let outer: usize = shape[..axis].iter().product();
        if len == 0 || inner == 0 {
            continue;
        }
        for o in 0..outer {
            let base = o * len * inner;
            for i0 in (0..inner).step_by(LINE_BLOCK) {
                let w = LINE_BLOCK.min(inner - i0);
                // block[k * LINE_BLOCK + j] = element k of line i0 + j.
                for k in 0..len {
                    let row = base + k * inner + i0;
                    block[k * LINE_BLOCK..k * LINE_BLOCK + w].copy_from_slice(&buf[row..row + w]);
                }
                for j in 0..w {
                    let mut any = false;
                    for (k, slot) in line[..len].iter_mut().enumerate() {
                        *slot = block[k * LINE_BLOCK + j];
                        any |= slot.is_finite();
                    }
                    if !any {
                        continue;
                    }
                    edt_1d(&line[..len], &mut out[..len], &mut v, &mut z, w2);
                    for (k, &d) in out[..len].iter().enumerate() {
                        block[k * LINE_BLOCK + j] = d;
                    }
                }
                for k in 0..len {
                    let row = base + k * inner + i0;
                    buf[row..row + w].copy_from_slice(&block[k * LINE_BLOCK..k * LINE_BLOCK + w]);
                }
            }
        }
    }
}

/// 1-D lower envelope of parabolas `w2 * (x - q)^2 + f[q]` over the finite
/// entries of `f`; writes the envelope at integer positions into `d`.
fn edt_1d(f: &[f64], d: &mut [f64], v: &mut [usize], z: &mut [f64], w2: f64) {
    let mut k = 0usize;
    let mut found = false;
    for (q, &fq) in f.iter().enumerate() {
        if !fq.is_finite() {
            continue;
        }
        if !found {
            v[0] = q;
            z[0] = f64::NEG_INFINITY;
            z[1] = f64::INFINITY;
            found = true;
            continue;
        }
        let qf = q as f64;
        loop {
            let p = v[k];
            let pf = p as f64;
            let s = ((fq + w2 * qf * qf) - (f[p] + w2 * pf * pf)) / (2.0 * w2 * (qf - pf));
            if k > 0 && s <= z[k] {
                k -= 1;
            } else {
                k += 1;
                v[k] = q;
                z[k] = s;
                z[k + 1] = f64::INFINITY;
                break;
            }
        }
    }
    if !found {
        d.fill(f64::INFINITY);
        return;
    }
    k = 0;
    for (q, dq) in d.iter_mut().enumerate() {
        let qf = q as f64;
        while z[k + 1] < qf {
            k += 1;
        }
        let p = v[k];
        let dx = qf - p as f64;
        *dq = w2 * dx * dx + f[p];
    }
}

/// Half-open bounding box `[lo, hi)` per axis of the union of `a` and `b`.
fn union_bbox(a: &[bool], b: &[bool], shape: &[usize]) -> Option<Vec<(usize, usize)>> {
    let nd = shape.len();
    let last = shape[nd - 1];
    if last == 0 {
        return None;
    }
    let mut lo = vec![usize::MAX; nd];
    let mut hi = vec![0usize; nd];
    let mut coord = vec![0usize; nd - 1];
    let mut any = false;
    for (ra, rb) in a.chunks_exact(last).zip(b.chunks_exact(last)) {
        if let Some(first) = (0..last).find(|&i| ra[i] || rb[i]) {
            let end = (0..last).rev().find(|&i| ra[i] || rb[i]).unwrap_or(first) + 1;
            any = true;
            lo[nd - 1] = lo[nd - 1].min(first);
            hi[nd - 1] = hi[nd - 1].max(end);
            for (ax, &c) in coord.iter().enumerate() {
                lo[ax] = lo[ax].min(c);
                hi[ax] = hi[ax].max(c + 1);
            }
        }
        next_coord(&mut coord, &shape[..nd - 1]);
    }
    any.then(|| lo.into_iter().zip(hi).collect())
}

/// Copies the box `bbox` out of the row-major array `src` of `shape`.
fn crop(src: &[bool], shape: &[usize], bbox: &[(usize, usize)]) -> Vec<bool> {
    let nd = shape.len();
    let dims: Vec<usize> = bbox.iter().map(|&(l, h)| h - l).collect();
    let mut strides = vec![1usize; nd];
    for ax in (0..nd - 1).rev() {
        strides[ax] = strides[ax + 1] * shape[ax + 1];
    }
    let (lo_last, hi_last) = bbox[nd - 1];
    let mut out = Vec::with_capacity(dims.iter().product());
    let mut coord = vec![0usize; nd - 1];
    loop {
        let off: usize = coord
            .iter()
            .zip(bbox)
            .zip(&strides)
            .map(|((&c, &(l, _)), &s)| (l + c) * s)
            .sum::<usize>()
            + lo_last;
        out.extend_from_slice(&src[off..off + (hi_last - lo_last)]);
        if !next_coord(&mut coord, &dims[..nd - 1]) {
            break;
        }
    }
    out
}

/// Distances from every surface voxel of `from` to the nearest surface
/// voxel of `to`, given the squared-distance scratch buffer.
fn directed(
    from_surf: &[bool],
    to_surf: &[bool],
    shape: &[usize],
    spacing: &[f64],
    buf: &mut Vec<f64>,
) -> Vec<f64> {
    buf.clear();
    buf.extend(to_surf.iter().map(|&s| if s { 0.0 } else { f64::INFINITY }));
    edt_in_place(buf, shape, spacing);
    from_surf
        .iter()
        .zip(buf.iter())
        .filter(|(&s, _)| s)
        .map(|(_, &d2)| d2.sqrt())
        .collect()
}

/// Validated inputs cropped to the bounding box of both objects. Cropping
/// is exact: every surface voxel lies inside the box, a voxel outside the
/// box is background, and the separable transform only needs the sites.
struct Cropped {
    a_surf: Vec<bool>,
    b_surf: Vec<bool>,
    shape: Vec<usize>,
    spacing: Vec<f64>,
}

fn prepare(
    pred: &[bool],
    gt: &[bool],
    shape: &[usize],
    spacing: Option<&[f64]>,
) -> Result<Cropped, MetricsError> {
    check_shape(shape, "pred", pred.len())?;
    check_shape(shape, "gt", gt.len())?;
    let spacing = resolve_spacing(spacing, shape.len())?;
    if !pred.iter().any(|&x| x) {
        return Err(MetricsError::EmptyMask { which: "pred" });
    }
    if !gt.iter().any(|&x| x) {
        return Err(MetricsError::EmptyMask { which: "gt" });
    }
    let bbox = union_bbox(pred, gt, shape).ok_or(MetricsError::EmptyMask { which: "pred" })?;
    let cshape: Vec<usize> = bbox.iter().map(|&(l, h)| h - l).collect();
    let a = crop(pred, shape, &bbox);
    let b = crop(gt, shape, &bbox);
    // A voxel on the crop border that is not on the array border has a
    // background neighbour outside the box, so it is surface either way.
    let a_surf = surface_unchecked(&a, &cshape);
    let b_surf = surface_unchecked(&b, &cshape);
    Ok(Cropped {
        a_surf,
        b_surf,
        shape: cshape,
        spacing,
    })
}

/// Distances from each surface voxel of `pred` to the nearest surface voxel
/// of `gt` (medpy's private `__surface_distances(result, reference)`), in
/// row-major order of the `pred` surface voxels.
pub fn surface_distances(
    pred: &[bool],
    gt: &[bool],
    shape: &[usize],
    spacing: Option<&[f64]>,
) -> Result<Vec<f64>, MetricsError> {
    let c = prepare(pred, gt, shape, spacing)?;
    let mut buf = Vec::new();
    Ok(directed(
        &c.a_surf, &c.b_surf, &c.shape, &c.spacing, &mut buf,
    ))
}

/// 95th-percentile symmetric Hausdorff distance (medpy `hd95`): the numpy
/// linear-interpolated 95th percentile of the surface distances pred→gt and
/// gt→pred pooled together. Errors if either mask is empty.
pub fn hd95(
    pred: &[bool],
    gt: &[bool],
    shape: &[usize],
    spacing: Option<&[f64]>,
) -> Result<f64, MetricsError> {
    let c = prepare(pred, gt, shape, spacing)?;
    let mut buf = Vec::new();
    let mut d = directed(&c.a_surf, &c.b_surf, &c.shape, &c.spacing, &mut buf);
    d.extend(directed(
        &c.b_surf, &c.a_surf, &c.shape, &c.spacing, &mut buf,
    ));
    // Both masks are non-empty, so both surfaces are too.
    Ok(percentile_linear(&mut d, 95.0).unwrap_or(0.0))
}

/// `numpy.percentile(values, q)` with the default `linear` method
/// (`q` in percent); reorders `values`. Returns `None` for no values.
/// NaNs are ordered last (numpy would return NaN).
pub fn percentile_linear(values: &mut [f64], q: f64) -> Option<f64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    // numpy: virtual_index = n*q + (alpha + q*(1 - alpha - beta)) - 1 with
    // alpha = beta = 1, i.e. n*q + (1 - q) - 1 evaluated in that order so
    // that it rounds identically.
    let quant = q / 100.0;
    let virt = n as f64 * quant + (1.0 - quant) - 1.0;
    let last = n - 1;
    let (prev, next, gamma) = if virt < 0.0 {
        (0, 0, 0.0)
    } else if virt >= last as f64 {
        (last, last, 0.0)
    } else {
        let p = virt.floor();
        (p as usize, p as usize + 1, virt - p)
    };
    let (_, &mut a, rest) = values.select_nth_unstable_by(prev, f64::total_cmp);
    let b = if next == prev {
        a
    } else {
        rest.iter().copied().min_by(f64::total_cmp).unwrap_or(a)
    };
    // numpy's _lerp: a + (b-a)*t, but b - (b-a)*(1-t) where t >= 0.5.
    let diff = b - a;
    Some(if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    /// Mask of `shape` with the given row-major coordinates set.
    fn mask(shape: &[usize], points: &[&[usize]]) -> Vec<bool> {
        let mut m = vec![false; shape.iter().product()];
        for p in points {
            let idx = p.iter().zip(shape).fold(0, |acc, (&c, &d)| acc * d + c);
            m[idx] = true;
        }
        m
    }

    /// 2-D rectangle `rows x cols` (half-open ranges) in a `shape` array.
    fn rect(
        shape: [usize; 2],
        rows: std::ops::Range<usize>,
        cols: std::ops::Range<usize>,
    ) -> Vec<bool> {
        let mut m = vec![false; shape[0] * shape[1]];
        for r in rows {
            for c in cols.clone() {
                m[r * shape[1] + c] = true;
            }
        }
        m
    }

    #[test]
    fn dice_on_tiny_arrays() {
        // |A∩B| = 1, |A| = 2, |B| = 2 -> 2/4.
        close(
            dice(&[true, true, false, false], &[true, false, true, false]).unwrap(),
            0.5,
        );
        close(dice(&[true, true], &[true, true]).unwrap(), 1.0);
        close(dice(&[true, false], &[false, false]).unwrap(), 0.0);
        // Both empty: 0 by this crate's convention (medpy gives NaN).
        close(dice(&[false, false], &[false, false]).unwrap(), 0.0);
        assert!(matches!(
            dice(&[true], &[true, false]),
            Err(MetricsError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn surface_excludes_interior_and_includes_array_border() {
        // 3x3 block inside a 5x5 array: only the centre (2,2) is interior.
        let shape = [5, 5];
        let block = rect(shape, 1..4, 1..4);
        let s = surface_voxels(&block, &shape).unwrap();
        let mut expected = block.clone();
        expected[2 * 5 + 2] = false;
        assert_eq!(s, expected);
        // Full array: border_value = 0, so the 16 border pixels are surface.
        let full = vec![true; 25];
        let s = surface_voxels(&full, &shape).unwrap();
        assert_eq!(s.iter().filter(|&&x| x).count(), 16);
        assert!(!s[2 * 5 + 2] && !s[5 + 1] && s[0] && s[2 * 5 + 4]);
        // An axis of length 1 makes every foreground voxel surface.
        let flat = vec![true; 6];
        assert_eq!(surface_voxels(&flat, &[1, 2, 3]).unwrap(), flat);
    }

    #[test]
    fn percentile_matches_numpy_linear() {
        // [5,5,6,7]: index 0.95*3 = 2.85 -> 6 + 0.85*(7-6).
        close(
            percentile_linear(&mut [7.0, 5.0, 6.0, 5.0], 95.0).unwrap(),
            6.85,
        );
        close(percentile_linear(&mut [3.0], 95.0).unwrap(), 3.0);
        close(percentile_linear(&mut [1.0, 2.0, 3.0], 50.0).unwrap(), 2.0);
        close(percentile_linear(&mut [4.0, 1.0], 100.0).unwrap(), 4.0);
        close(percentile_linear(&mut [4.0, 1.0], 0.0).unwrap(), 1.0);
        assert_eq!(percentile_linear(&mut [], 95.0), None);
    }

    #[test]
    fn hd95_single_voxels_2d() {
        // (0,0) vs (3,4): both directions 5 -> [5,5] -> 5.
        let shape = [5, 5];
        let a = mask(&shape, &[&[0, 0]]);
        let b = mask(&shape, &[&[3, 4]]);
        close(hd95(&a, &b, &shape, None).unwrap(), 5.0);
        // spacing (2,1): sqrt((3*2)^2 + 4^2) = sqrt(52).
        close(
            hd95(&a, &b, &shape, Some(&[2.0, 1.0])).unwrap(),
            52f64.sqrt(),
        );
        // medpy 0.5.2 gives 5.0 and 7.211102550927978.
    }

    #[test]
    fn hd95_row_with_interpolation() {
        // 1x10 array, A = cols 0..=2 (all surface: axis 0 has length 1),
        // B = col 7. A->B = [7,6,5], B->A = [5]; sorted [5,5,6,7],
        // index 0.95*3 = 2.85 -> 6.85 (medpy 0.5.2: 6.85).
        let shape = [1, 10];
        let a = mask(&shape, &[&[0, 0], &[0, 1], &[0, 2]]);
        let b = mask(&shape, &[&[0, 7]]);
        close(hd95(&a, &b, &shape, None).unwrap(), 6.85);
        close(hd95(&b, &a, &shape, None).unwrap(), 6.85);
        let mut d = surface_distances(&a, &b, &shape, None).unwrap();
        d.sort_by(f64::total_cmp);
        assert_eq!(d, vec![5.0, 6.0, 7.0]);
    }

    #[test]
    fn hd95_squares_shifted_by_two() {
        // 4x4 squares in 8x10, B = A shifted right by 2 columns. Each
        // surface is the 12-pixel ring. A->B: top/bottom rows [2,1,0,0] each,
        // left column 2,2, right column 1,1; B->A is the mirror image.
        // 24 values = 8 zeros, 8 ones, 8 twos; index 0.95*23 = 21.85 -> 2.
        let shape = [8, 10];
        let a = rect(shape, 2..6, 1..5);
        let b = rect(shape, 2..6, 3..7);
        close(hd95(&a, &b, &shape, None).unwrap(), 2.0);
        let mut d = surface_distances(&a, &b, &shape, None).unwrap();
        d.sort_by(f64::total_cmp);
        assert_eq!(
            d,
            vec![0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0]
        );
        close(dice(&a, &b).unwrap(), 0.5); // overlap 8 of 16 + 16
    }

    #[test]
    fn hd95_uses_surface_not_interior() {
        // 3x3 block vs its centre pixel in 5x5. Block surface (8 px) -> centre:
        // 4 x 1 and 4 x sqrt2; centre -> nearest block surface pixel: 1.
        // Sorted [1 x5, sqrt2 x4], index 0.95*8 = 7.6 -> sqrt2.
        let shape = [5, 5];
        let a = rect(shape, 1..4, 1..4);
        let b = mask(&shape, &[&[2, 2]]);
        close(hd95(&a, &b, &shape, None).unwrap(), 2f64.sqrt());
        assert_eq!(surface_distances(&b, &a, &shape, None).unwrap(), vec![1.0]);
    }

    #[test]
    fn hd95_full_array_border_is_surface() {
        // A = whole 5x5 array: surface = 16 border pixels at Chebyshev
        // distance 2 from B = (2,2): 4 x 2, 8 x sqrt5, 4 x 2*sqrt2; B->A = 2.
        // 17 values, index 0.95*16 = 15.2 lies in the 2*sqrt2 block.
        let shape = [5, 5];
        let a = vec![true; 25];
        let b = mask(&shape, &[&[2, 2]]);
        close(hd95(&a, &b, &shape, None).unwrap(), 2.0 * 2f64.sqrt());
    }

    #[test]
    fn hd95_3d_hand_computed() {
        // Single voxels (0,0,0) and (2,1,2) in 3x3x3: sqrt(4+1+4) = 3.
        let shape = [3, 3, 3];
        let a = mask(&shape, &[&[0, 0, 0]]);
        let b = mask(&shape, &[&[2, 1, 2]]);
        close(hd95(&a, &b, &shape, None).unwrap(), 3.0);

        // 2x1x5: A = {(0,0,0),(1,0,0)}, B = {(0,0,4)}. A->B = [4, sqrt17],
        // B->A = [4]; sorted [4,4,sqrt17], index 1.9 -> 4 + 0.9*(sqrt17-4)
        // = 4.110795063055894 (medpy 0.5.2 agrees).
        let shape = [2, 1, 5];
        let a = mask(&shape, &[&[0, 0, 0], &[1, 0, 0]]);
        let b = mask(&shape, &[&[0, 0, 4]]);
        let want = 4.0 + 0.9 * (17f64.sqrt() - 4.0);
        assert!((hd95(&a, &b, &shape, None).unwrap() - want).abs() < 1e-12);
        // spacing (2,1,0.5): A->B = [2, sqrt(4+4)], B->A = [2]
        // -> 2 + 0.9*(sqrt8-2) = 2.745584412271571 (medpy 0.5.2 agrees).
        let want = 2.0 + 0.9 * (8f64.sqrt() - 2.0);
        let got = hd95(&a, &b, &shape, Some(&[2.0, 1.0, 0.5])).unwrap();
        assert!((got - want).abs() < 1e-12);
    }

    #[test]
    fn hd95_input_errors() {
        let shape = [2, 2];
        let a = mask(&shape, &[&[0, 0]]);
        let empty = vec![false; 4];
        assert_eq!(
            hd95(&empty, &a, &shape, None),
            Err(MetricsError::EmptyMask { which: "pred" })
        );
        assert_eq!(
            hd95(&a, &empty, &shape, None),
            Err(MetricsError::EmptyMask { which: "gt" })
        );
        assert!(matches!(
            hd95(&a, &a, &[3, 2], None),
            Err(MetricsError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            hd95(&a, &a, &[], None),
            Err(MetricsError::InvalidShape { .. })
        ));
        assert!(matches!(
            hd95(&a, &a, &[usize::MAX, 2], None),
            Err(MetricsError::InvalidShape { .. })
        ));
        assert!(matches!(
            hd95(&a, &a, &shape, Some(&[1.0])),
            Err(MetricsError::SpacingLength { .. })
        ));
        assert!(matches!(
            hd95(&a, &a, &shape, Some(&[1.0, 0.0])),
            Err(MetricsError::InvalidSpacing { axis: 1, .. })
        ));
        close(hd95(&a, &a, &shape, None).unwrap(), 0.0);
    }

    #[test]
    fn edt_without_sites_is_infinite() {
        let d = edt_squared(&[false; 6], &[2, 3], None).unwrap();
        assert!(d.iter().all(|x| x.is_infinite()));
    }

    /// Row-major coordinates of flat index `i`.
    fn coords(mut i: usize, shape: &[usize]) -> Vec<usize> {
        let mut c = vec![0; shape.len()];
        for ax in (0..shape.len()).rev() {
            c[ax] = i % shape[ax];
            i /= shape[ax];
        }
        c
    }

    fn dist2(a: &[usize], b: &[usize], sp: &[f64]) -> f64 {
        a.iter()
            .zip(b)
            .zip(sp)
            .map(|((&x, &y), &s)| {
                let d = (x as f64 - y as f64) * s;
                d * d
            })
            .sum()
    }

    fn brute_edt2(sites: &[bool], shape: &[usize], sp: &[f64]) -> Vec<f64> {
        (0..sites.len())
            .map(|i| {
                let ci = coords(i, shape);
                (0..sites.len())
                    .filter(|&j| sites[j])
                    .map(|j| dist2(&ci, &coords(j, shape), sp))
                    .fold(f64::INFINITY, f64::min)
            })
            .collect()
    }

    /// hd95 by brute force on the full (uncropped) arrays.
    fn brute_hd95(a: &[bool], b: &[bool], shape: &[usize], sp: &[f64]) -> f64 {
        let sa = surface_voxels(a, shape).unwrap();
        let sb = surface_voxels(b, shape).unwrap();
        let ea = brute_edt2(&sa, shape, sp);
        let eb = brute_edt2(&sb, shape, sp);
        let mut d: Vec<f64> = (0..a.len())
            .filter(|&i| sa[i])
            .map(|i| eb[i].sqrt())
            .chain((0..a.len()).filter(|&i| sb[i]).map(|i| ea[i].sqrt()))
            .collect();
        percentile_linear(&mut d, 95.0).unwrap()
    }

    /// Random shape (2-D or 3-D), spacing, and two masks of that shape.
    fn case() -> impl Strategy<Value = (Vec<usize>, Vec<f64>, Vec<bool>, Vec<bool>)> {
        prop_oneof![
            prop::collection::vec(1usize..9, 2),
            prop::collection::vec(1usize..6, 3)
        ]
        .prop_flat_map(|shape| {
            let n: usize = shape.iter().product();
            let nd = shape.len();
            (
                Just(shape),
                prop::collection::vec(prop_oneof![Just(1.0f64), 0.3f64..3.0], nd),
                prop::collection::vec(prop::bool::weighted(0.3), n),
                prop::collection::vec(prop::bool::weighted(0.2), n),
            )
        })
    }

    proptest! {
        #[test]
        fn edt_matches_brute_force((shape, sp, sites, _b) in case()) {
            let got = edt_squared(&sites, &shape, Some(&sp)).unwrap();
            let want = brute_edt2(&sites, &shape, &sp);
            for (g, w) in got.iter().zip(&want) {
                if w.is_infinite() {
                    prop_assert!(g.is_infinite());
                } else {
                    prop_assert!((g - w).abs() <= 1e-9 * w.max(1.0), "{} vs {}", g, w);
                }
            }
        }

        #[test]
        fn cropped_hd95_matches_brute_force((shape, sp, a, b) in case()) {
            prop_assume!(a.iter().any(|&x| x) && b.iter().any(|&x| x));
            let got = hd95(&a, &b, &shape, Some(&sp)).unwrap();
            let want = brute_hd95(&a, &b, &shape, &sp);
            prop_assert!((got - want).abs() <= 1e-9 * want.max(1.0), "{} vs {}", got, want);
        }
    }
}
