//! What each class is, in codes a viewer understands: the segment category and type (SNOMED
//! CT) of every class, keyed by class name. The built-in table covers the Synapse organs and a
//! skin lesion; a JSON file can add or replace entries (`vmunet infer --codes FILE`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ClinicalError;

/// A coded concept (code value, coding scheme designator, code meaning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Code {
    /// Code value.
    pub code: String,
    /// Coding scheme designator (`SCT` for SNOMED CT, `DCM` for DICOM).
    pub scheme: String,
    /// Code meaning.
    pub meaning: String,
}

impl Code {
    fn sct(code: &str, meaning: &str) -> Self {
        Self {
            code: code.into(),
            scheme: "SCT".into(),
            meaning: meaning.into(),
        }
    }
}

/// The codes of one class (its segment's label is the class name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentCodes {
    /// Segmented property category (e.g. Anatomical Structure).
    pub category: Code,
    /// Segmented property type (e.g. Liver).
    #[serde(rename = "type")]
    pub kind: Code,
    /// Anatomic region, where the type alone does not say it (a lesion of the skin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Code>,
}

/// Class name -> codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeTable(pub BTreeMap<String, SegmentCodes>);

/// A class name in the table's key form: lower case, runs of other characters as `_`.
pub fn key(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

impl Default for CodeTable {
    /// The Synapse organs (with the usual spellings of the kidneys) and the skin lesion of
    /// the ISIC models (`foreground`, `lesion`).
    fn default() -> Self {
        let anatomy = Code::sct("123037004", "Anatomical Structure");
        let organ = |code: &str, meaning: &str| SegmentCodes {
            category: anatomy.clone(),
            kind: Code::sct(code, meaning),
            region: None,
        };
        let lesion = SegmentCodes {
            category: Code::sct("49755003", "Morphologically Abnormal Structure"),
            kind: Code::sct("52988006", "Lesion"),
            region: Some(Code::sct("39937001", "Skin")),
        };
        let mut t = BTreeMap::new();
        for (names, codes) in [
            (&["aorta"][..], organ("15825003", "Aorta")),
            (&["gallbladder"][..], organ("28231008", "Gallbladder")),
            (
                &["kidney_l", "left_kidney", "kidney_left"][..],
                organ("18639004", "Left kidney"),
            ),
            (
                &["kidney_r", "right_kidney", "kidney_right"][..],
                organ("9846003", "Right kidney"),
            ),
            (&["liver"][..], organ("10200004", "Liver")),
            (&["pancreas"][..], organ("15776009", "Pancreas")),
            (&["spleen"][..], organ("78961009", "Spleen")),
            (&["stomach"][..], organ("69695003", "Stomach")),
            (&["foreground", "lesion", "skin_lesion"][..], lesion),
        ] {
            for n in names {
                t.insert((*n).to_string(), codes.clone());
            }
        }
        Self(t)
    }
}

impl CodeTable {
    /// The built-in table with the entries of the JSON file `path` added (same name: replaced).
    /// The file maps class names to `{"category": {"code", "scheme", "meaning"}, "type":
    /// {...}, "region": {...}?}`.
    pub fn with_file(path: &Path) -> Result<Self, ClinicalError> {
        let text = std::fs::read_to_string(path).map_err(ClinicalError::io(path))?;
        let extra: BTreeMap<String, SegmentCodes> = serde_json::from_str(&text)
            .map_err(|e| ClinicalError::format(path, format!("not a code table: {e}")))?;
        let mut t = Self::default();
        for (k, v) in extra {
            t.0.insert(key(&k), v);
        }
        Ok(t)
    }

    /// The codes of class `name`; a class the table lacks is an organ-agnostic "Tissue"
    /// segment (so a SEG is still valid), reported as uncoded.
    pub fn lookup(&self, name: &str) -> (SegmentCodes, bool) {
        match self.0.get(&key(name)) {
            Some(c) => (c.clone(), true),
            None => (
                SegmentCodes {
                    category: Code::sct("85756007", "Tissue"),
                    kind: Code::sct("85756007", "Tissue"),
                    region: None,
                },
                false,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_in_any_spelling_and_files_add_entries() {
        let t = CodeTable::default();
        assert_eq!(t.lookup("Kidney (L)").0.kind.code, "18639004");
        assert_eq!(t.lookup("kidney_l").0.kind.code, "18639004");
        assert!(!t.lookup("class_3").1);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("codes.json");
        std::fs::write(
            &p,
            r#"{"Class 3": {"category": {"code": "49755003", "scheme": "SCT", "meaning": "Morphologically Abnormal Structure"}, "type": {"code": "108369006", "scheme": "SCT", "meaning": "Neoplasm"}}}"#,
        )
        .unwrap();
        let t = CodeTable::with_file(&p).unwrap();
        assert_eq!(t.lookup("class_3").0.kind.code, "108369006");
        std::fs::write(&p, "{").unwrap();
        let e = CodeTable::with_file(&p).unwrap_err().to_string();
        assert!(
            e.contains("codes.json") && e.contains("not a code table"),
            "{e}"
        );
    }
}
