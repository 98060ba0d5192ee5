//! Typed reads of a DICOM data set's attributes, with errors that name the file and the
//! attribute.

use std::path::Path;

use dicom_core::header::HasLength;
use dicom_core::Tag;
use dicom_object::InMemDicomObject;

use crate::ClinicalError;

/// A data set and the file it came from.
#[derive(Clone, Copy)]
pub struct Attrs<'a> {
    /// The data set.
    pub obj: &'a InMemDicomObject,
    /// Its file.
    pub path: &'a Path,
}

impl<'a> Attrs<'a> {
    /// Attributes of `obj`, read from `path`.
    pub fn new(obj: &'a InMemDicomObject, path: &'a Path) -> Self {
        Self { obj, path }
    }

    fn missing(&self, name: &str, tag: Tag) -> ClinicalError {
        ClinicalError::format(
            self.path,
            format!("attribute {name} {tag} is missing or empty"),
        )
    }

    fn bad(&self, name: &str, tag: Tag, why: impl std::fmt::Display) -> ClinicalError {
        ClinicalError::format(
            self.path,
            format!("attribute {name} {tag} is malformed: {why}"),
        )
    }

    /// A string attribute (trimmed), `None` when absent or empty.
    pub fn opt_str(&self, tag: Tag) -> Option<String> {
        let e = self.obj.get(tag)?;
        let s = e.to_str().ok()?;
        let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        (!s.is_empty()).then(|| s.to_string())
    }

    /// A required string attribute.
    pub fn str(&self, tag: Tag, name: &str) -> Result<String, ClinicalError> {
        self.opt_str(tag).ok_or_else(|| self.missing(name, tag))
    }

    /// An integer attribute (US, UL, IS, ...), `None` when absent.
    pub fn opt_int(&self, tag: Tag, name: &str) -> Result<Option<i64>, ClinicalError> {
        match self.obj.get(tag) {
            None => Ok(None),
            Some(e) if e.value().is_empty() => Ok(None),
            Some(e) => e
                .to_int::<i64>()
                .map(Some)
                .map_err(|err| self.bad(name, tag, err)),
        }
    }

    /// A required non-negative integer attribute.
    pub fn uint(&self, tag: Tag, name: &str) -> Result<usize, ClinicalError> {
        let v = self
            .opt_int(tag, name)?
            .ok_or_else(|| self.missing(name, tag))?;
        usize::try_from(v).map_err(|_| self.bad(name, tag, format!("{v} is negative")))
    }

    /// A decimal attribute, `None` when absent.
    pub fn opt_f64(&self, tag: Tag, name: &str) -> Result<Option<f64>, ClinicalError> {
        match self.obj.get(tag) {
            None => Ok(None),
            Some(e) if e.value().is_empty() => Ok(None),
            Some(e) => {
                let v = e.to_float64().map_err(|err| self.bad(name, tag, err))?;
                if v.is_finite() {
                    Ok(Some(v))
                } else {
                    Err(self.bad(name, tag, "not a finite number"))
                }
            }
        }
    }

    /// A multi-valued decimal attribute of exactly `n` values, `None` when absent.
    pub fn opt_f64s(
        &self,
        tag: Tag,
        name: &str,
        n: usize,
    ) -> Result<Option<Vec<f64>>, ClinicalError> {
        match self.obj.get(tag) {
            None => Ok(None),
            Some(e) if e.value().is_empty() => Ok(None),
            Some(e) => {
                let v = e
                    .to_multi_float64()
                    .map_err(|err| self.bad(name, tag, err))?;
                if v.len() != n || v.iter().any(|x| !x.is_finite()) {
                    return Err(self.bad(name, tag, format!("expected {n} numbers, found {v:?}")));
                }
                Ok(Some(v))
            }
        }
    }

    /// The first item of a sequence attribute, `None` when absent or empty.
    pub fn item(&self, tag: Tag) -> Option<&'a InMemDicomObject> {
        self.obj.get(tag)?.items()?.first()
    }

    /// The items of a sequence attribute (empty when absent).
    pub fn items(&self, tag: Tag) -> &'a [InMemDicomObject] {
        self.obj.get(tag).and_then(|e| e.items()).unwrap_or(&[])
    }
}
