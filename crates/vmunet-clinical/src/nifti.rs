//! NIfTI-1 in (`nifti` crate: any data type, either byte order, gzip) and out (a label volume
//! as `uint8` with the source's affine in both sform and qform, gzip, written durably).

use std::io::Write as _;
use std::path::Path;

use nifti::{NiftiObject, ReaderOptions};

use crate::source::{source_name, Content, Scan};
use crate::{ClinicalError, Geometry, Source, SourceFormat};

/// Whether `path` names a NIfTI file (`.nii` or `.nii.gz`).
pub fn is_nifti(path: &Path) -> bool {
    let n = path.to_string_lossy().to_ascii_lowercase();
    n.ends_with(".nii") || n.ends_with(".nii.gz")
}

/// The voxel-to-world (RAS) matrix a header gives: the sform when set, else the qform, else
/// the voxel sizes alone (NIfTI's "method 1").
fn header_affine(h: &nifti::NiftiHeader) -> [[f64; 4]; 4] {
    let mut m = [[0.0; 4]; 4];
    m[3][3] = 1.0;
    if h.sform_code > 0 {
        for (r, row) in [h.srow_x, h.srow_y, h.srow_z].iter().enumerate() {
            for c in 0..4 {
                m[r][c] = f64::from(row[c]);
            }
        }
        return m;
    }
    let d = |i: usize| {
        let v = f64::from(h.pixdim[i]);
        if v > 0.0 {
            v
        } else {
            1.0
        }
    };
    if h.qform_code > 0 {
        let (b, c, dq) = (
            f64::from(h.quatern_b),
            f64::from(h.quatern_c),
            f64::from(h.quatern_d),
        );
        let a = (1.0 - (b * b + c * c + dq * dq)).max(0.0).sqrt();
        let r = [
            [
                a * a + b * b - c * c - dq * dq,
                2.0 * (b * c - a * dq),
                2.0 * (b * dq + a * c),
            ],
            [
                2.0 * (b * c + a * dq),
                a * a + c * c - b * b - dq * dq,
                2.0 * (c * dq - a * b),
            ],
            [
                2.0 * (b * dq - a * c),
                2.0 * (c * dq + a * b),
                a * a + dq * dq - c * c - b * b,
            ],
        ];
        let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        let s = [d(1), d(2), d(3) * qfac];
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] = r[i][j] * s[j];
            }
        }
        m[0][3] = f64::from(h.quatern_x);
        m[1][3] = f64::from(h.quatern_y);
        m[2][3] = f64::from(h.quatern_z);
        return m;
    }
    m[0][0] = d(1);
    m[1][1] = d(2);
    m[2][2] = d(3);
    m
}

/// Reads a NIfTI-1 file (a 2-D or 3-D scalar volume; a 4-D one with one volume) as a grey
/// [`Source`], values rescaled by `scl_slope` / `scl_inter`.
pub fn read_nifti(path: &Path) -> Result<Source, ClinicalError> {
    let (geometry, voxels) = read_volume(path)?;
    Ok(Source {
        path: path.to_path_buf(),
        name: source_name(path),
        format: SourceFormat::Nifti,
        content: Content::Volume(Scan { voxels, geometry }),
        dicom: None,
    })
}

/// The values of raw voxel bytes of NIfTI `datatype` as f32 (`None`: not a real scalar type).
fn to_f32(raw: &[u8], datatype: i16, big: bool) -> Option<Vec<f32>> {
    fn words<const N: usize>(raw: &[u8], big: bool) -> impl Iterator<Item = [u8; N]> + '_ {
        raw.chunks_exact(N).map(move |c| {
            let mut b = [0u8; N];
            b.copy_from_slice(c);
            if big {
                b.reverse();
            }
            b
        })
    }
    Some(match datatype {
        2 => raw.iter().map(|&b| f32::from(b)).collect(),
        256 => raw.iter().map(|&b| f32::from(b as i8)).collect(),
        4 => words::<2>(raw, big)
            .map(|b| f32::from(i16::from_le_bytes(b)))
            .collect(),
        512 => words::<2>(raw, big)
            .map(|b| f32::from(u16::from_le_bytes(b)))
            .collect(),
        8 => words::<4>(raw, big)
            .map(|b| i32::from_le_bytes(b) as f32)
            .collect(),
        768 => words::<4>(raw, big)
            .map(|b| u32::from_le_bytes(b) as f32)
            .collect(),
        16 => words::<4>(raw, big).map(f32::from_le_bytes).collect(),
        64 => words::<8>(raw, big)
            .map(|b| f64::from_le_bytes(b) as f32)
            .collect(),
        1024 => words::<8>(raw, big)
            .map(|b| i64::from_le_bytes(b) as f32)
            .collect(),
        1280 => words::<8>(raw, big)
            .map(|b| u64::from_le_bytes(b) as f32)
            .collect(),
        _ => return None,
    })
}

