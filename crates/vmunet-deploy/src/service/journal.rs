//! The service's journal: an append-only file of JSON lines, one per event, each fsynced
//! before the service goes on. It is what makes processing exactly-once: an image (its file
//! name and the SHA-256 of its bytes) is `started` before any output is written and `done`
//! (or `failed`) after every output is durable. A torn last line (a crash mid-append) is cut
//! off when the journal is opened again.

use std::collections::HashMap;
use std::io::{BufRead, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use vmunet_fs::failpoint;

use crate::DeployError;

/// What happened to an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// Processing began; outputs may be partly written.
    Started,
    /// Mask, overlay and record are durable.
    Done,
    /// The image could not be processed; it was moved to `failed/` with its reason.
    Failed,
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Sequence number (1, 2, ...).
    pub seq: u64,
    /// Unix time in seconds.
    pub time: f64,
    /// Event.
    pub event: Event,
    /// File name in the watched folder.
    pub name: String,
    /// SHA-256 of the file's bytes.
    pub sha256: String,
    /// Output stem (`STEM_mask.png`, ...), for `started` and `done`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stem: Option<String>,
    /// Why it failed, or `recovered` when a restart found the outputs complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An image's identity: its file name and the SHA-256 of its content.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageKey {
    /// File name in the watched folder.
    pub name: String,
    /// SHA-256 of the file's bytes, lowercase hex.
    pub sha256: String,
}

impl ImageKey {
    /// The key of the file `name` whose bytes hash to `sha256`.
    pub fn new(name: impl Into<String>, sha256: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            sha256: sha256.into(),
        }
    }

    /// The first 8 hex digits of the hash: what tells apart the output stems of two images
    /// with the same name (`NAME-1a2b3c4d`).
    pub fn short_hash(&self) -> &str {
        self.sha256.get(..8).unwrap_or(&self.sha256)
    }
}

/// The open journal and the state it describes.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
    next_seq: u64,
    state: HashMap<ImageKey, (Event, Option<String>)>,
    /// Bytes of a torn last line that were cut off at opening.
    pub repaired_bytes: u64,
}

impl Journal {
    /// Opens (or creates) the journal at `path`, replaying it; cuts off a torn last line.
    pub fn open(path: &Path) -> Result<Self, DeployError> {
        let io = DeployError::io(path);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        let mut state = HashMap::new();
        let mut next_seq = 1;
        let mut good_len = 0u64;
        let mut reader = std::io::BufReader::new(&file);
        let mut line = Vec::new();
        let mut line_no = 0;
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(DeployError::io(path))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            if line.last() != Some(&b'\n') {
                break; // torn tail
            }
            let rec: Record = serde_json::from_slice(&line[..n - 1]).map_err(|e| {
                DeployError::invalid(
                    path,
                    format!("line {line_no} is not a journal record ({e}); the journal was edited or damaged: move it aside to start afresh"),
                )
            })?;
            next_seq = rec.seq + 1;
            state.insert(ImageKey::new(rec.name, rec.sha256), (rec.event, rec.stem));
            good_len += n as u64;
        }
        drop(reader);
        let len = file.metadata().map_err(DeployError::io(path))?.len();
        let repaired_bytes = len - good_len;
        if repaired_bytes > 0 {
            file.set_len(good_len).map_err(DeployError::io(path))?;
            file.sync_all().map_err(DeployError::io(path))?;
            file.seek(std::io::SeekFrom::End(0))
                .map_err(DeployError::io(path))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            next_seq,
            state,
            repaired_bytes,
        })
    }

    /// Appends one record and fsyncs it.
    pub fn append(
        &mut self,
        event: Event,
        key: &ImageKey,
        stem: Option<&str>,
        note: Option<&str>,
    ) -> Result<(), DeployError> {
        let rec = Record {
            seq: self.next_seq,
            time: crate::unix_now(),
            event,
            name: key.name.clone(),
            sha256: key.sha256.clone(),
            stem: stem.map(str::to_string),
            note: note.map(str::to_string),
        };
        let mut line = serde_json::to_vec(&rec)
            .map_err(|e| DeployError::invalid(&self.path, format!("cannot encode: {e}")))?;
        line.push(b'\n');
        let io = DeployError::io(&self.path);
        if failpoint::is_armed("mid-journal") {
            self.file
                .write_all(&line[..line.len() / 2])
                .and_then(|_| self.file.sync_data())
                .map_err(DeployError::io(&self.path))?;
            failpoint::hit("mid-journal");
            self.file
                .write_all(&line[line.len() / 2..])
                .map_err(DeployError::io(&self.path))?;
        } else {
            self.file
                .write_all(&line)
                .map_err(DeployError::io(&self.path))?;
        }
        self.file.sync_data().map_err(io)?;
        self.next_seq += 1;
        self.state
            .insert(key.clone(), (event, stem.map(str::to_string)));
        Ok(())
    }

    /// The last event recorded for `key`, and its output stem.
    pub fn last(&self, key: &ImageKey) -> Option<(Event, Option<&str>)> {
        self.state.get(key).map(|(e, s)| (*e, s.as_deref()))
    }

    /// Images started and not finished (a crash came between).
    pub fn in_progress(&self) -> Vec<(ImageKey, Option<String>)> {
        let mut v: Vec<_> = self
            .state
            .iter()
            .filter(|(_, (e, _))| *e == Event::Started)
            .map(|(k, (_, s))| (k.clone(), s.clone()))
            .collect();
        v.sort();
        v
    }

    /// True when an output stem is used by a finished or started image other than `key`.
    pub fn stem_taken(&self, stem: &str, key: &ImageKey) -> bool {
        self.state
            .iter()
            .any(|(k, (_, s))| k != key && s.as_deref() == Some(stem))
    }

    /// Counts of done and failed images.
    pub fn counts(&self) -> (usize, usize) {
        let done = self
            .state
            .values()
            .filter(|(e, _)| *e == Event::Done)
            .count();
        let failed = self
            .state
            .values()
            .filter(|(e, _)| *e == Event::Failed)
            .count();
        (done, failed)
    }
}

