//! The SOP classes and transfer syntaxes vmunet reads, in one place: the series reader, the
//! node's association negotiation and its C-STORE checks all use these lists.

use dicom_dictionary_std::uids;

/// Image storage SOP classes read as volumes or photos: CT, MR (classic and enhanced), PET,
/// secondary capture (single- and multi-frame) and visible-light photography (dermoscopy).
pub const IMAGE_STORAGE: &[&str] = &[
    uids::CT_IMAGE_STORAGE,
    uids::ENHANCED_CT_IMAGE_STORAGE,
    uids::MR_IMAGE_STORAGE,
    uids::ENHANCED_MR_IMAGE_STORAGE,
    uids::POSITRON_EMISSION_TOMOGRAPHY_IMAGE_STORAGE,
    uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
    uids::MULTI_FRAME_GRAYSCALE_BYTE_SECONDARY_CAPTURE_IMAGE_STORAGE,
    uids::MULTI_FRAME_GRAYSCALE_WORD_SECONDARY_CAPTURE_IMAGE_STORAGE,
    uids::MULTI_FRAME_TRUE_COLOR_SECONDARY_CAPTURE_IMAGE_STORAGE,
    uids::VL_PHOTOGRAPHIC_IMAGE_STORAGE,
    uids::VL_MICROSCOPIC_IMAGE_STORAGE,
];

/// Transfer syntaxes whose pixel data vmunet decodes: implicit and explicit VR little
/// endian (native pixels) and 8-bit JPEG (baseline and extended, through libjpeg-turbo).
pub const TRANSFER_SYNTAXES: &[&str] = &[
    uids::EXPLICIT_VR_LITTLE_ENDIAN,
    uids::IMPLICIT_VR_LITTLE_ENDIAN,
    uids::JPEG_BASELINE8_BIT,
    uids::JPEG_EXTENDED12_BIT,
];

/// Whether `uid` is one of [`IMAGE_STORAGE`].
pub fn is_image_storage(uid: &str) -> bool {
    IMAGE_STORAGE.contains(&uid)
}

/// A transfer syntax's name, for messages.
pub fn transfer_syntax_name(uid: &str) -> String {
    let name = match uid {
        uids::IMPLICIT_VR_LITTLE_ENDIAN => "Implicit VR Little Endian",
        uids::EXPLICIT_VR_LITTLE_ENDIAN => "Explicit VR Little Endian",
        "1.2.840.10008.1.2.2" => "Explicit VR Big Endian (retired)",
        uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN => "Deflated Explicit VR Little Endian",
        uids::JPEG_BASELINE8_BIT => "JPEG Baseline (8-bit)",
        uids::JPEG_EXTENDED12_BIT => "JPEG Extended",
        uids::JPEG_LOSSLESS => "JPEG Lossless",
        uids::JPEG_LOSSLESS_SV1 => "JPEG Lossless SV1",
        uids::JPEGLS_LOSSLESS => "JPEG-LS Lossless",
        uids::JPEG2000_LOSSLESS => "JPEG 2000 Lossless",
        uids::JPEG2000 => "JPEG 2000",
        uids::RLE_LOSSLESS => "RLE Lossless",
        _ => return uid.to_string(),
    };
    format!("{name} ({uid})")
}

/// The supported transfer syntaxes, in words.
pub fn supported_transfer_syntaxes() -> String {
    TRANSFER_SYNTAXES
        .iter()
        .map(|u| transfer_syntax_name(u))
        .collect::<Vec<_>>()
        .join(", ")
}