/// Reads a NIfTI-1 file's grid and values (rescaled).
pub fn read_volume(path: &Path) -> Result<(Geometry, Vec<f32>), ClinicalError> {
    let obj = ReaderOptions::new()
        .read_file(path)
        .map_err(|e| ClinicalError::format(path, format!("not a readable NIfTI-1 file: {e}")))?;
    let h = obj.header().clone();
    let dim = h
        .dim()
        .map_err(|e| ClinicalError::format(path, format!("bad dimensions: {e}")))?
        .to_vec();
    if dim.is_empty() || dim.len() > 4 || dim.iter().skip(3).any(|&d| d > 1) {
        return Err(ClinicalError::unsupported(
            path,
            format!("dimensions {dim:?}: a 2-D or 3-D volume is read (4-D only with one volume)"),
        ));
    }
    let dims = [
        usize::from(dim[0]),
        usize::from(*dim.get(1).unwrap_or(&1)),
        usize::from(*dim.get(2).unwrap_or(&1)),
    ];
    let datatype = h.datatype;
    let big = h.endianness == nifti::Endianness::Big;
    let data = to_f32(obj.into_volume().raw_data(), datatype, big).ok_or_else(|| {
        ClinicalError::unsupported(
            path,
            format!("NIfTI data type {datatype} (integer and float scalars are read)"),
        )
    })?;
    let n = dims.iter().product::<usize>();
    if data.len() < n {
        return Err(ClinicalError::format(
            path,
            format!("{} voxels stored, the header says {n}", data.len()),
        ));
    }
    let (slope, inter) = (h.scl_slope, h.scl_inter);
    let rescale = slope != 0.0 && slope.is_finite() && (slope != 1.0 || inter != 0.0);
    let voxels = data
        .into_iter()
        .take(n)
        .map(|v| if rescale { v * slope + inter } else { v })
        .collect();
    let geometry = Geometry::from_affine_ras(dims, header_affine(&h))
        .ok_or_else(|| ClinicalError::format(path, "the affine (sform / qform) is degenerate"))?;
    Ok((geometry, voxels))
}

/// The quaternion (b, c, d), qfac of a rotation matrix (NIfTI's `mat44_to_quatern`).
fn quatern(r: [[f64; 3]; 3]) -> ([f64; 3], f64) {
    let mut r = r;
    let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
        - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
        + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
    let qfac = if det < 0.0 {
        for row in r.iter_mut() {
            row[2] = -row[2];
        }
        -1.0
    } else {
        1.0
    };
    let trace = r[0][0] + r[1][1] + r[2][2] + 1.0;
    let (a, b, c, d): (f64, f64, f64, f64);
    if trace > 0.5 {
        let aa = 0.5 * trace.sqrt();
        a = aa;
        b = 0.25 * (r[2][1] - r[1][2]) / aa;
        c = 0.25 * (r[0][2] - r[2][0]) / aa;
        d = 0.25 * (r[1][0] - r[0][1]) / aa;
    } else {
        let xd = 1.0 + r[0][0] - (r[1][1] + r[2][2]);
        let yd = 1.0 + r[1][1] - (r[0][0] + r[2][2]);
        let zd = 1.0 + r[2][2] - (r[0][0] + r[1][1]);
        if xd > 1.0 {
            let bb = 0.5 * xd.sqrt();
            b = bb;
            c = 0.25 * (r[0][1] + r[1][0]) / bb;
            d = 0.25 * (r[0][2] + r[2][0]) / bb;
            a = 0.25 * (r[2][1] - r[1][2]) / bb;
        } else if yd > 1.0 {
            let cc = 0.5 * yd.sqrt();
            c = cc;
            b = 0.25 * (r[0][1] + r[1][0]) / cc;
            d = 0.25 * (r[1][2] + r[2][1]) / cc;
            a = 0.25 * (r[0][2] - r[2][0]) / cc;
        } else {
            let dd = 0.5 * zd.sqrt();
            d = dd;
            b = 0.25 * (r[0][2] + r[2][0]) / dd;
            c = 0.25 * (r[1][2] + r[2][1]) / dd;
            a = 0.25 * (r[1][0] - r[0][1]) / dd;
        }
    }
    let s = if a < 0.0 { -1.0 } else { 1.0 };
    ([b * s, c * s, d * s], qfac)
}

