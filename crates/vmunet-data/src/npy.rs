//! NumPy `.npy` (version 1-3, little-endian f4/f8, C order) and stored/deflated `.npz`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use crate::{write_atomic, DataError};

/// A dense float32 array in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
}

impl Array {
    /// Builds an array, checking that `data` fills `shape`.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Option<Self> {
        (shape.iter().product::<usize>() == data.len()).then_some(Self { shape, data })
    }
}

fn fmt_err(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::Format {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads a `.npy` file holding float32 or float64 values (converted to float32).
pub fn read_npy(path: &Path) -> Result<Array, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_npy(path, &bytes)
}

/// Parses `.npy` bytes; `path` only names the source in errors.
pub fn parse_npy(path: &Path, bytes: &[u8]) -> Result<Array, DataError> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(fmt_err(path, "not a .npy file (missing \\x93NUMPY magic)"));
    }
    let major = bytes[6];
    let (hlen, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(fmt_err(path, format!("unsupported .npy version {major}"))),
    };
    let header = bytes
        .get(start..start + hlen)
        .ok_or_else(|| fmt_err(path, "truncated .npy header"))?;
    let header = std::str::from_utf8(header).map_err(|_| fmt_err(path, "header is not text"))?;
    let field = |name: &str| -> Option<&str> {
        let i = header.find(&format!("'{name}'"))?;
        Some(
            header[i + name.len() + 2..]
                .trim_start()
                .trim_start_matches(':')
                .trim_start(),
        )
    };
    let descr = field("descr")
        .and_then(|s| s.strip_prefix('\''))
        .and_then(|s| s.split('\'').next())
        .ok_or_else(|| fmt_err(path, "header has no 'descr'"))?;
    if field("fortran_order").is_some_and(|s| s.starts_with("True")) {
        return Err(fmt_err(
            path,
            "Fortran-ordered arrays are not supported; save with np.ascontiguousarray",
        ));
    }
    let shape_txt = field("shape")
        .and_then(|s| s.strip_prefix('('))
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| fmt_err(path, "header has no 'shape'"))?;
    let shape = shape_txt
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| fmt_err(path, format!("bad shape ({shape_txt})")))?;
    // Checked: a corrupted header can declare more values than memory can address.
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|c| c.checked_mul(8).is_some())
        .ok_or_else(|| fmt_err(path, format!("shape ({shape_txt}) is too large")))?;
    let body = &bytes[start + hlen..];
    let data: Vec<f32> = match descr {
        "<f4" | "|f4" => {
            check_len(path, body.len(), count * 4)?;
            body.chunks_exact(4)
                .take(count)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        }
        "<f8" => {
            check_len(path, body.len(), count * 8)?;
            body.chunks_exact(8)
                .take(count)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect()
        }
        other => {
            return Err(fmt_err(
                path,
                format!("dtype '{other}' is not supported; use float32 ('<f4')"),
            ))
        }
    };
    Ok(Array { shape, data })
}

fn check_len(path: &Path, have: usize, need: usize) -> Result<(), DataError> {
    if have < need {
        Err(fmt_err(
            path,
            format!("truncated: the header declares {need} data bytes, the file has {have}"),
        ))
    } else {
        Ok(())
    }
}

/// Encodes a float32 array as `.npy` (version 1.0).
pub fn encode_npy(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims = match shape.len() {
        1 => format!("{},", shape[0]),
        _ => shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Writes a float32 `.npy` atomically.
pub fn write_npy(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), DataError> {
    write_atomic(path, &encode_npy(shape, data))
}

/// One named array for [`write_npz`]: (key without `.npy`, shape, values in C order).
pub type NpzEntry<'a> = (&'a str, &'a [usize], &'a [f32]);

/// Writes float32 arrays as an uncompressed `.npz` (like `np.savez`), atomically.
pub fn write_npz(path: &Path, arrays: &[NpzEntry<'_>]) -> Result<(), DataError> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    for (name, shape, data) in arrays {
        if shape.iter().product::<usize>() != data.len() {
            return Err(fmt_err(
                path,
                format!(
                    "array '{name}': {} values do not fill shape {shape:?}",
                    data.len()
                ),
            ));
        }
        zip.start_file(format!("{name}.npy"), opts)
            .map_err(|e| fmt_err(path, format!("array '{name}': {e}")))?;
        zip.write_all(&encode_npy(shape, data))
            .map_err(|source| DataError::Io {
                path: path.to_path_buf(),
                source,
            })?;
    }
    let bytes = zip
        .finish()
        .map_err(|e| fmt_err(path, format!("cannot finish .npz: {e}")))?
        .into_inner();
    write_atomic(path, &bytes)
}

/// Reads every array of a `.npz`; keys lose their `.npy` suffix.
pub fn read_npz(path: &Path) -> Result<BTreeMap<String, Array>, DataError> {
    let file = std::fs::File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| fmt_err(path, format!("not a readable .npz: {e}")))?;
    let mut out = BTreeMap::new();
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| fmt_err(path, format!("entry {i}: {e}")))?;
        let name = entry.name().trim_end_matches(".npy").to_string();
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| fmt_err(path, format!("entry {name}: {e}")))?;
        let arr = parse_npy(&path.join(&name), &bytes)?;
        out.insert(name, arr);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        for shape in [vec![2, 3, 4], vec![5], vec![1, 1, 7, 9]] {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
            let p = dir.path().join("a.npy");
            write_npy(&p, &shape, &data).unwrap();
            let raw = std::fs::read(&p).unwrap();
            assert_eq!(
                (raw.len() - data.len() * 4) % 64,
                0,
                "header is 64-byte aligned"
            );
            let a = read_npy(&p).unwrap();
            assert_eq!(a.shape, shape);
            assert_eq!(a.data, data);
        }
    }

    #[test]
    fn npz_round_trip_stored_and_deflated() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.npz");
        let img: Vec<f32> = (0..12).map(|v| v as f32 / 11.0).collect();
        let lab = vec![0.0, 1.0, 8.0, 2.0, 0.0, 0.0];
        write_npz(&p, &[("image", &[3, 4], &img), ("label", &[2, 3], &lab)]).unwrap();
        let m = read_npz(&p).unwrap();
        assert_eq!(m["image"].shape, vec![3, 4]);
        assert_eq!(m["image"].data, img);
        assert_eq!(m["label"].data, lab);
        // np.savez_compressed writes deflated entries.
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("image.npy", opts).unwrap();
        zip.write_all(&encode_npy(&[3, 4], &img)).unwrap();
        zip.finish().unwrap();
        assert_eq!(read_npz(&p).unwrap()["image"].data, img);
        let e = write_npz(&p, &[("x", &[5], &img)]).unwrap_err().to_string();
        assert!(e.contains("s.npz") && e.contains("'x'"), "{e}");
    }

    #[test]
    fn errors_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.npy");
        std::fs::write(&p, b"hello world, not numpy").unwrap();
        let e = read_npy(&p).unwrap_err().to_string();
        assert!(e.contains("bad.npy") && e.contains("magic"), "{e}");
        let mut full = encode_npy(&[4, 4], &[1.0; 16]);
        full.truncate(full.len() - 5);
        std::fs::write(&p, &full).unwrap();
        let e = read_npy(&p).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        let mut int = encode_npy(&[2], &[1.0; 2]);
        let pos = int.windows(3).position(|w| w == b"<f4").unwrap();
        int[pos..pos + 3].copy_from_slice(b"<i4");
        std::fs::write(&p, &int).unwrap();
        let e = read_npy(&p).unwrap_err().to_string();
        assert!(e.contains("'<i4'"), "{e}");
    }
}
