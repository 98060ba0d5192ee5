//! Finding the images a front end was given: files as named, folders expanded.

use std::path::{Path, PathBuf};

use crate::DataError;

/// File extensions (lower case) treated as images when a folder is expanded.
pub const IMAGE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "bmp", "tif", "tiff", "webp", "gif"];

/// True when `path` has one of [`IMAGE_EXTENSIONS`] (any case).
pub fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Expands `inputs` into image files: a file is taken as named; a folder contributes its
/// image files (by extension, sorted by name, not recursive). A missing path or a folder
/// without images is an error naming it.
pub fn image_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let entries = std::fs::read_dir(p).map_err(|source| DataError::Io {
                path: p.clone(),
                source,
            })?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && is_image_file(f))
                .collect();
            if found.is_empty() {
                return Err(DataError::Format {
                    path: p.clone(),
                    reason: format!(
                        "the folder holds no images ({})",
                        IMAGE_EXTENSIONS.join(", ")
                    ),
                });
            }
            found.sort();
            out.extend(found);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(DataError::Format {
                path: p.clone(),
                reason: "no such file or folder".into(),
            });
        }
    }
    Ok(out)
}

/// The name outputs derived from `path` are written under (`NAME_mask.png`): the file stem.
pub fn output_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into())
}

/// Fails when two inputs share an output stem (they would overwrite each other's outputs).
pub fn check_unique_stems(paths: &[PathBuf]) -> Result<(), DataError> {
    let mut seen: std::collections::HashMap<String, &PathBuf> = Default::default();
    for p in paths {
        let stem = output_stem(p);
        if let Some(first) = seen.insert(stem.clone(), p) {
            return Err(DataError::Format {
                path: p.clone(),
                reason: format!(
                    "{} would also write {stem}_mask.png: rename one or run them separately",
                    first.display()
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_expand_sorted_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["b.PNG", "a.jpg", "notes.txt"] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        let files = image_files(&[dir.path().to_path_buf()]).unwrap();
        let names: Vec<_> = files.iter().map(|f| output_stem(f)).collect();
        assert_eq!(names, ["a", "b"]);
        let empty = tempfile::tempdir().unwrap();
        let e = image_files(&[empty.path().to_path_buf()]).unwrap_err();
        assert!(e.to_string().contains("no images"), "{e}");
        let e = image_files(&[dir.path().join("missing.png")]).unwrap_err();
        assert!(e.to_string().contains("no such file"), "{e}");
    }

    #[test]
    fn duplicate_stems_are_refused() {
        let a = PathBuf::from("x/img.png");
        let b = PathBuf::from("y/img.jpg");
        assert!(check_unique_stems(std::slice::from_ref(&a)).is_ok());
        let e = check_unique_stems(&[a, b]).unwrap_err();
        assert!(e.to_string().contains("img_mask.png"), "{e}");
    }
}
