//! Where voxels are: a regular grid in patient space (DICOM's LPS, millimetres), its affines,
//! and the one slice orientation every volume reaches the model in.
//!
//! Voxel `(i, j, k)` is column `i`, row `j`, slice `k`; buffers are slice-major, then row,
//! then column (`i + cols * (j + rows * k)`), which is also NIfTI's order with `x = i`.

/// A 3-D grid: size, position, directions and spacing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    /// Voxels along `i` (columns), `j` (rows) and `k` (slices).
    pub dims: [usize; 3],
    /// World position (LPS, mm) of the centre of voxel `(0, 0, 0)`.
    pub origin: [f64; 3],
    /// Unit world direction (LPS) of increasing `i`, `j` and `k`.
    pub axes: [[f64; 3]; 3],
    /// Distance (mm) between voxel centres along `i`, `j` and `k`.
    pub spacing: [f64; 3],
}

/// `a x b`.
pub fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// `a . b`.
pub fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// `|a|`.
pub fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

impl Geometry {
    /// A unit grid at the origin (for sources without a position in space, e.g. photos).
    pub fn unit(dims: [usize; 3]) -> Self {
        Self {
            dims,
            origin: [0.0; 3],
            axes: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            spacing: [1.0; 3],
        }
    }

    /// Number of voxels.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// Whether the grid has no voxel.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Voxels per slice.
    pub fn slice_len(&self) -> usize {
        self.dims[0] * self.dims[1]
    }

    /// Buffer index of voxel `(i, j, k)`.
    pub fn index(&self, i: usize, j: usize, k: usize) -> usize {
        i + self.dims[0] * (j + self.dims[1] * k)
    }

    /// World position (LPS, mm) of the centre of voxel `(i, j, k)`.
    pub fn world(&self, i: f64, j: f64, k: f64) -> [f64; 3] {
        let v = [i, j, k];
        let mut p = self.origin;
        for (a, axis) in self.axes.iter().enumerate() {
            for (c, pc) in p.iter_mut().enumerate() {
                *pc += v[a] * self.spacing[a] * axis[c];
            }
        }
        p
    }

    /// Volume of one voxel in millilitres.
    pub fn voxel_ml(&self) -> f64 {
        self.spacing.iter().product::<f64>() / 1000.0
    }

    /// The 4x4 voxel-to-world matrix in LPS (DICOM's patient coordinates).
    pub fn affine_lps(&self) -> [[f64; 4]; 4] {
        let mut m = [[0.0; 4]; 4];
        for r in 0..3 {
            for a in 0..3 {
                m[r][a] = self.axes[a][r] * self.spacing[a];
            }
            m[r][3] = self.origin[r];
        }
        m[3][3] = 1.0;
        m
    }

    /// The 4x4 voxel-to-world matrix in RAS (NIfTI's): LPS with x and y negated.
    pub fn affine_ras(&self) -> [[f64; 4]; 4] {
        let mut m = self.affine_lps();
        for row in m.iter_mut().take(2) {
            for v in row.iter_mut() {
                *v = -*v;
            }
        }
        m
    }

    /// The grid of a RAS voxel-to-world matrix (NIfTI's sform or qform) with `dims` voxels;
    /// `None` when a column is zero (a degenerate affine).
    pub fn from_affine_ras(dims: [usize; 3], m: [[f64; 4]; 4]) -> Option<Self> {
        let mut axes = [[0.0; 3]; 3];
        let mut spacing = [0.0; 3];
        for a in 0..3 {
            let col = [-m[0][a], -m[1][a], m[2][a]];
            let n = norm(col);
            if !(n.is_finite() && n > 0.0) {
                return None;
            }
            spacing[a] = n;
            axes[a] = [col[0] / n, col[1] / n, col[2] / n];
        }
        Some(Self {
            dims,
            origin: [-m[0][3], -m[1][3], m[2][3]],
            axes,
            spacing,
        })
    }

