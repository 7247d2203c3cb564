//! Reading the inputs: files, directories (recursively) and stdin.

use std::io::Read;
use std::path::{Path, PathBuf};

/// One input file's text under the name reports print for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The path as the user spelled it (joined with the file name for directory walks), or `-`.
    pub name: String,
    pub text: SourceText,
}

/// The file's content, or why it is not text: invalid UTF-8 is an input problem reported
/// like a syntax error (with the position of the first bad byte), not an I/O failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceText {
    Text(String),
    NotUtf8 { line: u32, column: u32 },
}

/// Reading an input failed; this is a usage error (exit 2), reported before any linting.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(
        "{path}: no such file or directory (pass YAML/JSON files, directories of them, or - for stdin)"
    )]
    NotFound { path: String },
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: directory contains no .yaml, .yml or .json files")]
    EmptyDirectory { path: String },
    #[error("no input: pass one or more files, directories, or - for stdin")]
    NoPaths,
    #[error("{path}: {problem}")]
    Kustomization { path: String, problem: String },
}

/// Extensions a directory walk picks up. Files named explicitly are read whatever their name.
const MANIFEST_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// File names kustomize reads in a directory.
const KUSTOMIZATION_FILES: &[&str] = &["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Reads every input in order. Directories are walked recursively in sorted order, skipping
/// hidden entries, so that output is stable; `-` reads `stdin` (once, however often it is named).
///
/// A directory with a kustomization file contributes exactly the files and directories its
/// `resources:` lists (recursively), as `kubectl apply -k` would: next to a kustomization sit
/// config files for generators (a Prometheus config, a dashboard JSON) that are not manifests.
/// Kustomize's transformations (patches, generators, namespace, labels) are not applied; to
/// lint an overlay's result, pipe `kubectl kustomize DIR` into `agentfleet lint -`.
pub fn load(paths: &[String], stdin: &mut dyn Read) -> Result<Vec<Source>, InputError> {
    if paths.is_empty() {
        return Err(InputError::NoPaths);
    }
    let mut sources = Vec::new();
    let mut stdin_read = false;
    for path in paths {
        if path == "-" {
            if !stdin_read {
                let mut bytes = Vec::new();
                stdin
                    .read_to_end(&mut bytes)
                    .map_err(|source| InputError::Io {
                        path: "-".into(),
                        source,
                    })?;
                sources.push(Source {
                    name: "-".into(),
                    text: decode(bytes),
                });
                stdin_read = true;
            }
            continue;
        }
        let fs_path = Path::new(path);
        let meta = std::fs::metadata(fs_path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => InputError::NotFound { path: path.clone() },
            _ => InputError::Io {
                path: path.clone(),
                source,
            },
        })?;
        let kustomization_file = fs_path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| KUSTOMIZATION_FILES.contains(&n));
        if meta.is_dir() || kustomization_file {
            let dir = if kustomization_file {
                fs_path.parent().unwrap_or(Path::new("."))
            } else {
                fs_path
            };
            let mut files = Vec::new();
            collect_dir(dir, &mut files)?;
            if files.is_empty() {
                return Err(InputError::EmptyDirectory { path: path.clone() });
            }
            for file in files {
                sources.push(read_file(&file)?);
            }
        } else {
            sources.push(read_file(fs_path)?);
        }
    }
    Ok(sources)
}

fn read_file(path: &Path) -> Result<Source, InputError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| InputError::Io {
        path: name.clone(),
        source,
    })?;
    Ok(Source {
        name,
        text: decode(bytes),
    })
}

