//! Finding and vetting `libonnxruntime.so` before `ort` initialises: where the library is looked
//! for, which version it is, and one message when it is too old (or not ONNX Runtime at all).
//!
//! Search order: the caller's path ([`crate::OrtOptions::library`]), then `ORT_DYLIB_PATH`, then
//! `libonnxruntime.so*` beside the executable, then in `../lib` relative to it (the highest
//! version when several files match), then the system loader (`LD_LIBRARY_PATH`, the ldconfig
//! cache) asked for `libonnxruntime.so` and `libonnxruntime.so.1`.

use std::ffi::{CStr, OsString};
use std::path::{Path, PathBuf};

/// The oldest ONNX Runtime this build loads, as (major, minor).
///
/// ONNX Runtime 1.N provides C API level N, and `ort` asks for the level it was built with: 20 by
/// default (ONNX Runtime 1.20 and newer, JetPack 6.1/6.2's 1.23 included), 31 with the
/// `ort-api-31` feature.
pub const MIN_ORT_VERSION: (u32, u32) = (1, ort::MINOR_VERSION);

/// Names the system loader is asked for when no file is found: the development link, then the
/// SONAME that runtime-only installs provide.
pub const SYSTEM_NAMES: [&str; 2] = ["libonnxruntime.so", "libonnxruntime.so.1"];

/// What to do about a library older than [`MIN_ORT_VERSION`].
#[cfg(not(feature = "ort-api-31"))]
const TOO_OLD_HINT: &str =
    "JetPack 6.1/6.2 ship 1.23; set ORT_DYLIB_PATH to a newer libonnxruntime.so";
#[cfg(feature = "ort-api-31")]
const TOO_OLD_HINT: &str = "this build uses the C API level of the `ort-api-31` feature; build \
     without it to load ONNX Runtime 1.20 and newer, or set ORT_DYLIB_PATH to a newer \
     libonnxruntime.so";

/// How to point vmunet at a library.
const WHERE_HINT: &str = "set ORT_DYLIB_PATH to libonnxruntime.so, or put it beside the vmunet \
     executable or in ../lib (`make venv` installs one from the onnxruntime wheel under build/venv/; \
     on a Jetson use JetPack's build)";

/// Where a library was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LibrarySource {
    /// The path given by the caller ([`crate::OrtOptions::library`]).
    Option,
    /// The `ORT_DYLIB_PATH` environment variable.
    Env,
    /// The executable's folder.
    BesideExecutable,
    /// `../lib` relative to the executable's folder.
    LibBesideExecutable,
    /// The system loader (`LD_LIBRARY_PATH`, the ldconfig cache).
    SystemLoader,
}

impl LibrarySource {
    /// How the source reads in messages.
    pub fn describe(self) -> &'static str {
        match self {
            LibrarySource::Option => "given by the caller",
            LibrarySource::Env => "ORT_DYLIB_PATH",
            LibrarySource::BesideExecutable => "beside the executable",
            LibrarySource::LibBesideExecutable => "../lib of the executable",
            LibrarySource::SystemLoader => "found by the system loader",
        }
    }
}

/// An ONNX Runtime library that was found and is new enough.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrtLibrary {
    /// The path handed to `ort`: absolute, or a bare file name when the system loader found it.
    pub path: PathBuf,
    /// The version the library reports (`OrtGetApiBase()->GetVersionString()`), e.g. `1.23.2`.
    pub version: String,
    /// How it was found.
    pub source: LibrarySource,
}

