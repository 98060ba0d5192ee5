//! Finding images in the watched folder and deciding when one is completely written.
//!
//! File-system events come from the `notify` crate (inotify on Linux); when it cannot watch
//! (no inotify, a network file system, `--poll`), the folder is polled. Events only wake the
//! loop early: every pass lists the folder, so nothing is missed either way.
//!
//! A file is ready when it was closed after writing (or renamed into the folder) and its size
//! has not changed since, or when its size and modification time have not changed for the
//! settle time. Hidden files and `*.part`, `*.tmp`, `*.partial`, `*.crdownload` are copies in
//! progress and are never read.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use notify::{Event, EventKind, RecursiveMode, Watcher as _};

/// Suffixes of files still being written.
pub const IN_PROGRESS_SUFFIXES: [&str; 4] = [".part", ".tmp", ".partial", ".crdownload"];

/// True for names the service never reads: hidden files and copies in progress.
pub fn is_in_progress_name(name: &str) -> bool {
    name.starts_with('.') || IN_PROGRESS_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// How the folder is watched.
pub struct Watcher {
    _inner: Option<notify::RecommendedWatcher>,
    events: Receiver<notify::Result<Event>>,
    /// `inotify` (events) or `polling`.
    pub mode: &'static str,
    /// Why events are not used (when polling).
    pub fallback_reason: Option<String>,
}

impl Watcher {
    /// Watches `dir` with file-system events, or polls when `poll` is set or events are
    /// unavailable.
    pub fn new(dir: &Path, poll: bool) -> Self {
        let (tx, rx) = channel();
        if poll {
            return Self {
                _inner: None,
                events: rx,
                mode: "polling",
                fallback_reason: Some("--poll".into()),
            };
        }
        let watcher = notify::recommended_watcher(move |e| {
            let _ = tx.send(e);
        })
        .and_then(|mut w| w.watch(dir, RecursiveMode::NonRecursive).map(|_| w));
        match watcher {
            Ok(w) => Self {
                _inner: Some(w),
                events: rx,
                mode: "inotify",
                fallback_reason: None,
            },
            Err(e) => Self {
                _inner: None,
                events: rx,
                mode: "polling",
                fallback_reason: Some(e.to_string()),
            },
        }
    }

    /// Waits up to `timeout` for events; returns the paths that were closed after writing or
    /// renamed in (complete), and whether anything happened.
    pub fn wait(&self, timeout: Duration) -> (Vec<PathBuf>, bool) {
        let mut complete = Vec::new();
        let mut any = false;
        if self._inner.is_none() {
            std::thread::sleep(timeout);
            return (complete, false);
        }
        let mut take = |e: notify::Result<Event>| {
            any = true;
            if let Ok(e) = e {
                use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
                match e.kind {
                    EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                        complete.extend(e.paths)
                    }
                    EventKind::Modify(ModifyKind::Name(RenameMode::To)) => complete.extend(e.paths),
                    EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                        complete.extend(e.paths.into_iter().skip(1))
                    }
                    _ => {}
                }
            }
        };
        match self.events.recv_timeout(timeout) {
            Ok(e) => take(e),
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {}
        }
        while let Ok(e) = self.events.try_recv() {
            take(e);
        }
        (complete, any)
    }
}

#[derive(Debug, Clone)]
struct Seen {
    size: u64,
    mtime: Option<SystemTime>,
    changed: Instant,
    arrived: Instant,
    closed: bool,
    close_event: bool,
}

/// A file in the watched folder that is ready to read.
#[derive(Debug, Clone)]
pub struct Ready {
    /// Path.
    pub path: PathBuf,
    /// File name.
    pub name: String,
    /// Size when it was found stable.
    pub size: u64,
    /// When the service first saw it.
    pub arrived: Instant,
}

/// Tracks files until they are completely written.
#[derive(Debug, Default)]
pub struct Tracker {
    seen: HashMap<PathBuf, Seen>,
    /// Files handled (done, failed or skipped) with the size and time they had: not offered
    /// again unless they change.
    settled: HashMap<PathBuf, (u64, Option<SystemTime>)>,
    ignored: HashSet<PathBuf>,
    /// Close events for files not yet listed.
    hints: HashSet<PathBuf>,
}

impl Tracker {
    /// Marks `paths` as closed after writing (from events).
    pub fn mark_complete(&mut self, paths: &[PathBuf]) {
        for p in paths {
            match self.seen.get_mut(p) {
                Some(s) => s.close_event = true,
                None => {
                    self.hints.insert(p.clone());
                }
            }
        }
    }

