//! The DICOM node: a C-ECHO and C-STORE SCP (Verification; CT, MR, PET, secondary capture
//! and photographic image storage; implicit / explicit VR little endian and 8-bit JPEG) that
//! groups what it receives into series, segments a series once nothing has arrived for it for
//! a settle time, writes `OUT/<SeriesInstanceUID>.seg.dcm`, `.nii.gz` and `.json`, and sends
//! the SEG back with C-STORE when asked.
//!
//! Exactly once, with the watch folder's journal (`OUT/state/journal.jsonl`): every instance
//! is on disk (fsynced) before its C-STORE is acknowledged, so an association that aborts
//! loses nothing it was told was stored; a series (its UID and the hashes of its instances) is
//! `started` before any output and `done` after all outputs (and the send); a restart after
//! `kill -9` picks up every series received and not done, and skips the done ones. Outputs
//! are derived deterministically (their UIDs too), so a series interrupted mid-way and
//! re-run gives the same files.

pub mod dimse;
pub mod scp;
pub mod scu;

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use vmunet_deploy::service::journal::{Event, ImageKey, Journal};
use vmunet_deploy::service::StopFlag;
use vmunet_fs::failpoint;

use crate::job::ClinicalSegmenter;
use crate::ClinicalError;
pub use scu::Peer;

/// How the node runs.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// Our AE title (calling AE of the SEGs we send).
    pub ae_title: String,
    /// Output folder: results, `incoming/`, `failed/`, `state/journal.jsonl`.
    pub out: PathBuf,
    /// A series is segmented once nothing arrived for it for this long.
    pub settle: Duration,
    /// Where to C-STORE each SEG.
    pub send_to: Option<Peer>,
}

/// What the node did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSummary {
    /// Series segmented.
    pub done: usize,
    /// Series that failed (reason in `failed/<UID>.txt`).
    pub failed: usize,
    /// Series found done in the journal and skipped.
    pub skipped: usize,
    /// SEGs sent and acknowledged with success.
    pub sent: usize,
}

fn log(msg: &str) {
    eprintln!("dicom-node: {msg}");
}

/// The journal key of a series folder: its UID and the SHA-256 over its files' names and
/// contents (so a series that later receives more instances is segmented again).
fn series_key(uid: &str, dir: &Path) -> Result<ImageKey, ClinicalError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(ClinicalError::io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    files.sort();
    let mut h = Sha256::new();
    for f in &files {
        h.update(
            f.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        h.update(vmunet_fs::sha256_file(f)?);
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(ImageKey::new(uid, hex))
}

/// Runs the node until `stop` is raised; `ready` is told the bound address.
pub fn run_node(
    opts: &NodeOptions,
    segmenter: &mut ClinicalSegmenter,
    stop: StopFlag,
    ready: impl FnOnce(SocketAddr),
) -> Result<NodeSummary, ClinicalError> {
    let incoming = opts.out.join("incoming");
    let failed = opts.out.join("failed");
    let state = opts.out.join("state");
    for d in [&opts.out, &incoming, &failed, &state] {
        std::fs::create_dir_all(d).map_err(ClinicalError::io(d))?;
    }
    let journal_path = state.join("journal.jsonl");
    let mut journal = Journal::open(&journal_path)
        .map_err(|e| ClinicalError::format(&journal_path, e.to_string()))?;
    let listener =
        TcpListener::bind(opts.addr).map_err(ClinicalError::io(opts.addr.to_string()))?;
    let local = listener
        .local_addr()
        .map_err(ClinicalError::io(opts.addr.to_string()))?;
    let (tx, rx) = mpsc::channel::<scp::Arrival>();
    {
        let ae = opts.ae_title.clone();
        let incoming = incoming.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (ae, incoming, tx) = (ae.clone(), incoming.clone(), tx.clone());
                std::thread::spawn(move || {
                    let from = stream
                        .peer_addr()
                        .map(|a| a.to_string())
                        .unwrap_or_default();
                    let r = scp::Scp {
                        ae_title: &ae,
                        incoming: &incoming,
                        arrivals: &tx,
                    }
                    .serve(stream);
                    let refused: Vec<String> = r
                        .refused
                        .iter()
                        .map(|(i, s, c)| format!("{i} (0x{s:04X} {c})"))
                        .collect();
                    log(&format!(
                        "association from {} ({from}): {} stored, {} echo(es){}; {}",
                        r.peer,
                        r.stored,
                        r.echoes,
                        if refused.is_empty() {
                            String::new()
                        } else {
                            format!(", refused {}", refused.join(", "))
                        },
                        r.end
                    ));
                });
            }
        });
    }
    // Series received before a restart: settle again, then the journal decides.
    let mut pending: HashMap<String, Instant> = HashMap::new();
    for e in std::fs::read_dir(&incoming)
        .map_err(ClinicalError::io(&incoming))?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().is_dir() && scp::valid_uid(&name) {
            pending.insert(name, Instant::now());
        }
    }
    if !pending.is_empty() {
        log(&format!(
            "{} series on disk from before the start",
            pending.len()
        ));
    }
    log(&format!(
        "listening on {local} as {} (settle {:.1} s){}",
        opts.ae_title,
        opts.settle.as_secs_f64(),
        opts.send_to
            .as_ref()
            .map(|p| format!(", results sent to {p}"))
            .unwrap_or_default()
    ));
    ready(local);
    let mut summary = NodeSummary::default();
    while !stop.load(Ordering::SeqCst) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(a) => {
                pending.insert(a.series, Instant::now());
                while let Ok(a) = rx.try_recv() {
                    pending.insert(a.series, Instant::now());
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        let due: BTreeMap<String, Instant> = pending
            .iter()
            .filter(|(_, t)| now.duration_since(**t) >= opts.settle)
            .map(|(s, t)| (s.clone(), *t))
            .collect();
        for series in due.keys() {
            pending.remove(series);
            if stop.load(Ordering::SeqCst) {
                break;
            }
            process(
                opts,
                segmenter,
                &mut journal,
                &incoming,
                &failed,
                series,
                &mut summary,
            )?;
        }
    }
    Ok(summary)
}