/// Why no usable ONNX Runtime library was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrtLibError {
    /// Nothing found anywhere; lists every place that was looked at.
    #[error(
        "no ONNX Runtime library found (ORT_DYLIB_PATH is unset); looked for:\n{}\n{WHERE_HINT}",
        looked.iter().map(|l| format!("  - {l}")).collect::<Vec<_>>().join("\n")
    )]
    NotFound {
        /// One line per place.
        looked: Vec<String>,
    },
    /// An explicitly named file does not exist.
    #[error("ONNX Runtime library {} ({}) does not exist; {WHERE_HINT}", path.display(), origin.describe())]
    Missing {
        /// The file.
        path: PathBuf,
        /// Who named it.
        origin: LibrarySource,
    },
    /// The file cannot be loaded as a shared library.
    #[error("{} ({}) cannot be loaded as a shared library: {reason}", path.display(), origin.describe())]
    NotLoadable {
        /// The file.
        path: PathBuf,
        /// Who named it.
        origin: LibrarySource,
        /// The loader's words.
        reason: String,
    },
    /// A shared library that is not ONNX Runtime.
    #[error("{} ({}) is not ONNX Runtime: it has no OrtGetApiBase", path.display(), origin.describe())]
    NotOnnxRuntime {
        /// The file.
        path: PathBuf,
        /// Who named it.
        origin: LibrarySource,
    },
    /// The library reports a version that does not read as `major.minor[.patch]`.
    #[error("{} ({}) reports a malformed ONNX Runtime version {version:?}", path.display(), origin.describe())]
    BadVersion {
        /// The file.
        path: PathBuf,
        /// Who named it.
        origin: LibrarySource,
        /// What it reported.
        version: String,
    },
    /// ONNX Runtime older than [`MIN_ORT_VERSION`].
    #[error(
        "{} ({}) is ONNX Runtime {version}; this vmunet build needs {}.{} or newer ({TOO_OLD_HINT})",
        path.display(), origin.describe(), MIN_ORT_VERSION.0, MIN_ORT_VERSION.1
    )]
    TooOld {
        /// The file.
        path: PathBuf,
        /// Who named it.
        origin: LibrarySource,
        /// What it reported.
        version: String,
    },
}

impl OrtLibError {
    /// Attributes a probe error to `source` (probes do not know how the file was found).
    fn attributed_to(mut self, from: LibrarySource) -> Self {
        match &mut self {
            OrtLibError::NotFound { .. } => {}
            OrtLibError::Missing { origin, .. }
            | OrtLibError::NotLoadable { origin, .. }
            | OrtLibError::NotOnnxRuntime { origin, .. }
            | OrtLibError::BadVersion { origin, .. }
            | OrtLibError::TooOld { origin, .. } => *origin = from,
        }
        self
    }
}

/// Finds ONNX Runtime the way the module documentation describes, reads its version and checks
/// it against [`MIN_ORT_VERSION`], before `ort` touches it.
pub fn locate(explicit: Option<&Path>) -> Result<OrtLibrary, OrtLibError> {
    let exe = std::env::current_exe().ok();
    find(
        explicit,
        std::env::var_os("ORT_DYLIB_PATH"),
        exe.as_deref(),
        &probe_version,
    )
}

/// The version a library reports: loads it (it stays loaded: `ort` opens the same file next) and
/// calls `OrtGetApiBase()->GetVersionString()`. A bare file name goes to the system loader.
pub fn probe_version(path: &Path) -> Result<String, OrtLibError> {
    let not_loadable = |reason: String| OrtLibError::NotLoadable {
        path: path.to_path_buf(),
        origin: LibrarySource::Option,
        reason,
    };
    // SAFETY: loading runs the library's initialisers; the file was named as ONNX Runtime by the
    // user or by its file name, which is what `ort` would load next anyway.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| not_loadable(e.to_string()))?;
    let version = {
        // SAFETY: `OrtGetApiBase` has this signature in every ONNX Runtime release (C API, no
        // arguments, returns a pointer to a static table).
        let get_base: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> =
            unsafe { lib.get(b"OrtGetApiBase\0") }.map_err(|_| OrtLibError::NotOnnxRuntime {
                path: path.to_path_buf(),
                origin: LibrarySource::Option,
            })?;
        // SAFETY: see above; the table and the version string are static in the library, which
        // is never unloaded (forgotten below).
        let base = unsafe { get_base() };
        let raw = if base.is_null() {
            std::ptr::null()
        } else {
            unsafe { ((*base).GetVersionString)() }
        };
        if raw.is_null() {
            return Err(OrtLibError::BadVersion {
                path: path.to_path_buf(),
                origin: LibrarySource::Option,
                version: String::new(),
            });
        }
        unsafe { CStr::from_ptr(raw) }
            .to_string_lossy()
            .into_owned()
    };
    // Unloading ONNX Runtime in a running process is not safe, and `ort` loads it again next.
    std::mem::forget(lib);
    Ok(version)
}