    /// Lists `dir`, updates what is tracked and returns the files that are ready (by name),
    /// plus the names newly ignored (not images). `settle` is how long size and time must
    /// hold without a close event.
    pub fn scan(
        &mut self,
        dir: &Path,
        settle: Duration,
        is_image: impl Fn(&Path) -> bool,
    ) -> std::io::Result<(Vec<Ready>, Vec<PathBuf>)> {
        let now = Instant::now();
        let mut present = HashSet::new();
        let mut newly_ignored = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let Ok(e) = e else { continue };
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if is_in_progress_name(&name) {
                continue;
            }
            let Ok(meta) = e.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            if !is_image(&path) {
                if self.ignored.insert(path.clone()) {
                    newly_ignored.push(path);
                }
                continue;
            }
            present.insert(path.clone());
            let (size, mtime) = (meta.len(), meta.modified().ok());
            if self.settled.get(&path) == Some(&(size, mtime)) {
                continue;
            }
            match self.seen.get_mut(&path) {
                // A close event came after every write this listing sees.
                Some(s) if s.size == size && s.mtime == mtime => {
                    s.closed |= s.close_event;
                    s.close_event = false;
                }
                Some(s) => {
                    s.size = size;
                    s.mtime = mtime;
                    s.changed = now;
                    s.closed = s.close_event;
                    s.close_event = false;
                }
                None => {
                    let closed = self.hints.remove(&path);
                    self.seen.insert(
                        path.clone(),
                        Seen {
                            size,
                            mtime,
                            changed: now,
                            arrived: now,
                            closed,
                            close_event: false,
                        },
                    );
                }
            }
        }
        self.seen.retain(|p, _| present.contains(p));
        self.settled.retain(|p, _| present.contains(p));
        self.hints.clear();
        let mut ready: Vec<Ready> = self
            .seen
            .iter()
            .filter(|(_, s)| (s.closed || now.duration_since(s.changed) >= settle) && s.size > 0)
            .map(|(p, s)| Ready {
                path: p.clone(),
                name: p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                size: s.size,
                arrived: s.arrived,
            })
            .collect();
        ready.sort_by(|a, b| a.arrived.cmp(&b.arrived).then(a.name.cmp(&b.name)));
        Ok((ready, newly_ignored))
    }

    /// Files seen and not yet ready.
    pub fn pending(&self) -> usize {
        self.seen.len()
    }

    /// The file at `path` was handled while it had this size and time.
    pub fn settle(&mut self, path: &Path, size: u64, mtime: Option<SystemTime>) {
        self.seen.remove(path);
        self.settled.insert(path.to_path_buf(), (size, mtime));
    }

    /// Forgets `path` (it was moved away).
    pub fn forget(&mut self, path: &Path) {
        self.seen.remove(path);
        self.settled.remove(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_growing_file_is_not_ready_until_it_settles_or_closes() {
        let dir = tempfile::tempdir().unwrap();
        let img = |p: &Path| vmunet_data::is_image_file(p);
        let mut t = Tracker::default();
        let p = dir.path().join("a.png");
        std::fs::write(&p, b"half").unwrap();
        std::fs::write(dir.path().join("b.png.part"), b"copying").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let settle = Duration::from_millis(300);
        let (ready, ignored) = t.scan(dir.path(), settle, img).unwrap();
        assert!(ready.is_empty());
        assert_eq!(ignored, vec![dir.path().join("notes.txt")]);
        std::thread::sleep(Duration::from_millis(150));
        std::fs::write(&p, b"half and more").unwrap();
        let (ready, _) = t.scan(dir.path(), settle, img).unwrap();
        assert!(ready.is_empty(), "changed 0 ms ago");
        // A close event makes it ready at once.
        t.mark_complete(std::slice::from_ref(&p));
        let (ready, _) = t.scan(dir.path(), settle, img).unwrap();
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].size, 13);
        let mtime = std::fs::metadata(&p).unwrap().modified().ok();
        t.settle(&p, 13, mtime);
        let (ready, _) = t.scan(dir.path(), settle, img).unwrap();
        assert!(ready.is_empty(), "settled files are not offered again");
        assert!(is_in_progress_name("x.png.part") && is_in_progress_name(".x.png"));
    }
}
