//! Pinned downloads (kind binary, KEDA release YAML) with sha256 checks and an offline story.
//!
//! Every artifact has a cache path under `target/agentfleet/`. A file already there is used
//! as is when its checksum is pinned and matches, so preloading the cache is how offline
//! machines run: the error of a failed download names the URL and the exact path to put the
//! file at.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// How the content of an artifact is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    /// The sha256 (hex) is compiled in.
    Pinned(String),
    /// The project publishes `<hex>  <file>` next to the artifact (kind's `.sha256sum`):
    /// fetched from that URL at download time. A cached file is trusted (it was verified when
    /// downloaded, or placed there by the operator).
    Published { url: String },
    /// No checksum is known: downloading is refused; only a preloaded file is accepted.
    Unpinned,
}

/// One file to fetch.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// What it is, for messages: `kind v0.31.0`.
    pub what: String,
    pub url: String,
    pub checksum: Checksum,
    pub dest: PathBuf,
    pub executable: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error(
        "cannot download {what} from {url}: {reason}. On a machine without internet access, fetch that URL \
         elsewhere, verify it, and copy it to {dest} (then re-run)"
    )]
    Fetch {
        what: String,
        url: String,
        dest: PathBuf,
        reason: String,
    },
    #[error(
        "{what} from {url} has sha256 {actual}, expected {expected}: refusing it (delete {dest} if it is a stale preload)"
    )]
    ChecksumMismatch {
        what: String,
        url: String,
        dest: PathBuf,
        expected: String,
        actual: String,
    },
    #[error(
        "{what} has no pinned sha256, so it is not downloaded automatically; fetch {url}, check it against the \
         release page, and copy it to {dest}"
    )]
    NoChecksum {
        what: String,
        url: String,
        dest: PathBuf,
    },
    #[error(
        "cannot write {path}: {source}; check permissions and free space of the target directory"
    )]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Returns the path of the verified artifact, downloading it when it is not cached.
pub async fn fetch(artifact: &Artifact) -> Result<PathBuf, DownloadError> {
    if let Some(path) = cached(artifact)? {
        return Ok(path);
    }
    let expected = match &artifact.checksum {
        Checksum::Pinned(hex) => hex.clone(),
        Checksum::Published { url } => {
            let text = get(artifact, url).await?;
            parse_sha256sum(&String::from_utf8_lossy(&text)).ok_or_else(|| {
                DownloadError::Fetch {
                    what: artifact.what.clone(),
                    url: url.clone(),
                    dest: artifact.dest.clone(),
                    reason: "the checksum file has no `<64 hex digits>  <name>` line".into(),
                }
            })?
        }
        Checksum::Unpinned => {
            return Err(DownloadError::NoChecksum {
                what: artifact.what.clone(),
                url: artifact.url.clone(),
                dest: artifact.dest.clone(),
            });
        }
    };
    let bytes = get(artifact, &artifact.url).await?;
    let actual = sha256_hex(&bytes);
    if actual != expected {
        return Err(DownloadError::ChecksumMismatch {
            what: artifact.what.clone(),
            url: artifact.url.clone(),
            dest: artifact.dest.clone(),
            expected,
            actual,
        });
    }
    write_atomically(&artifact.dest, &bytes, artifact.executable)?;
    Ok(artifact.dest.clone())
}

/// A cached file that passes the check, `None` when absent.
fn cached(artifact: &Artifact) -> Result<Option<PathBuf>, DownloadError> {
    let Ok(bytes) = std::fs::read(&artifact.dest) else {
        return Ok(None);
    };
    if let Checksum::Pinned(expected) = &artifact.checksum {
        let actual = sha256_hex(&bytes);
        if &actual != expected {
            return Err(DownloadError::ChecksumMismatch {
                what: artifact.what.clone(),
                url: artifact.url.clone(),
                dest: artifact.dest.clone(),
                expected: expected.clone(),
                actual,
            });
        }
    }
    Ok(Some(artifact.dest.clone()))
}

/// The first hash of a `sha256sum`-style file.
pub fn parse_sha256sum(text: &str) -> Option<String> {
    let word = text.split_whitespace().next()?;
    (word.len() == 64 && word.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| word.to_ascii_lowercase())
}

async fn get(artifact: &Artifact, url: &str) -> Result<Vec<u8>, DownloadError> {
    crate::tls::install_crypto_provider();
    let fail = |reason: String| DownloadError::Fetch {
        what: artifact.what.clone(),
        url: url.to_owned(),
        dest: artifact.dest.clone(),
        reason,
    };
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(300))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| fail(error_chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(format!("HTTP {status}")));
    }
    Ok(response
        .bytes()
        .await
        .map_err(|e| fail(error_chain(&e)))?
        .to_vec())
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn write_atomically(dest: &Path, bytes: &[u8], executable: bool) -> Result<(), DownloadError> {
    let write_err = |source| DownloadError::Write {
        path: dest.to_owned(),
        source,
    };
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    let temp = dest.with_extension("partial");
    std::fs::write(&temp, bytes).map_err(write_err)?;
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o755))
            .map_err(write_err)?;
    }
    std::fs::rename(&temp, dest).map_err(write_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(dir: &Path, url: &str, checksum: Checksum) -> Artifact {
        Artifact {
            what: "thing v1".into(),
            url: url.into(),
            checksum,
            dest: dir.join("thing"),
            executable: false,
        }
    }

    /// A port on localhost that nothing listens on: bind, read the port, close.
    fn closed_local_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    }

    #[tokio::test]
    async fn download_failure_names_url_and_preload_path() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{}/thing", closed_local_port());
        let error = fetch(&artifact(
            dir.path(),
            &url,
            Checksum::Pinned("0".repeat(64)),
        ))
        .await
        .unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, DownloadError::Fetch { .. }), "{text}");
        assert!(text.contains(&url), "{text}");
        assert!(
            text.contains(&dir.path().join("thing").display().to_string()),
            "{text}"
        );
    }

    #[tokio::test]
    async fn preloaded_file_with_pinned_checksum_is_used_without_network() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("thing"), b"hello").unwrap();
        let url = format!("http://127.0.0.1:{}/thing", closed_local_port());
        let path = fetch(&artifact(
            dir.path(),
            &url,
            Checksum::Pinned(sha256_hex(b"hello")),
        ))
        .await
        .unwrap();
        assert_eq!(path, dir.path().join("thing"));
    }

    #[tokio::test]
    async fn preloaded_file_with_wrong_checksum_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("thing"), b"tampered").unwrap();
        let error = fetch(&artifact(
            dir.path(),
            "http://127.0.0.1:9/x",
            Checksum::Pinned(sha256_hex(b"hello")),
        ))
        .await
        .unwrap_err();
        assert!(
            matches!(error, DownloadError::ChecksumMismatch { .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn unpinned_artifact_is_never_downloaded() {
        let dir = tempfile::tempdir().unwrap();
        let error = fetch(&artifact(
            dir.path(),
            "http://127.0.0.1:9/x",
            Checksum::Unpinned,
        ))
        .await
        .unwrap_err();
        assert!(matches!(error, DownloadError::NoChecksum { .. }), "{error}");
    }

    #[test]
    fn sha256sum_lines_parse() {
        let hex = "a".repeat(64);
        assert_eq!(
            parse_sha256sum(&format!("{hex}  kind-linux-amd64\n")),
            Some(hex)
        );
        assert_eq!(parse_sha256sum("not a hash  file"), None);
    }
}