/// `major.minor` of a version string such as `1.23.2` (a suffix after the patch is ignored).
pub fn parse_version(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Checks a reported version against [`MIN_ORT_VERSION`].
pub fn check_version(path: &Path, source: LibrarySource, version: &str) -> Result<(), OrtLibError> {
    match parse_version(version) {
        None => Err(OrtLibError::BadVersion {
            path: path.to_path_buf(),
            origin: source,
            version: version.to_string(),
        }),
        Some(v) if v < MIN_ORT_VERSION => Err(OrtLibError::TooOld {
            path: path.to_path_buf(),
            origin: source,
            version: version.to_string(),
        }),
        Some(_) => Ok(()),
    }
}

/// The numeric version in a file name `libonnxruntime.so[.X[.Y[.Z]]]` (empty for the plain
/// name); None for any other name (`libonnxruntime_providers_shared.so`, backups, ...).
fn file_version(name: &str) -> Option<Vec<u64>> {
    let rest = name.strip_prefix("libonnxruntime.so")?;
    if rest.is_empty() {
        return Some(Vec::new());
    }
    rest.strip_prefix('.')?
        .split('.')
        .map(|p| p.parse().ok())
        .collect()
}

/// `libonnxruntime.so*` files in `dir`, highest version first (the plain name, usually a link to
/// one of the others, last).
pub fn candidates_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(Vec<u64>, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let v = file_version(e.file_name().to_str()?)?;
            let path = e.path();
            path.is_file().then_some((v, path))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    found.into_iter().map(|(_, p)| p).collect()
}

/// The folders searched relative to the executable `exe`, in order.
pub fn search_dirs(exe: &Path) -> Vec<(PathBuf, LibrarySource)> {
    let Some(dir) = exe.parent() else {
        return Vec::new();
    };
    let mut dirs = vec![(dir.to_path_buf(), LibrarySource::BesideExecutable)];
    if let Some(prefix) = dir.parent() {
        dirs.push((prefix.join("lib"), LibrarySource::LibBesideExecutable));
    }
    dirs
}

/// [`locate`] with its inputs given: the caller's path, `ORT_DYLIB_PATH`, the executable and the
/// version probe.
fn find(
    explicit: Option<&Path>,
    env: Option<OsString>,
    exe: Option<&Path>,
    probe: &dyn Fn(&Path) -> Result<String, OrtLibError>,
) -> Result<OrtLibrary, OrtLibError> {
    let vet = |path: PathBuf, source: LibrarySource| -> Result<OrtLibrary, OrtLibError> {
        let version = probe(&path).map_err(|e| e.attributed_to(source))?;
        check_version(&path, source, &version)?;
        Ok(OrtLibrary {
            path,
            version,
            source,
        })
    };
    let named = |path: &Path, source: LibrarySource| -> Result<OrtLibrary, OrtLibError> {
        // Relative paths are relative to the working folder (`ort` alone would try the
        // executable's folder first).
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        if !path.is_file() {
            return Err(OrtLibError::Missing {
                path,
                origin: source,
            });
        }
        vet(path, source)
    };
    if let Some(path) = explicit {
        return named(path, LibrarySource::Option);
    }
    if let Some(path) = env.filter(|p| !p.is_empty()) {
        return named(Path::new(&path), LibrarySource::Env);
    }
    let mut looked = Vec::new();
    match exe {
        Some(exe) => {
            for (dir, source) in search_dirs(exe) {
                if let Some(best) = candidates_in(&dir).into_iter().next() {
                    return vet(best, source);
                }
                looked.push(format!(
                    "libonnxruntime.so* in {} ({}): none",
                    dir.display(),
                    source.describe()
                ));
            }
        }
        None => looked.push("the executable's folder: unknown".to_string()),
    }
    for name in SYSTEM_NAMES {
        match probe(Path::new(name)) {
            Ok(version) => {
                let path = PathBuf::from(name);
                let source = LibrarySource::SystemLoader;
                check_version(&path, source, &version)?;
                return Ok(OrtLibrary {
                    path,
                    version,
                    source,
                });
            }
            Err(OrtLibError::NotLoadable { reason, .. }) => looked.push(format!(
                "{name} through the system loader (LD_LIBRARY_PATH, ldconfig): {reason}"
            )),
            Err(e) => return Err(e.attributed_to(LibrarySource::SystemLoader)),
        }
    }
    Err(OrtLibError::NotFound { looked })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A probe that knows versions by file name and lets the system loader find nothing.
    fn fake(versions: &[(&str, &str)]) -> impl Fn(&Path) -> Result<String, OrtLibError> {
        let map: HashMap<String, String> = versions
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        move |p: &Path| {
            let name = p.file_name().unwrap().to_str().unwrap();
            if !p.is_absolute() {
                return Err(OrtLibError::NotLoadable {
                    path: p.to_path_buf(),
                    origin: LibrarySource::Option,
                    reason: format!("{name}: cannot open shared object file"),
                });
            }
            map.get(name).cloned().ok_or(OrtLibError::NotOnnxRuntime {
                path: p.to_path_buf(),
                origin: LibrarySource::Option,
            })
        }
    }

    /// `prefix/bin/vmunet` and `prefix/lib` in a temporary folder.
    fn layout() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        let lib = tmp.path().join("lib");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&lib).unwrap();
        let exe = bin.join("vmunet");
        std::fs::write(&exe, b"").unwrap();
        (tmp, bin, lib, exe)
    }

    fn touch(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, b"not a library").unwrap();
        p
    }

    #[test]
    fn floor_follows_the_api_feature() {
        let expected = if cfg!(feature = "ort-api-31") { 31 } else { 20 };
        assert_eq!(MIN_ORT_VERSION, (1, expected));
    }

    #[test]
    fn file_names_and_their_versions() {
        assert_eq!(file_version("libonnxruntime.so"), Some(vec![]));
        assert_eq!(file_version("libonnxruntime.so.1"), Some(vec![1]));
        assert_eq!(
            file_version("libonnxruntime.so.1.23.2"),
            Some(vec![1, 23, 2])
        );
        assert_eq!(file_version("libonnxruntime_providers_shared.so"), None);
        assert_eq!(file_version("libonnxruntime.so.1.23.2.bak"), None);
        assert_eq!(file_version("libonnxruntime.sox"), None);
    }

    #[test]
    fn highest_version_first() {
        let (_tmp, bin, _lib, _exe) = layout();
        for n in [
            "libonnxruntime.so",
            "libonnxruntime.so.1.9.0",
            "libonnxruntime.so.1.23.2",
            "libonnxruntime.so.1.20.1",
            "libonnxruntime_providers_shared.so",
        ] {
            touch(&bin, n);
        }
        std::fs::create_dir(bin.join("libonnxruntime.so.9.9.9")).unwrap();
        let names: Vec<_> = candidates_in(&bin)
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "libonnxruntime.so.1.23.2",
                "libonnxruntime.so.1.20.1",
                "libonnxruntime.so.1.9.0",
                "libonnxruntime.so"
            ]
        );
    }

    #[test]
    fn beside_the_executable_before_lib() {
        let (_tmp, bin, lib, exe) = layout();
        touch(&lib, "libonnxruntime.so.1.32.0");
        let beside = touch(&bin, "libonnxruntime.so.1.23.2");
        let probe = fake(&[
            ("libonnxruntime.so.1.23.2", "1.23.2"),
            ("libonnxruntime.so.1.32.0", "1.32.0"),
        ]);
        let found = find(None, None, Some(&exe), &probe).unwrap();
        assert_eq!(found.path, beside);
        assert_eq!(found.version, "1.23.2");
        assert_eq!(found.source, LibrarySource::BesideExecutable);
    }

    #[test]
    fn then_lib_relative_to_the_executable() {
        let (_tmp, _bin, lib, exe) = layout();
        touch(&lib, "libonnxruntime.so.1.20.1");
        let newest = touch(&lib, "libonnxruntime.so.1.32.0");
        let probe = fake(&[
            ("libonnxruntime.so.1.20.1", "1.20.1"),
            ("libonnxruntime.so.1.32.0", "1.32.0"),
        ]);
        let found = find(None, None, Some(&exe), &probe).unwrap();
        assert_eq!(found.path, newest);
        assert_eq!(found.source, LibrarySource::LibBesideExecutable);
    }

    #[test]
    fn explicit_path_then_env_win_over_discovery() {
        let (tmp, bin, _lib, exe) = layout();
        touch(&bin, "libonnxruntime.so.1.23.2");
        let other = tmp.path().join("other");
        std::fs::create_dir(&other).unwrap();
        let env_lib = touch(&other, "libonnxruntime.so.1.32.0");
        let opt_lib = touch(&other, "libonnxruntime.so.1.20.1");
        let probe = fake(&[
            ("libonnxruntime.so.1.20.1", "1.20.1"),
            ("libonnxruntime.so.1.23.2", "1.23.2"),
            ("libonnxruntime.so.1.32.0", "1.32.0"),
        ]);
        let env = Some(env_lib.clone().into_os_string());
        let found = find(None, env.clone(), Some(&exe), &probe).unwrap();
        assert_eq!((found.path, found.source), (env_lib, LibrarySource::Env));
        let found = find(Some(&opt_lib), env, Some(&exe), &probe).unwrap();
        assert_eq!((found.path, found.source), (opt_lib, LibrarySource::Option));
        // An empty ORT_DYLIB_PATH counts as unset.
        let found = find(None, Some(OsString::new()), Some(&exe), &probe).unwrap();
        assert_eq!(found.source, LibrarySource::BesideExecutable);
    }

    #[test]
    fn a_named_file_that_does_not_exist() {
        let (tmp, _bin, _lib, exe) = layout();
        let gone = tmp.path().join("libonnxruntime.so.1.23.2");
        let err = find(
            None,
            Some(gone.clone().into_os_string()),
            Some(&exe),
            &fake(&[]),
        )
        .unwrap_err();
        assert_eq!(
            err,
            OrtLibError::Missing {
                path: gone,
                origin: LibrarySource::Env
            }
        );
        assert!(err.to_string().contains("ORT_DYLIB_PATH"), "{err}");
    }

    #[test]
    fn nothing_found_lists_every_place() {
        let (_tmp, bin, lib, exe) = layout();
        touch(&bin, "libonnxruntime_providers_shared.so");
        let err = find(None, None, Some(&exe), &fake(&[])).unwrap_err();
        let OrtLibError::NotFound { looked } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(looked.len(), 4, "{looked:?}");
        assert!(looked[0].contains(&bin.display().to_string()));
        assert!(looked[1].contains(&lib.display().to_string()));
        assert!(looked[2].starts_with("libonnxruntime.so through the system loader"));
        assert!(looked[3].starts_with("libonnxruntime.so.1 through the system loader"));
        let msg = err.to_string();
        assert!(msg.contains("ORT_DYLIB_PATH is unset"), "{msg}");
        assert!(msg.contains("cannot open shared object file"), "{msg}");
    }

    #[test]
    fn too_old_is_one_clear_message() {
        let (_tmp, bin, _lib, exe) = layout();
        let old = touch(&bin, "libonnxruntime.so.1.16.3");
        let err = find(
            None,
            None,
            Some(&exe),
            &fake(&[("libonnxruntime.so.1.16.3", "1.16.3")]),
        )
        .unwrap_err();
        let msg = err.to_string();
        let floor = format!("needs 1.{} or newer", MIN_ORT_VERSION.1);
        assert!(msg.starts_with(&old.display().to_string()), "{msg}");
        assert!(msg.contains("is ONNX Runtime 1.16.3"), "{msg}");
        assert!(msg.contains(&floor), "{msg}");
        // Exactly one floor in the message.
        assert_eq!(msg.matches("or newer").count(), 1, "{msg}");
    }

    #[test]
    fn versions_against_the_floor() {
        let p = Path::new("x");
        let s = LibrarySource::Option;
        let floor = format!("1.{}.0", MIN_ORT_VERSION.1);
        let below = format!("1.{}.9", MIN_ORT_VERSION.1 - 1);
        assert!(check_version(p, s, &floor).is_ok());
        assert!(check_version(p, s, "1.99.0").is_ok());
        assert!(check_version(p, s, "2.0.0").is_ok());
        assert!(matches!(
            check_version(p, s, &below),
            Err(OrtLibError::TooOld { .. })
        ));
        assert!(matches!(
            check_version(p, s, "banana"),
            Err(OrtLibError::BadVersion { .. })
        ));
        assert_eq!(parse_version("1.23.2-dev"), Some((1, 23)));
    }

    #[test]
    fn a_file_that_is_not_a_library_is_an_error_not_a_crash() {
        let (_tmp, bin, _lib, exe) = layout();
        let junk = touch(&bin, "libonnxruntime.so.1.23.2");
        let err = find(None, None, Some(&exe), &probe_version).unwrap_err();
        match &err {
            OrtLibError::NotLoadable { path, origin, .. } => {
                assert_eq!(path, &junk);
                assert_eq!(*origin, LibrarySource::BesideExecutable);
            }
            other => panic!("{other:?}"),
        }
        assert!(err
            .to_string()
            .contains("cannot be loaded as a shared library"));
    }

    #[test]
    fn a_library_that_is_not_onnx_runtime() {
        // libm is in every glibc system and has no OrtGetApiBase.
        let err = probe_version(Path::new("libm.so.6")).unwrap_err();
        assert!(matches!(err, OrtLibError::NotOnnxRuntime { .. }), "{err:?}");
    }

    #[test]
    fn the_configured_library_reads_its_version() {
        // `make test` sets ORT_DYLIB_PATH to the wheel's library; without it there is nothing to read.
        let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) else {
            eprintln!("ORT_DYLIB_PATH unset: skipping");
            return;
        };
        let version = probe_version(Path::new(&path)).unwrap();
        let parsed = parse_version(&version).unwrap();
        assert!(parsed >= MIN_ORT_VERSION, "{version}");
    }
}
