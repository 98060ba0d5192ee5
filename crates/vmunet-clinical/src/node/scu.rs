//! Sending a result back: one C-STORE of a Part 10 file to a peer (`HOST:PORT:AET`), in the
//! file's transfer syntax (Explicit VR Little Endian) or, if the peer only takes that,
//! Implicit VR Little Endian.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use dicom_dictionary_std::{tags, uids};
use dicom_encoding::TransferSyntaxIndex;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_ul::pdu::{PDataValue, PDataValueType};
use dicom_ul::{ClientAssociationOptions, Pdu};

use super::dimse;
use crate::ClinicalError;

/// A DICOM peer: host, port and AE title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Its AE title.
    pub ae_title: String,
}

impl std::str::FromStr for Peer {
    type Err = String;
    /// `HOST:PORT:AET`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.rsplitn(3, ':');
        let (ae, port, host) = (parts.next(), parts.next(), parts.next());
        match (host, port.and_then(|p| p.parse::<u16>().ok()), ae) {
            (Some(h), Some(p), Some(a)) if !h.is_empty() && !a.is_empty() && a.len() <= 16 => {
                Ok(Self {
                    host: h.to_string(),
                    port: p,
                    ae_title: a.to_string(),
                })
            }
            _ => Err(format!(
                "`{s}` is not HOST:PORT:AET (an AE title has at most 16 characters)"
            )),
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}:{}", self.ae_title, self.host, self.port)
    }
}

/// C-STOREs the Part 10 file `path` to `peer` as `calling`; returns the peer's status.
pub fn send_file(path: &Path, peer: &Peer, calling: &str) -> Result<u16, ClinicalError> {
    let fail = |why: String| ClinicalError::format(path, format!("sending to {peer}: {why}"));
    let file = dicom_object::open_file(path).map_err(|e| fail(e.to_string()))?;
    let class = file.meta().media_storage_sop_class_uid().to_string();
    let instance = file.meta().media_storage_sop_instance_uid().to_string();
    let mut assoc = ClientAssociationOptions::new()
        .calling_ae_title(calling)
        .called_ae_title(peer.ae_title.as_str())
        .with_presentation_context(
            class.as_str(),
            vec![
                uids::EXPLICIT_VR_LITTLE_ENDIAN,
                uids::IMPLICIT_VR_LITTLE_ENDIAN,
            ],
        )
        .max_pdu_length(65536)
        .connection_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .write_timeout(Duration::from_secs(60))
        .establish((peer.host.as_str(), peer.port))
        .map_err(|e| fail(format!("no association: {e}")))?;
    let pc = assoc
        .presentation_contexts()
        .iter()
        .find(|pc| pc.abstract_syntax == class)
        .cloned()
        .ok_or_else(|| fail(format!("the peer does not accept SOP class {class}")))?;
    let ts = TransferSyntaxRegistry
        .get(&pc.transfer_syntax)
        .ok_or_else(|| fail(format!("unknown transfer syntax {}", pc.transfer_syntax)))?;
    let mut data = Vec::new();
    file.write_dataset_with_ts(&mut data, ts)
        .map_err(|e| fail(format!("encoding: {e}")))?;
    let rq = dimse::encode(&dimse::store_rq(1, &class, &instance)).map_err(fail)?;
    assoc
        .send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc.id,
                value_type: PDataValueType::Command,
                is_last: true,
                data: rq,
            }],
        })
        .map_err(|e| fail(e.to_string()))?;
    {
        let mut w = assoc.send_pdata(pc.id);
        w.write_all(&data).map_err(|e| fail(e.to_string()))?;
        w.finish().map_err(|e| fail(e.to_string()))?;
    }
    let mut command = Vec::new();
    let status = loop {
        match assoc.receive().map_err(|e| fail(e.to_string()))? {
            Pdu::PData { data } => {
                let mut last = false;
                for v in data
                    .iter()
                    .filter(|v| v.value_type == PDataValueType::Command)
                {
                    command.extend_from_slice(&v.data);
                    last |= v.is_last;
                }
                if last {
                    let rsp = dimse::parse(&command).map_err(fail)?;
                    break dimse::u16_of(&rsp, tags::STATUS)
                        .ok_or_else(|| fail("C-STORE-RSP without a status".into()))?;
                }
            }
            other => return Err(fail(format!("unexpected {other:?}"))),
        }
    };
    let _ = assoc.release();
    Ok(status)
}
