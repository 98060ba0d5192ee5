//! One association with a peer: C-ECHO answered, C-STORE data sets checked, written durably
//! into `incoming/<SeriesInstanceUID>/<SOPInstanceUID>.dcm` (the received bytes as a Part 10
//! file, not re-encoded) and only then acknowledged; what was acknowledged survives an abort,
//! a crash or a power cut.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::Duration;

use dicom_dictionary_std::{tags, uids};
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_ul::association::Association as _;
use dicom_ul::pdu::{PDataValue, PDataValueType};
use dicom_ul::{Pdu, ServerAssociationOptions};

use super::dimse::{self, field};
use crate::dicom::classes::{is_image_storage, IMAGE_STORAGE, TRANSFER_SYNTAXES};

/// An instance stored: its series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// Series Instance UID.
    pub series: String,
}

/// What an association did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssociationReport {
    /// Calling AE title of the peer.
    pub peer: String,
    /// Instances stored and acknowledged.
    pub stored: usize,
    /// Instances refused (with their status).
    pub refused: Vec<(String, u16, String)>,
    /// C-ECHOs answered.
    pub echoes: usize,
    /// How it ended: `released`, `aborted`, `closed` or an error.
    pub end: String,
}

/// The node's side of an association.
pub struct Scp<'a> {
    /// Our AE title.
    pub ae_title: &'a str,
    /// `incoming/`.
    pub incoming: &'a Path,
    /// Told of every stored instance.
    pub arrivals: &'a Sender<Arrival>,
}