fn process(
    opts: &NodeOptions,
    segmenter: &mut ClinicalSegmenter,
    journal: &mut Journal,
    incoming: &Path,
    failed: &Path,
    series: &str,
    summary: &mut NodeSummary,
) -> Result<(), ClinicalError> {
    let dir = incoming.join(series);
    let key = match series_key(series, &dir) {
        Ok(k) => k,
        Err(e) => {
            // The instances cannot be read back (removed, unreadable): nothing to segment; the
            // next arrival for the series tries again.
            log(&format!("series {series}: not segmented: {e}"));
            summary.failed += 1;
            return Ok(());
        }
    };
    let jerr = |e: vmunet_deploy::DeployError| ClinicalError::format("journal", e.to_string());
    if let Some((Event::Done, _)) = journal.last(&key) {
        log(&format!(
            "series {series}: already segmented (journal), skipped"
        ));
        summary.skipped += 1;
        return Ok(());
    }
    let again = journal.last(&key).is_some();
    journal
        .append(
            Event::Started,
            &key,
            Some(series),
            again.then_some("again after an interruption"),
        )
        .map_err(jerr)?;
    failpoint::hit("after-start");
    let t = Instant::now();
    let result = (|| {
        let read = Instant::now();
        let source = crate::dicom::read::read_folder(&dir)?;
        let read = read.elapsed().as_secs_f64();
        segmenter.run(&source, read, &opts.out, series)
    })();
    match result {
        Ok(record) => {
            let mut note = format!("{} images", record.dims[2]);
            if let (Some(peer), Some(seg)) = (&opts.send_to, &record.outputs.seg) {
                // Up to three tries: a signal (a stop request) interrupts socket reads that
                // have a timeout, and the peer takes the same SEG (same UIDs) again.
                let mut sent = scu::send_file(seg, peer, &opts.ae_title);
                for _ in 0..2 {
                    if sent.is_ok() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                    sent = scu::send_file(seg, peer, &opts.ae_title);
                }
                match sent {
                    Ok(0) => {
                        summary.sent += 1;
                        note.push_str(&format!(", SEG sent to {peer}"));
                    }
                    Ok(s) => note.push_str(&format!(", SEG refused by {peer}: status 0x{s:04X}")),
                    Err(e) => note.push_str(&format!(", SEG not sent: {e}")),
                }
            }
            failpoint::hit("before-done");
            journal
                .append(Event::Done, &key, Some(series), Some(&note))
                .map_err(jerr)?;
            summary.done += 1;
            log(&format!(
                "series {series}: segmented in {:.2} s ({note})",
                t.elapsed().as_secs_f64()
            ));
        }
        Err(e) => {
            let reason = e.to_string();
            let path = failed.join(format!("{series}.txt"));
            vmunet_fs::write_durable_output(&path, format!("{reason}\n").as_bytes())?;
            journal
                .append(Event::Failed, &key, Some(series), Some(&reason))
                .map_err(jerr)?;
            summary.failed += 1;
            log(&format!("series {series}: failed: {reason}"));
        }
    }
    Ok(())
}
