//! Starting the service: checking and preparing its folders, taking the output folder's lock,
//! opening the status board and loading the model.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;
use vmunet_runtime::{Segmenter, SegmenterOptions, Session};

use super::journal::Journal;
use super::options::ServeOptions;
use super::status::{Status, StatusBoard};
use crate::DeployError;

/// The output folder's own sub-folders, and its lock.
pub(super) struct Folders {
    /// `OUT/.vmunet`: the journal and the lock.
    pub state: PathBuf,
    /// `OUT/failed`: images set aside.
    pub failed: PathBuf,
    /// `OUT/.vmunet/lock`, locked: one service per output folder while it is open.
    pub lock: std::fs::File,
}

/// Checks the watched and output folders, creates the output's sub-folders and takes its
/// lock.
pub(super) fn prepare_folders(opts: &ServeOptions) -> Result<Folders, DeployError> {
    check_folders(opts)?;
    let state = opts.out.join(".vmunet");
    let failed = opts.out.join("failed");
    for d in [&state, &failed] {
        std::fs::create_dir_all(d).map_err(DeployError::io(d))?;
    }
    let lock = take_lock(&state.join("lock"), &opts.out)?;
    Ok(Folders {
        state,
        failed,
        lock,
    })
}

/// The watched folder exists; the output folder is created and is not the watched one.
fn check_folders(opts: &ServeOptions) -> Result<(), DeployError> {
    if !opts.watch.is_dir() {
        return Err(DeployError::invalid(
            &opts.watch,
            "the watched folder does not exist",
        ));
    }
    std::fs::create_dir_all(&opts.out).map_err(DeployError::io(&opts.out))?;
    let same = |a: &Path, b: &Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y);
    if same(&opts.watch, &opts.out) {
        return Err(DeployError::invalid(
            &opts.out,
            "the output folder is the watched folder: masks would be segmented again",
        ));
    }
    Ok(())
}

/// Locks `lock_path` (one service per output folder `out`) and writes this process's id in
/// it; another service holding it is an error naming its process.
fn take_lock(lock_path: &Path, out: &Path) -> Result<std::fs::File, DeployError> {
    let mut lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .read(true)
        .open(lock_path)
        .map_err(DeployError::io(lock_path))?;
    if let Err(e) = lock.try_lock() {
        let holder = std::fs::read_to_string(lock_path).unwrap_or_default();
        return Err(DeployError::invalid(
            out,
            format!(
                "another vmunet serve{} is writing here ({e})",
                holder
                    .trim()
                    .parse::<u32>()
                    .map(|p| format!(" (pid {p})"))
                    .unwrap_or_default()
            ),
        ));
    }
    let _ = lock.set_len(0);
    let _ = write!(lock, "{}", std::process::id());
    Ok(lock)
}

/// The status board (`OUT/status.json`, state `starting`), written once, and its HTTP
/// endpoint when asked for.
pub(super) fn open_board(
    opts: &ServeOptions,
    model_sha: &str,
    journal: &Journal,
) -> Result<StatusBoard, DeployError> {
    let started = crate::utc_timestamp(crate::unix_now());
    let (done, failed) = journal.counts();
    let board = StatusBoard::new(
        &opts.out.join("status.json"),
        Status {
            pid: std::process::id(),
            state: "starting".into(),
            live: true,
            ready: false,
            model: opts.model.display().to_string(),
            model_sha256: model_sha.to_string(),
            model_loaded: false,
            runtime: String::new(),
            provider: String::new(),
            watch: opts.watch.display().to_string(),
            watcher: String::new(),
            done,
            failed,
            queued: 0,
            last: None,
            last_error: None,
            started: started.clone(),
            updated: started,
            version: crate::TOOLKIT_VERSION.into(),
        },
    );
    board.update(|_| {})?;
    if let Some(addr) = opts.health {
        let bound = board.serve_http(addr)?;
        opts.log
            .info("health endpoint", json!({"addr": bound.to_string()}));
    }
    Ok(board)
}

/// Loads the model (logging what the device target's check finds in it, with a profile); a
/// model that cannot be opened puts the board in state `error`.
pub(super) fn open_segmenter(
    opts: &ServeOptions,
    board: &StatusBoard,
) -> Result<Segmenter, DeployError> {
    let session = match Session::open(&opts.model, &opts.session) {
        Ok(s) => s,
        Err(e) => {
            let msg = e.to_string();
            board.update(|s| {
                s.state = "error".into();
                s.live = false;
                s.last_error = Some(msg);
            })?;
            return Err(e.into());
        }
    };
    if let (Some(profile), Some(file)) = (session.profile(), session.file()) {
        for f in profile.check(&file.metadata) {
            opts.log.warn(
                "the model does not suit the device profile",
                json!({"severity": f.severity.to_string(), "finding": f.message}),
            );
        }
    }
    let mut seg = Segmenter::new(
        session,
        &SegmenterOptions {
            size: opts.size,
            threshold: opts.threshold,
        },
    )?;
    // Ready means ready at full speed: the first patient's photo does not pay for the
    // runtime's first run.
    let seconds = seg.warm_up()?;
    opts.log.info(
        "model warmed up",
        json!({"seconds": (seconds * 1e3).round() / 1e3}),
    );
    Ok(seg)
}

/// Tells the C allocator (glibc) to keep freed memory for the next photo instead of handing
/// it back to the kernel and faulting it in again: every photo allocates the same ~60 MB of
/// large buffers (decoded picture, overlay, PNGs, mask), and with glibc's defaults a third of
/// the service's CPU time went to page faults. Resident memory stays at the pipeline's peak
/// (about 100 MB more for full-size photos). Other C libraries are left as they are.
pub(super) fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before the service starts
    // its threads, and a refused value leaves the default in place.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}