/// A UID safe as a file name (digits and dots, 1..=64 characters).
pub fn valid_uid(uid: &str) -> bool {
    !uid.is_empty() && uid.len() <= 64 && uid.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

impl Scp<'_> {
    fn options(
        &self,
    ) -> ServerAssociationOptions<
        '_,
        dicom_ul::association::server::AcceptAny,
        dicom_ul::association::server::DefaultNegotiation,
    > {
        let mut o = ServerAssociationOptions::new()
            .accept_any()
            .ae_title(self.ae_title)
            .max_pdu_length(65536)
            .strict(false)
            .read_timeout(Duration::from_secs(120))
            .write_timeout(Duration::from_secs(120))
            .with_abstract_syntax(uids::VERIFICATION);
        for c in IMAGE_STORAGE {
            o = o.with_abstract_syntax(*c);
        }
        for ts in TRANSFER_SYNTAXES {
            o = o.with_transfer_syntax(*ts);
        }
        o
    }

    /// Serves one connection until the peer releases, aborts or closes it.
    pub fn serve(&self, stream: TcpStream) -> AssociationReport {
        let mut report = AssociationReport::default();
        let mut assoc = match self.options().establish(stream) {
            Ok(a) => a,
            Err(e) => {
                report.end = format!("association refused: {e}");
                return report;
            }
        };
        report.peer = assoc.peer_ae_title().to_string();
        let contexts: Vec<(u8, String)> = assoc
            .presentation_contexts()
            .iter()
            .map(|pc| (pc.id, pc.transfer_syntax.clone()))
            .collect();
        let mut command = Vec::new();
        let mut data = Vec::new();
        let mut pending: Option<(u8, InMemDicomObject)> = None;
        loop {
            let pdu = match assoc.receive() {
                Ok(p) => p,
                Err(dicom_ul::association::Error::ConnectionClosed { .. }) => {
                    report.end = "closed".into();
                    return report;
                }
                Err(e) => {
                    report.end = format!("error: {e}");
                    return report;
                }
            };
            match pdu {
                Pdu::PData { data: values } => {
                    for PDataValue {
                        presentation_context_id: pc,
                        value_type,
                        is_last,
                        data: bytes,
                    } in values
                    {
                        match value_type {
                            PDataValueType::Command => {
                                command.extend_from_slice(&bytes);
                                if !is_last {
                                    continue;
                                }
                                let cmd = match dimse::parse(&command) {
                                    Ok(c) => c,
                                    Err(e) => {
                                        report.end = e;
                                        let _ = assoc.abort();
                                        return report;
                                    }
                                };
                                command.clear();
                                let id = dimse::u16_of(&cmd, tags::MESSAGE_ID).unwrap_or(0);
                                match dimse::u16_of(&cmd, tags::COMMAND_FIELD) {
                                    Some(field::C_ECHO_RQ) => {
                                        if send_command(&mut assoc, pc, &dimse::echo_rsp(id))
                                            .is_err()
                                        {
                                            report.end = "error: cannot answer C-ECHO".into();
                                            return report;
                                        }
                                        report.echoes += 1;
                                    }
                                    Some(field::C_STORE_RQ) if dimse::has_data_set(&cmd) => {
                                        pending = Some((pc, cmd));
                                    }
                                    other => {
                                        report.end = format!("unsupported DIMSE command {other:?}");
                                        let _ = assoc.abort();
                                        return report;
                                    }
                                }
                            }
                            PDataValueType::Data => {
                                data.extend_from_slice(&bytes);
                                if !is_last {
                                    continue;
                                }
                                let Some((_, cmd)) = pending.take() else {
                                    report.end = "data set without a C-STORE command".into();
                                    let _ = assoc.abort();
                                    return report;
                                };
                                let ts = contexts
                                    .iter()
                                    .find(|(id, _)| *id == pc)
                                    .map(|(_, t)| t.clone())
                                    .unwrap_or_default();
                                let (status, comment) = self.store(&cmd, &ts, &data, &report.peer);
                                data.clear();
                                let id = dimse::u16_of(&cmd, tags::MESSAGE_ID).unwrap_or(0);
                                let class = dimse::str_of(&cmd, tags::AFFECTED_SOP_CLASS_UID)
                                    .unwrap_or_default();
                                let instance = dimse::str_of(&cmd, tags::AFFECTED_SOP_INSTANCE_UID)
                                    .unwrap_or_default();
                                if status == dimse::SUCCESS {
                                    report.stored += 1;
                                } else {
                                    report.refused.push((
                                        instance.clone(),
                                        status,
                                        comment.clone().unwrap_or_default(),
                                    ));
                                }
                                let rsp = dimse::store_rsp(
                                    id,
                                    &class,
                                    &instance,
                                    status,
                                    comment.as_deref(),
                                );
                                if send_command(&mut assoc, pc, &rsp).is_err() {
                                    report.end = "error: cannot answer C-STORE".into();
                                    return report;
                                }
                            }
                        }
                    }
                }
                Pdu::ReleaseRQ => {
                    let _ = assoc.send(&Pdu::ReleaseRP);
                    report.end = "released".into();
                    return report;
                }
                Pdu::AbortRQ { .. } => {
                    report.end = "aborted".into();
                    return report;
                }
                _ => {}
            }
        }
    }

    /// Checks and stores one data set; the status and comment of the C-STORE-RSP.
    fn store(
        &self,
        cmd: &InMemDicomObject,
        ts_uid: &str,
        data: &[u8],
        peer: &str,
    ) -> (u16, Option<String>) {
        let class = dimse::str_of(cmd, tags::AFFECTED_SOP_CLASS_UID).unwrap_or_default();
        let instance = dimse::str_of(cmd, tags::AFFECTED_SOP_INSTANCE_UID).unwrap_or_default();
        if !is_image_storage(&class) {
            return (
                dimse::SOP_CLASS_NOT_SUPPORTED,
                Some(format!("SOP class {class} is not stored here")),
            );
        }
        let Some(ts) = TransferSyntaxRegistry.get(ts_uid) else {
            return (
                dimse::CANNOT_UNDERSTAND,
                Some(format!("unknown transfer syntax {ts_uid}")),
            );
        };
        let obj = match InMemDicomObject::read_dataset_with_ts(data, ts) {
            Ok(o) => o,
            Err(e) => {
                return (
                    dimse::CANNOT_UNDERSTAND,
                    Some(format!("unreadable data set: {e}")),
                )
            }
        };
        let a = crate::dicom::attrs::Attrs::new(&obj, Path::new(&instance));
        let mismatch = |what: String| (dimse::DATASET_DOES_NOT_MATCH, Some(what));
        if a.opt_str(tags::SOP_CLASS_UID).as_deref() != Some(class.as_str()) {
            return mismatch("SOPClassUID differs from the command's".into());
        }
        if a.opt_str(tags::SOP_INSTANCE_UID).as_deref() != Some(instance.as_str())
            || !valid_uid(&instance)
        {
            return mismatch("SOPInstanceUID missing, invalid or not the command's".into());
        }
        let Some(series) = a
            .opt_str(tags::SERIES_INSTANCE_UID)
            .filter(|s| valid_uid(s))
        else {
            return mismatch("SeriesInstanceUID missing or invalid".into());
        };
        for (tag, name) in [
            (tags::ROWS, "Rows"),
            (tags::COLUMNS, "Columns"),
            (tags::PIXEL_DATA, "PixelData"),
        ] {
            if obj.get(tag).is_none() {
                return mismatch(format!("{name} missing: not an image"));
            }
        }
        let meta = match FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(class.as_str())
            .media_storage_sop_instance_uid(instance.as_str())
            .transfer_syntax(ts_uid)
            .source_application_entity_title(if peer.is_empty() { "UNKNOWN" } else { peer })
            .build()
        {
            Ok(m) => m,
            Err(e) => return (dimse::CANNOT_UNDERSTAND, Some(format!("file meta: {e}"))),
        };
        let mut file = Vec::with_capacity(data.len() + 512);
        file.extend_from_slice(&[0u8; 128]);
        file.extend_from_slice(b"DICM");
        if meta.write(&mut file).is_err() {
            return (
                dimse::OUT_OF_RESOURCES,
                Some("cannot encode the file meta".into()),
            );
        }
        file.extend_from_slice(data);
        let dir: PathBuf = self.incoming.join(&series);
        if std::fs::create_dir_all(&dir).is_err() {
            return (
                dimse::OUT_OF_RESOURCES,
                Some("cannot create the series folder".into()),
            );
        }
        let path = dir.join(format!("{instance}.dcm"));
        if vmunet_fs::write_durable_output(&path, &file).is_err() {
            return (
                dimse::OUT_OF_RESOURCES,
                Some("cannot write the instance".into()),
            );
        }
        let _ = self.arrivals.send(Arrival { series });
        (dimse::SUCCESS, None)
    }
}

fn send_command(
    assoc: &mut dicom_ul::ServerAssociation<TcpStream>,
    pc: u8,
    cmd: &InMemDicomObject,
) -> Result<(), String> {
    let data = dimse::encode(cmd)?;
    assoc
        .send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc,
                value_type: PDataValueType::Command,
                is_last: true,
                data,
            }],
        })
        .map_err(|e| e.to_string())
}