    /// The reorientation that brings this grid to [`Reorient`]'s canonical slice orientation.
    pub fn canonical(&self) -> Reorient {
        Reorient::of(self)
    }
}

/// A permutation and flips of the voxel axes (no resampling) that bring a grid to the one
/// orientation the model sees: slices along the voxel axis closest to the patient's
/// inferior-superior axis, then rows along the one closest to anterior-posterior, columns
/// along right-left; each axis pointing to increasing LPS coordinates (columns to the
/// patient's left, rows to posterior, slices to superior). An axial DICOM series is already
/// canonical up to its slice order; the same voxels as a NIfTI file in any axis order give
/// the same canonical slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reorient {
    /// `perm[c]`: the source axis that becomes canonical axis `c`.
    pub perm: [usize; 3],
    /// `flip[c]`: canonical axis `c` runs the source axis backwards.
    pub flip: [bool; 3],
    /// Source voxels along each source axis.
    pub source_dims: [usize; 3],
}

impl Reorient {
    /// The reorientation of `g` (greedy: the largest direction cosine first, as nibabel's
    /// `io_orientation`).
    pub fn of(g: &Geometry) -> Self {
        let mut perm = [usize::MAX; 3];
        let mut used_src = [false; 3];
        for _ in 0..3 {
            let mut best = (0usize, 0usize, -1.0f64);
            for (src, axis) in g.axes.iter().enumerate() {
                if used_src[src] {
                    continue;
                }
                for (world, c) in axis.iter().enumerate() {
                    if perm[world] != usize::MAX {
                        continue;
                    }
                    if c.abs() > best.2 {
                        best = (src, world, c.abs());
                    }
                }
            }
            used_src[best.0] = true;
            perm[best.1] = best.0;
        }
        let mut flip = [false; 3];
        for c in 0..3 {
            flip[c] = g.axes[perm[c]][c] < 0.0;
        }
        Self {
            perm,
            flip,
            source_dims: g.dims,
        }
    }

    /// Whether it changes nothing.
    pub fn is_identity(&self) -> bool {
        self.perm == [0, 1, 2] && self.flip == [false; 3]
    }

    /// Canonical voxels along each canonical axis.
    pub fn dims(&self) -> [usize; 3] {
        [
            self.source_dims[self.perm[0]],
            self.source_dims[self.perm[1]],
            self.source_dims[self.perm[2]],
        ]
    }

    /// The source voxel `(i, j, k)` at canonical voxel `a`.
    pub fn source_voxel(&self, a: [usize; 3]) -> [usize; 3] {
        let mut s = [0; 3];
        for c in 0..3 {
            let n = self.source_dims[self.perm[c]];
            s[self.perm[c]] = if self.flip[c] { n - 1 - a[c] } else { a[c] };
        }
        s
    }

    /// The canonical grid of `g`.
    pub fn geometry(&self, g: &Geometry) -> Geometry {
        let mut axes = [[0.0; 3]; 3];
        let mut spacing = [0.0; 3];
        let mut corner = [0.0; 3];
        for c in 0..3 {
            let s = self.perm[c];
            let sign = if self.flip[c] { -1.0 } else { 1.0 };
            axes[c] = g.axes[s].map(|v| v * sign);
            spacing[c] = g.spacing[s];
            if self.flip[c] {
                corner[s] = (g.dims[s] - 1) as f64;
            }
        }
        Geometry {
            dims: self.dims(),
            origin: g.world(corner[0], corner[1], corner[2]),
            axes,
            spacing,
        }
    }

    /// For each canonical voxel (canonical buffer order), its index in the source buffer.
    pub fn source_indices(&self) -> Vec<usize> {
        let d = self.dims();
        let sd = self.source_dims;
        let mut out = Vec::with_capacity(d.iter().product());
        for k in 0..d[2] {
            for j in 0..d[1] {
                for i in 0..d[0] {
                    let s = self.source_voxel([i, j, k]);
                    out.push(s[0] + sd[0] * (s[1] + sd[1] * s[2]));
                }
            }
        }
        out
    }

