//! The machine an ELF executable or shared library is built for (from its header).

use std::io::Read;
use std::path::Path;

use crate::DeployError;

/// The CPU architecture of an ELF file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// x86-64.
    X86_64,
    /// 64-bit ARM (Jetson).
    Aarch64,
    /// Anything else (the ELF `e_machine` value).
    Other(u16),
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::X86_64 => f.write_str("x86_64"),
            Self::Aarch64 => f.write_str("aarch64"),
            Self::Other(m) => write!(f, "ELF machine {m}"),
        }
    }
}

impl Arch {
    /// Reads the header of `path`; a file that is not a 64-bit little-endian ELF is an error.
    pub fn of_file(path: &Path) -> Result<Self, DeployError> {
        let mut head = [0u8; 20];
        std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut head))
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => {
                    DeployError::invalid(path, "not an executable (too short for an ELF header)")
                }
                _ => DeployError::io(path)(e),
            })?;
        if &head[..4] != b"\x7fELF" {
            return Err(DeployError::invalid(
                path,
                "not an ELF executable or library (Linux)",
            ));
        }
        if head[4] != 2 || head[5] != 1 {
            return Err(DeployError::invalid(
                path,
                "not a 64-bit little-endian ELF file",
            ));
        }
        Ok(match u16::from_le_bytes([head[18], head[19]]) {
            62 => Self::X86_64,
            183 => Self::Aarch64,
            m => Self::Other(m),
        })
    }
}

/// The architecture this process runs on.
pub fn host_arch() -> Arch {
    match std::env::consts::ARCH {
        "x86_64" => Arch::X86_64,
        "aarch64" => Arch::Aarch64,
        _ => Arch::Other(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_test_binary_and_refuses_other_files() {
        let exe = std::env::current_exe().unwrap();
        assert_eq!(Arch::of_file(&exe).unwrap(), host_arch());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("run.sh");
        std::fs::write(&p, "#!/bin/sh\necho hello world\n").unwrap();
        assert!(Arch::of_file(&p)
            .unwrap_err()
            .to_string()
            .contains("not an ELF"));
        std::fs::write(&p, "x").unwrap();
        assert!(Arch::of_file(&p)
            .unwrap_err()
            .to_string()
            .contains("too short"));
    }
}