fn collect_dir(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), InputError> {
    let io = |source| InputError::Io {
        path: dir.display().to_string(),
        source,
    };
    if let Some(kustomization) = KUSTOMIZATION_FILES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
    {
        return kustomize_resources(&kustomization, out);
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if entry.file_type().map_err(io)?.is_dir() {
            collect_dir(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| MANIFEST_EXTENSIONS.contains(&e))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// The files a kustomization's `resources:` names, directories expanded recursively. Remote
/// resources (URLs) are skipped: the linter reads local files only.
fn kustomize_resources(kustomization: &Path, out: &mut Vec<PathBuf>) -> Result<(), InputError> {
    let name = kustomization.display().to_string();
    let problem = |problem: String| InputError::Kustomization {
        path: name.clone(),
        problem,
    };
    let text = std::fs::read_to_string(kustomization).map_err(|source| InputError::Io {
        path: name.clone(),
        source,
    })?;
    let docs = crate::yaml::parse_stream(&text).map_err(|e| {
        problem(format!(
            "{}{}",
            e.pos.map(|p| format!("{p}: ")).unwrap_or_default(),
            e.message
        ))
    })?;
    let dir = kustomization.parent().unwrap_or(Path::new("."));
    let Some(resources) = docs.first().and_then(|d| d.get("resources")) else {
        return Ok(());
    };
    let crate::yaml::Value::Seq(items) = &resources.value else {
        return Err(problem(format!(
            "{}: `resources` must be a list of paths",
            resources.pos
        )));
    };
    for item in items {
        let Some(entry) = item.as_str() else {
            return Err(problem(format!(
                "{}: `resources` entries must be paths",
                item.pos
            )));
        };
        if entry.contains("://") || entry.starts_with("github.com/") {
            continue;
        }
        let path = dir.join(entry);
        if path.is_dir() {
            collect_dir(&path, out)?;
        } else if path.is_file() {
            out.push(path);
        } else {
            return Err(problem(format!(
                "{}: resource `{entry}` does not exist",
                item.pos
            )));
        }
    }
    Ok(())
}

/// Decodes UTF-8 (dropping a byte-order mark); on failure, reports where the first bad byte is.
pub fn decode(bytes: Vec<u8>) -> SourceText {
    match String::from_utf8(bytes) {
        Ok(mut text) => {
            if text.starts_with('\u{feff}') {
                text.drain(..'\u{feff}'.len_utf8());
            }
            SourceText::Text(text)
        }
        Err(err) => {
            let valid = &err.as_bytes()[..err.utf8_error().valid_up_to()];
            let prefix = std::str::from_utf8(valid).unwrap_or_default();
            let line = prefix.matches('\n').count() + 1;
            let column = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            SourceText::NotUtf8 {
                line: u32::try_from(line).unwrap_or(u32::MAX),
                column: u32::try_from(column).unwrap_or(u32::MAX),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_reports_the_first_bad_byte() {
        assert_eq!(
            decode(b"a: 1\nb: \xff\n".to_vec()),
            SourceText::NotUtf8 { line: 2, column: 4 }
        );
        assert_eq!(
            decode("\u{feff}a: 1".as_bytes().to_vec()),
            SourceText::Text("a: 1".into())
        );
    }

    #[test]
    fn walks_directories_in_order_and_reads_stdin_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("b.yaml"), "b: 1").unwrap();
        std::fs::write(dir.path().join("a.yml"), "a: 1").unwrap();
        std::fs::write(dir.path().join("sub/c.json"), "{}").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
        std::fs::write(dir.path().join(".hidden.yaml"), "h: 1").unwrap();
        let root = dir.path().display().to_string();
        let mut stdin = &b"s: 1"[..];
        let sources = load(&[root.clone(), "-".into(), "-".into()], &mut stdin).unwrap();
        let names: Vec<_> = sources
            .iter()
            .map(|s| s.name.strip_prefix(&root).unwrap_or(&s.name).to_owned())
            .collect();
        assert_eq!(names, ["/a.yml", "/b.yaml", "/sub/c.json", "-"]);
    }

    #[test]
    fn kustomization_directories_contribute_their_resources_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("app/config")).unwrap();
        std::fs::write(
            root.join("kustomization.yaml"),
            "resources:\n  - app\n  - extra.yaml\n  - https://example.com/remote.yaml\n",
        )
        .unwrap();
        std::fs::write(root.join("extra.yaml"), "a: 1").unwrap();
        std::fs::write(root.join("ignored.yaml"), "a: 1").unwrap();
        std::fs::write(
            root.join("app/kustomization.yaml"),
            "resources: [deploy.yaml]\nconfigMapGenerator: [{name: c, files: [config/app.json]}]\n",
        )
        .unwrap();
        std::fs::write(root.join("app/deploy.yaml"), "a: 1").unwrap();
        std::fs::write(root.join("app/config/app.json"), "{}").unwrap();
        let base = root.display().to_string();
        let names: Vec<_> = load(std::slice::from_ref(&base), &mut &b""[..])
            .unwrap()
            .into_iter()
            .map(|s| s.name.replace(&base, ""))
            .collect();
        assert_eq!(names, ["/app/deploy.yaml", "/extra.yaml"]);
        std::fs::write(
            root.join("kustomization.yaml"),
            "resources: [missing.yaml]\n",
        )
        .unwrap();
        let err = load(&[base], &mut &b""[..]).unwrap_err();
        assert!(
            err.to_string()
                .contains("resource `missing.yaml` does not exist"),
            "{err}"
        );
    }

    #[test]
    fn missing_paths_are_usage_errors_that_name_the_path() {
        let err = load(&["/no/such/file.yaml".into()], &mut &b""[..]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/no/such/file.yaml: no such file"),
            "{err}"
        );
        assert!(matches!(load(&[], &mut &b""[..]), Err(InputError::NoPaths)));
    }
}