    /// `source` (source buffer order) in canonical buffer order.
    pub fn to_canonical<T: Copy>(&self, source: &[T]) -> Vec<T> {
        self.source_indices()
            .into_iter()
            .map(|s| source[s])
            .collect()
    }

    /// `canonical` (canonical buffer order) back in source buffer order.
    pub fn to_source<T: Copy + Default>(&self, canonical: &[T]) -> Vec<T> {
        let mut out = vec![T::default(); canonical.len()];
        for (c, s) in self.source_indices().into_iter().enumerate() {
            out[s] = canonical[c];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oblique() -> Geometry {
        let a = 20f64.to_radians();
        let row = [a.cos(), a.sin(), 0.0];
        let col = [-a.sin(), a.cos(), 0.0];
        Geometry {
            dims: [4, 3, 5],
            origin: [10.0, -20.0, 30.0],
            axes: [row, col, cross(row, col)],
            spacing: [0.7, 0.8, 2.5],
        }
    }

    #[test]
    fn the_ras_affine_round_trips() {
        let g = oblique();
        let back = Geometry::from_affine_ras(g.dims, g.affine_ras()).unwrap();
        for a in 0..3 {
            assert!((back.spacing[a] - g.spacing[a]).abs() < 1e-12);
            for c in 0..3 {
                assert!((back.axes[a][c] - g.axes[a][c]).abs() < 1e-12);
            }
        }
        assert_eq!(back.origin, g.origin);
    }

    /// Any axis order and flips of the same voxels reach the same canonical grid, and every
    /// canonical voxel sits where its source voxel sits.
    #[test]
    fn every_axis_order_reaches_one_canonical_grid() {
        let g = oblique();
        let data: Vec<u32> = (0..g.len() as u32).collect();
        let r = g.canonical();
        let canon = r.geometry(&g);
        let cdata = r.to_canonical(&data);
        // A copy stored slices-first with the rows reversed (another file's axis order).
        let perm = [2usize, 0, 1];
        let flip = [false, true, false];
        let mut other = Geometry {
            dims: [g.dims[perm[0]], g.dims[perm[1]], g.dims[perm[2]]],
            origin: [0.0; 3],
            axes: [[0.0; 3]; 3],
            spacing: [0.0; 3],
        };
        let mut corner = [0.0; 3];
        for a in 0..3 {
            let s = perm[a];
            let sign = if flip[a] { -1.0 } else { 1.0 };
            other.axes[a] = g.axes[s].map(|v| v * sign);
            other.spacing[a] = g.spacing[s];
            if flip[a] {
                corner[s] = (g.dims[s] - 1) as f64;
            }
        }
        other.origin = g.world(corner[0], corner[1], corner[2]);
        let mut odata = vec![0u32; g.len()];
        for k in 0..other.dims[2] {
            for j in 0..other.dims[1] {
                for i in 0..other.dims[0] {
                    let o = [i, j, k];
                    let mut s = [0usize; 3];
                    for a in 0..3 {
                        s[perm[a]] = if flip[a] {
                            g.dims[perm[a]] - 1 - o[a]
                        } else {
                            o[a]
                        };
                    }
                    odata[other.index(i, j, k)] = data[g.index(s[0], s[1], s[2])];
                }
            }
        }
        let r2 = other.canonical();
        let canon2 = r2.geometry(&other);
        assert_eq!(r2.to_canonical(&odata), cdata);
        assert_eq!(canon2.dims, canon.dims);
        for c in 0..3 {
            assert!((canon2.origin[c] - canon.origin[c]).abs() < 1e-9);
        }
        assert_eq!(r.to_source(&cdata), data);
        // Canonical axes point to increasing L, P, S.
        for c in 0..3 {
            assert!(canon.axes[c][c] > 0.0);
        }
    }
}
