//! Which checkpoint format a file is in, from its first bytes, and the cheap checks that catch
//! a truncated zip or safetensors file before a store reads it.

use std::fmt;
use std::io::{Read, Seek};
use std::path::Path;

use super::error::{io_err, CheckpointError};

/// On-disk checkpoint formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFormat {
    /// `torch.save` output (zip, legacy pickle or tar).
    Pytorch,
    /// safetensors.
    Safetensors,
    /// burn's burnpack record, written by [`save`](crate::checkpoint::save).
    Burnpack,
}

impl fmt::Display for CheckpointFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pytorch => "pytorch",
            Self::Safetensors => "safetensors",
            Self::Burnpack => "burnpack",
        })
    }
}

/// Detects the format from the file's first bytes and, for safetensors, checks its length.
pub fn detect_format(path: &Path) -> Result<CheckpointFormat, CheckpointError> {
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let len = f.metadata().map_err(io_err(path))?.len();
    let mut head = [0u8; 16];
    let n = read_up_to(&mut f, &mut head).map_err(io_err(path))?;
    let head = &head[..n];
    let not = |detail: String| CheckpointError::NotACheckpoint {
        path: path.to_path_buf(),
        detail,
    };
    if n == 0 {
        return Err(not("the file is empty".into()));
    }
    if head.starts_with(b"PK\x03\x04") {
        check_zip_end(path, &mut f, len)?;
        return Ok(CheckpointFormat::Pytorch);
    }
    if head.starts_with(&[0x80]) {
        return Ok(CheckpointFormat::Pytorch);
    }
    if n >= 4 && (head[..4] == 0x4255_524E_u32.to_le_bytes() || head[..4] == *b"BURN") {
        return Ok(CheckpointFormat::Burnpack);
    }
    if n >= 9 && head[8] == b'{' {
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(&head[..8]);
        let header_len = u64::from_le_bytes(len_bytes);
        check_safetensors(path, &mut f, len, header_len)?;
        return Ok(CheckpointFormat::Safetensors);
    }
    if n >= 265 || len >= 512 {
        // tar archives (old torch.save) carry "ustar" at offset 257.
        let mut buf = vec![0u8; 262];
        let mut f = std::fs::File::open(path).map_err(io_err(path))?;
        if read_up_to(&mut f, &mut buf).map_err(io_err(path))? == 262 && &buf[257..262] == b"ustar"
        {
            return Ok(CheckpointFormat::Pytorch);
        }
    }
    Err(not(format!(
        "unrecognised leading bytes {:02x?}",
        &head[..n.min(8)]
    )))
}

/// A zip archive ends with its central directory; a cut file loses it.
fn check_zip_end(path: &Path, f: &mut std::fs::File, len: u64) -> Result<(), CheckpointError> {
    let tail = len.min(65_557);
    f.seek(std::io::SeekFrom::Start(len - tail))
        .map_err(io_err(path))?;
    let mut buf = vec![0u8; tail as usize];
    f.read_exact(&mut buf).map_err(io_err(path))?;
    if buf.windows(4).any(|w| w == b"PK\x05\x06") {
        Ok(())
    } else {
        Err(CheckpointError::Truncated {
            path: path.to_path_buf(),
            detail: "zip archive has no end-of-central-directory record".into(),
        })
    }
}

fn read_up_to(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn check_safetensors(
    path: &Path,
    f: &mut std::fs::File,
    len: u64,
    header_len: u64,
) -> Result<(), CheckpointError> {
    let trunc = |detail: String| CheckpointError::Truncated {
        path: path.to_path_buf(),
        detail,
    };
    if header_len > 100 << 20 {
        return Err(CheckpointError::NotACheckpoint {
            path: path.to_path_buf(),
            detail: format!("safetensors header length {header_len} is implausible"),
        });
    }
    if 8 + header_len > len {
        return Err(trunc(format!(
            "safetensors header needs {} bytes, file has {len}",
            8 + header_len
        )));
    }
    f.seek(std::io::SeekFrom::Start(8)).map_err(io_err(path))?;
    let mut header = vec![0u8; header_len as usize];
    f.read_exact(&mut header).map_err(io_err(path))?;
    let json: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| CheckpointError::NotACheckpoint {
            path: path.to_path_buf(),
            detail: format!("safetensors header is not JSON: {e}"),
        })?;
    let end = json
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    let have = len - 8 - header_len;
    if end > have {
        return Err(trunc(format!(
            "tensor data needs {end} bytes after the header, file has {have}"
        )));
    }
    Ok(())
}
