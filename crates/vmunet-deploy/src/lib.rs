//! Deployment: what goes onto the device and what runs there, over the runtime layer (no
//! burn).
//!
//! - [`bundle`]: a folder to copy to a Jetson (or any Linux box): the binary, the models, the
//!   device profile, the custom-operator library where a model needs it, a run script, a
//!   systemd unit, a README and a SHA-256 manifest; written atomically.
//! - [`verify`]: checks a bundle against its manifest (changed, missing and extra files) and
//!   opens every model in the profile's runtime.
//! - [`service`]: the watch-folder segmentation service: images dropped into a folder come
//!   back as masks, overlays and a JSON record each, exactly once across crashes and restarts
//!   (an fsynced journal), with failed images set aside with their reason, a status file, an
//!   optional HTTP health endpoint and an audit log.
//! - [`triton`]: a Triton Inference Server model repository for the ONNX Runtime back-end.

#![deny(missing_docs)]

pub mod bundle;
mod elf;
pub mod manifest;
pub mod service;
mod summary;
pub mod triton;
pub mod verify;

pub use bundle::{create_bundle, BundleReport, BundleSpec};
pub use elf::{host_arch, Arch};
pub use manifest::{Manifest, MANIFEST_FILE};
pub use service::{serve, ServeOptions, ServeSummary, StopFlag};
pub use triton::{write_triton_repo, TritonReport, TritonSpec};
pub use verify::{verify_bundle, BundleProblem, ModelCheck, VerifyOptions, VerifyReport};

use std::path::PathBuf;

/// Deployment errors; each names the file or folder at fault and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// A file or folder cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File or folder.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// An input (model, profile, binary, bundle, option) is not usable.
    #[error("{path}: {reason}")]
    Invalid {
        /// File or folder.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The model cannot be opened or run.
    #[error(transparent)]
    Runtime(#[from] vmunet_runtime::RuntimeError),
    /// The device profile is not usable.
    #[error(transparent)]
    Profile(#[from] vmunet_runtime::target::ProfileError),
    /// An image or output file cannot be read, encoded or written.
    #[error(transparent)]
    Data(#[from] vmunet_data::DataError),
}

impl From<vmunet_fs::FsError> for DeployError {
    fn from(e: vmunet_fs::FsError) -> Self {
        Self::Io {
            path: e.path,
            source: e.source,
        }
    }
}

impl DeployError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// The vmunet version that writes bundles, records and repositories.
pub const TOOLKIT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `2026-12-02T10:11:12.345Z` for a Unix time in seconds (UTC).
pub fn utc_timestamp(unix: f64) -> String {
    let secs = unix.floor() as i64;
    let millis = ((unix - secs as f64) * 1000.0).floor() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(super::utc_timestamp(0.0), "1970-01-01T00:00:00.000Z");
        // 2024-02-29 (leap day) 12:34:56.789
        assert_eq!(
            super::utc_timestamp(1_709_210_096.789),
            "2024-02-29T12:34:56.789Z"
        );
        assert_eq!(
            super::utc_timestamp(1_798_761_600.0),
            "2027-01-01T00:00:00.000Z"
        );
    }
}
