//! DIMSE messages on the wire: command sets (always Implicit VR Little Endian), the C-ECHO and
//! C-STORE requests and responses, and the statuses the node answers with (PS3.7 Annex C).

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries;

/// Success.
pub const SUCCESS: u16 = 0x0000;
/// Refused: SOP class not supported.
pub const SOP_CLASS_NOT_SUPPORTED: u16 = 0x0122;
/// Refused: out of resources (the instance could not be stored).
pub const OUT_OF_RESOURCES: u16 = 0xA700;
/// Error: data set does not match SOP class.
pub const DATASET_DOES_NOT_MATCH: u16 = 0xA900;
/// Error: cannot understand.
pub const CANNOT_UNDERSTAND: u16 = 0xC000;

/// Command Field values.
pub mod field {
    /// C-STORE-RQ.
    pub const C_STORE_RQ: u16 = 0x0001;
    /// C-STORE-RSP.
    pub const C_STORE_RSP: u16 = 0x8001;
    /// C-ECHO-RQ.
    pub const C_ECHO_RQ: u16 = 0x0030;
    /// C-ECHO-RSP.
    pub const C_ECHO_RSP: u16 = 0x8030;
}

/// No data set follows the command.
const NO_DATA_SET: u16 = 0x0101;

/// Parses a command set.
pub fn parse(bytes: &[u8]) -> Result<InMemDicomObject, String> {
    InMemDicomObject::read_dataset_with_ts(bytes, &entries::IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .map_err(|e| format!("unreadable DIMSE command: {e}"))
}

/// Encodes a command set.
pub fn encode(cmd: &InMemDicomObject) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    cmd.write_dataset_with_ts(&mut out, &entries::IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .map_err(|e| format!("cannot encode a DIMSE command: {e}"))?;
    Ok(out)
}

fn us(v: u16) -> PrimitiveValue {
    PrimitiveValue::from(v)
}

/// A command's unsigned 16-bit field.
pub fn u16_of(cmd: &InMemDicomObject, tag: dicom_core::Tag) -> Option<u16> {
    cmd.get(tag)?.to_int::<u16>().ok()
}

/// A command's string field (trimmed).
pub fn str_of(cmd: &InMemDicomObject, tag: dicom_core::Tag) -> Option<String> {
    let s = cmd.get(tag)?.to_str().ok()?;
    Some(
        s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
            .to_string(),
    )
}

/// Whether a data set follows the command.
pub fn has_data_set(cmd: &InMemDicomObject) -> bool {
    u16_of(cmd, tags::COMMAND_DATA_SET_TYPE).is_some_and(|t| t != NO_DATA_SET)
}

/// C-ECHO-RSP to message `id`.
pub fn echo_rsp(id: u16) -> InMemDicomObject {
    InMemDicomObject::command_from_element_iter([
        DataElement::new(
            tags::AFFECTED_SOP_CLASS_UID,
            VR::UI,
            dicom_dictionary_std::uids::VERIFICATION,
        ),
        DataElement::new(tags::COMMAND_FIELD, VR::US, us(field::C_ECHO_RSP)),
        DataElement::new(tags::MESSAGE_ID_BEING_RESPONDED_TO, VR::US, us(id)),
        DataElement::new(tags::COMMAND_DATA_SET_TYPE, VR::US, us(NO_DATA_SET)),
        DataElement::new(tags::STATUS, VR::US, us(SUCCESS)),
    ])
}

/// C-STORE-RSP to message `id`.
pub fn store_rsp(
    id: u16,
    class: &str,
    instance: &str,
    status: u16,
    comment: Option<&str>,
) -> InMemDicomObject {
    let mut v = vec![
        DataElement::new(
            tags::AFFECTED_SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from(class),
        ),
        DataElement::new(tags::COMMAND_FIELD, VR::US, us(field::C_STORE_RSP)),
        DataElement::new(tags::MESSAGE_ID_BEING_RESPONDED_TO, VR::US, us(id)),
        DataElement::new(tags::COMMAND_DATA_SET_TYPE, VR::US, us(NO_DATA_SET)),
        DataElement::new(tags::STATUS, VR::US, us(status)),
        DataElement::new(
            tags::AFFECTED_SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(instance),
        ),
    ];
    if let Some(c) = comment {
        // Error Comment: at most 64 characters.
        let c: String = c.chars().take(64).collect();
        v.push(DataElement::new(
            tags::ERROR_COMMENT,
            VR::LO,
            PrimitiveValue::from(c),
        ));
    }
    InMemDicomObject::command_from_element_iter(v)
}

/// C-STORE-RQ number `id`.
pub fn store_rq(id: u16, class: &str, instance: &str) -> InMemDicomObject {
    InMemDicomObject::command_from_element_iter([
        DataElement::new(
            tags::AFFECTED_SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from(class),
        ),
        DataElement::new(tags::COMMAND_FIELD, VR::US, us(field::C_STORE_RQ)),
        DataElement::new(tags::MESSAGE_ID, VR::US, us(id)),
        DataElement::new(tags::PRIORITY, VR::US, us(0)),
        DataElement::new(tags::COMMAND_DATA_SET_TYPE, VR::US, us(0x0000)),
        DataElement::new(
            tags::AFFECTED_SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(instance),
        ),
    ])
}