/// Cuts a torn last line (no newline: a crash mid-append) off an append-only JSON-lines file;
/// returns the bytes removed. A missing file is fine.
pub fn cut_torn_tail(path: &Path) -> Result<u64, DeployError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(DeployError::io(path)(e)),
    };
    let good = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let cut = (bytes.len() - good) as u64;
    if cut > 0 {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(DeployError::io(path))?;
        f.set_len(good as u64)
            .and_then(|_| f.sync_all())
            .map_err(DeployError::io(path))?;
    }
    Ok(cut)
}

/// The JSON values of a JSON-lines file (missing file: none); a line that is not JSON is an
/// error naming the file and line.
pub fn read_lines(path: &Path) -> Result<Vec<serde_json::Value>, DeployError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(DeployError::io(path)(e)),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| DeployError::invalid(path, format!("line {}: {e}", i + 1)))
        })
        .collect()
}

/// Reads every record of a journal (for tests and audits); a torn last line is skipped.
pub fn read_records(path: &Path) -> Result<Vec<Record>, DeployError> {
    let text = std::fs::read(path).map_err(DeployError::io(path))?;
    let mut out = Vec::new();
    for (i, line) in text.split_inclusive(|b| *b == b'\n').enumerate() {
        if line.last() != Some(&b'\n') {
            break;
        }
        out.push(
            serde_json::from_slice(&line[..line.len() - 1])
                .map_err(|e| DeployError::invalid(path, format!("line {}: {e}", i + 1)))?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_state_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.jsonl");
        let a = ImageKey::new("a.png", "1".repeat(64));
        let b = ImageKey::new("b.png", "2".repeat(64));
        assert_eq!(a.short_hash(), "11111111");
        {
            let mut j = Journal::open(&p).unwrap();
            j.append(Event::Started, &a, Some("a"), None).unwrap();
            j.append(Event::Done, &a, Some("a"), None).unwrap();
            j.append(Event::Started, &b, Some("b"), None).unwrap();
        }
        // A crash mid-append leaves half a line.
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"seq\":4,\"time\":1.0,\"ev").unwrap();
        drop(f);
        let mut j = Journal::open(&p).unwrap();
        assert_eq!(j.repaired_bytes, 23);
        assert_eq!(j.last(&a), Some((Event::Done, Some("a"))));
        assert_eq!(j.in_progress(), vec![(b.clone(), Some("b".to_string()))]);
        assert!(j.stem_taken("a", &b) && !j.stem_taken("a", &a));
        j.append(Event::Failed, &b, None, Some("cannot decode"))
            .unwrap();
        let recs = read_records(&p).unwrap();
        assert_eq!(recs.len(), 4);
        assert_eq!(recs[3].seq, 4);
        assert_eq!(j.counts(), (1, 1));
        // A damaged line in the middle is an error naming the file, not a silent reset.
        std::fs::write(&p, b"garbage\n").unwrap();
        let e = Journal::open(&p).unwrap_err().to_string();
        assert!(e.contains("journal.jsonl") && e.contains("line 1"), "{e}");
    }
}