/// The bytes of a gzip-compressed NIfTI-1 file of `labels` (`uint8`, one per voxel in
/// [`Geometry::index`] order) on `g`: sform and qform both the grid's RAS affine (code 1,
/// scanner), millimetres.
pub fn encode_labels(g: &Geometry, labels: &[u8], description: &str) -> Vec<u8> {
    let mut h = vec![0u8; 348];
    let put_i16 = |h: &mut [u8], at: usize, v: i16| h[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put_f32 = |h: &mut [u8], at: usize, v: f32| h[at..at + 4].copy_from_slice(&v.to_le_bytes());
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    h[38] = b'r'; // regular
    let dims = [
        3i16,
        g.dims[0] as i16,
        g.dims[1] as i16,
        g.dims[2] as i16,
        1,
        1,
        1,
        1,
    ];
    for (i, d) in dims.iter().enumerate() {
        put_i16(&mut h, 40 + 2 * i, *d);
    }
    put_i16(&mut h, 70, 2); // datatype: uint8
    put_i16(&mut h, 72, 8); // bitpix
    let a = g.affine_ras();
    let mut rot = [[0.0; 3]; 3];
    for r in 0..3 {
        for c in 0..3 {
            rot[r][c] = a[r][c] / g.spacing[c];
        }
    }
    let (q, qfac) = quatern(rot);
    let pixdim = [
        qfac as f32,
        g.spacing[0] as f32,
        g.spacing[1] as f32,
        g.spacing[2] as f32,
        1.0,
        1.0,
        1.0,
        1.0,
    ];
    for (i, p) in pixdim.iter().enumerate() {
        put_f32(&mut h, 76 + 4 * i, *p);
    }
    put_f32(&mut h, 108, 352.0); // vox_offset
    put_f32(&mut h, 112, 1.0); // scl_slope
    h[123] = 2; // xyzt_units: mm
    let desc = description.as_bytes();
    let n = desc.len().min(79);
    h[148..148 + n].copy_from_slice(&desc[..n]);
    put_i16(&mut h, 252, 1); // qform_code: scanner
    put_i16(&mut h, 254, 1); // sform_code: scanner
    for (i, v) in q.iter().enumerate() {
        put_f32(&mut h, 256 + 4 * i, *v as f32);
    }
    for i in 0..3 {
        put_f32(&mut h, 268 + 4 * i, a[i][3] as f32);
    }
    for r in 0..3 {
        for c in 0..4 {
            put_f32(&mut h, 280 + 16 * r + 4 * c, a[r][c] as f32);
        }
    }
    h[344..348].copy_from_slice(b"n+1\0");
    let mut raw = h;
    raw.extend_from_slice(&[0u8; 4]); // no extension
    raw.extend_from_slice(labels);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    gz.write_all(&raw)
        .unwrap_or_else(|_| unreachable!("writing to memory cannot fail"));
    gz.finish()
        .unwrap_or_else(|_| unreachable!("writing to memory cannot fail"))
}

/// Writes `labels` on `g` to `path` as gzip NIfTI-1, durably (temporary file, rename).
pub fn write_labels(
    path: &Path,
    g: &Geometry,
    labels: &[u8],
    description: &str,
) -> Result<(), ClinicalError> {
    let bytes = encode_labels(g, labels, description);
    vmunet_fs::write_durable_output(path, &bytes)?;
    Ok(())
}

/// Reads a NIfTI label volume: integer labels 0..=255 and its grid.
pub fn read_labels(path: &Path) -> Result<(Geometry, Vec<u8>), ClinicalError> {
    let (g, v) = read_volume(path)?;
    let mut out = Vec::with_capacity(v.len());
    for x in v {
        if !(0.0..=255.0).contains(&x) || x.fract() != 0.0 {
            return Err(ClinicalError::format(
                path,
                format!("voxel value {x} is not a label (an integer in 0..=255)"),
            ));
        }
        out.push(x as u8);
    }
    Ok((g, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::cross;

    #[test]
    fn labels_round_trip_with_their_affine() {
        let a = 20f64.to_radians();
        let row = [a.cos(), a.sin(), 0.0];
        let col = [-a.sin() * 0.8, a.cos() * 0.8, 0.6];
        let g = Geometry {
            dims: [4, 3, 2],
            origin: [10.0, -20.0, 30.0],
            axes: [row, col, cross(row, col)],
            spacing: [0.7, 0.8, 2.5],
        };
        let labels: Vec<u8> = (0..24).map(|i| (i % 9) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.nii.gz");
        write_labels(&p, &g, &labels, "test").unwrap();
        let (back, l) = read_labels(&p).unwrap();
        assert_eq!(l, labels);
        assert_eq!(back.dims, g.dims);
        for i in 0..3 {
            assert!((back.origin[i] - g.origin[i]).abs() < 1e-4);
            assert!((back.spacing[i] - g.spacing[i]).abs() < 1e-5);
            for c in 0..3 {
                assert!((back.axes[i][c] - g.axes[i][c]).abs() < 1e-5);
            }
        }
        // The qform alone gives the same grid.
        let mut obj = ReaderOptions::new().read_file(&p).unwrap().header().clone();
        obj.sform_code = 0;
        let q = Geometry::from_affine_ras(g.dims, header_affine(&obj)).unwrap();
        for i in 0..3 {
            for c in 0..3 {
                assert!((q.axes[i][c] - g.axes[i][c]).abs() < 1e-4, "{q:?}");
            }
        }
    }
}
