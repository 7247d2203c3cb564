//! Per-task checkpoints: `<dir>/<task id>.json`, written after every completed step.
//!
//! Keyed by task id (not by agent index, as in the article) so that whichever agent gets a
//! redelivered task resumes it. Writes are atomic (temp file in the same directory, write,
//! fsync, rename, fsync the directory): a SIGKILL or OOM kill leaves either the previous
//! checkpoint or the new one, never half of one. A checksum over the payload catches what
//! atomicity cannot (a truncated volume, a stray editor); a checkpoint that fails it is moved
//! aside as `<id>.json.corrupt` and the task restarts from step 0, so a bad file costs one
//! task's progress and never a crash loop.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};

use agentfleet_protocol::TokenUsage;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Format version written in every file; a different one is treated as corrupt.
const FORMAT_VERSION: u32 = 1;

/// What a checkpoint records about one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    pub task_id: String,
    /// Steps completed so far; the next step to run is `steps_completed + 1`.
    pub steps_completed: u32,
    /// Tokens of the completed steps.
    pub tokens: TokenUsage,
    /// Hex sha256 chain over the completed steps' outputs.
    pub output_digest: String,
    /// Highest delivery attempt that started on this task: the agent's own delivery count
    /// where the broker keeps none (classic queues), so a task that keeps killing its agent is
    /// still dead-lettered.
    pub attempts: u32,
}

impl Progress {
    /// Progress of a task nothing has been done for.
    pub fn fresh(task_id: &str) -> Progress {
        Progress {
            task_id: task_id.to_owned(),
            steps_completed: 0,
            tokens: TokenUsage::default(),
            output_digest: String::new(),
            attempts: 0,
        }
    }
}

/// The file's layout: the payload and a checksum of its canonical JSON.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointFile {
    version: u32,
    checkpoint: Progress,
    sha256: String,
}

fn checksum(progress: &Progress) -> String {
    let canonical = serde_json::to_vec(progress).expect("Progress always serializes");
    hex::encode(Sha256::digest(&canonical))
}

/// The result of looking for a task's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// No checkpoint: a fresh task.
    Absent,
    Found(Progress),
    /// The checkpoint was unusable; the task restarts from step 0.
    Corrupt {
        reason: String,
        /// Where the bad file went, if moving it aside worked.
        moved_to: Option<PathBuf>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(
        "checkpoint directory {dir} is not writable: {source}; mount a writable volume there \
         (check the volume's permissions / fsGroup) or set AGENT_CHECKPOINT_DIR to a writable directory"
    )]
    NotWritable {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write checkpoint {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot remove checkpoint {path}: {source}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("checkpoint I/O task failed: {0}")]
    Join(String),
}

/// The checkpoint directory.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
}

impl CheckpointStore {
    /// Opens `dir`, creating it if missing, and proves it writable with a probe file, so a
    /// read-only or mis-permissioned volume fails start-up instead of the first task.
    pub fn open(dir: impl Into<PathBuf>) -> Result<CheckpointStore, CheckpointError> {
        let dir = dir.into();
        let not_writable = |source| CheckpointError::NotWritable {
            dir: dir.clone(),
            source,
        };
        fs::create_dir_all(&dir).map_err(not_writable)?;
        let probe = dir.join(format!(".write-probe.{:016x}", rand::random::<u64>()));
        let written = File::create(&probe).and_then(|mut f| {
            f.write_all(b"probe")?;
            f.sync_all()
        });
        let removed = fs::remove_file(&probe);
        written.and(removed).map_err(not_writable)?;
        Ok(CheckpointStore { dir })
    }

    pub fn path(&self, task_id: &str) -> PathBuf {
        self.dir.join(format!("{task_id}.json"))
    }

    /// Where a corrupt checkpoint is moved.
    pub fn corrupt_path(&self, task_id: &str) -> PathBuf {
        self.dir.join(format!("{task_id}.json.corrupt"))
    }

    /// Loads a task's checkpoint, verifying format, checksum and task id. Never fails: an
    /// unusable checkpoint is moved aside and reported as [`Loaded::Corrupt`].
    pub fn load_blocking(&self, task_id: &str) -> Loaded {
        let path = self.path(task_id);
        let reason = match fs::read(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Loaded::Absent,
            Err(e) => format!("unreadable: {e}"),
            Ok(bytes) => match verify(&bytes, task_id) {
                Ok(progress) => return Loaded::Found(progress),
                Err(reason) => reason,
            },
        };
        let aside = self.corrupt_path(task_id);
        let moved_to = match fs::rename(&path, &aside) {
            Ok(()) => Some(aside),
            // Could not move it (read-only file, odd permissions): try to delete it so the
            // next save does not trip over it; either way the task restarts from step 0.
            Err(_) => {
                let _best_effort = fs::remove_file(&path);
                None
            }
        };
        Loaded::Corrupt { reason, moved_to }
    }

    /// Writes a checkpoint atomically: temp file, write, fsync, rename, fsync directory.
    pub fn save_blocking(&self, progress: &Progress) -> Result<(), CheckpointError> {
        let path = self.path(&progress.task_id);
        let write_error = |source| CheckpointError::Write {
            path: path.clone(),
            source,
        };
        let file = CheckpointFile {
            version: FORMAT_VERSION,
            checkpoint: progress.clone(),
            sha256: checksum(progress),
        };
        let mut bytes = serde_json::to_vec_pretty(&file).expect("CheckpointFile always serializes");
        bytes.push(b'\n');
        // The random part keeps agents that share the volume (and may share a pid: pid 1 in
        // every container) from writing the same temp file. Task ids never start with '.'.
        let temp = self.dir.join(format!(
            ".{}.json.{:016x}.tmp",
            progress.task_id,
            rand::random::<u64>()
        ));
        let result = write_synced(&temp, &bytes)
            .and_then(|()| fs::rename(&temp, &path))
            .and_then(|()| sync_dir(&self.dir));
        if result.is_err() {
            let _best_effort = fs::remove_file(&temp);
        }
        result.map_err(write_error)
    }

    /// Deletes a task's checkpoint (after its ack); a missing one is fine.
    pub fn remove_blocking(&self, task_id: &str) -> Result<(), CheckpointError> {
        let path = self.path(task_id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CheckpointError::Remove { path, source }),
        }
    }

    /// [`Self::load_blocking`] off the async runtime's worker threads.
    pub async fn load(&self, task_id: &str) -> Result<Loaded, CheckpointError> {
        let (store, id) = (self.clone(), task_id.to_owned());
        run_blocking(move || Ok(store.load_blocking(&id))).await
    }

    /// [`Self::save_blocking`] off the async runtime's worker threads. The write runs to
    /// completion even if the caller is dropped, so an abandoned step never leaves a
    /// half-written temp file behind a completed rename.
    pub async fn save(&self, progress: &Progress) -> Result<(), CheckpointError> {
        let (store, progress) = (self.clone(), progress.clone());
        run_blocking(move || store.save_blocking(&progress)).await
    }

    pub async fn remove(&self, task_id: &str) -> Result<(), CheckpointError> {
        let (store, id) = (self.clone(), task_id.to_owned());
        run_blocking(move || store.remove_blocking(&id)).await
    }
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CheckpointError> + Send + 'static,
) -> Result<T, CheckpointError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CheckpointError::Join(e.to_string()))?
}

fn verify(bytes: &[u8], task_id: &str) -> Result<Progress, String> {
    let file: CheckpointFile =
        serde_json::from_slice(bytes).map_err(|e| format!("not a checkpoint file: {e}"))?;
    if file.version != FORMAT_VERSION {
        return Err(format!(
            "format version {} (expected {FORMAT_VERSION})",
            file.version
        ));
    }
    let expected = checksum(&file.checkpoint);
    if file.sha256 != expected {
        return Err(format!(
            "checksum mismatch (file says {}, payload hashes to {expected})",
            file.sha256
        ));
    }
    if file.checkpoint.task_id != task_id {
        return Err(format!("belongs to task {:?}", file.checkpoint.task_id));
    }
    Ok(file.checkpoint)
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Makes a rename in `dir` durable: without it a power loss may forget the new name.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(id: &str, steps: u32) -> Progress {
        Progress {
            task_id: id.to_owned(),
            steps_completed: steps,
            tokens: TokenUsage {
                prompt_tokens: 10,
                completion_tokens: 5,
                total_tokens: 15,
            },
            output_digest: "ab".repeat(32),
            attempts: 2,
        }
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn save_then_load_round_trips_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        assert_eq!(store.load_blocking("t-1"), Loaded::Absent);
        store.save_blocking(&progress("t-1", 1)).unwrap();
        store.save_blocking(&progress("t-1", 2)).unwrap();
        assert_eq!(
            store.load_blocking("t-1"),
            Loaded::Found(progress("t-1", 2))
        );
        assert_eq!(
            entries(dir.path()),
            ["t-1.json"],
            "temp or probe files were left behind"
        );
        store.remove_blocking("t-1").unwrap();
        store.remove_blocking("t-1").unwrap();
        assert_eq!(store.load_blocking("t-1"), Loaded::Absent);
    }

    #[test]
    fn a_failed_write_keeps_the_previous_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        store.save_blocking(&progress("t-1", 1)).unwrap();
        // Make the rename fail: the target path becomes a non-empty directory.
        let path = store.path("t-2");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("x"), b"x").unwrap();
        let err = store.save_blocking(&progress("t-2", 1)).unwrap_err();
        assert!(err.to_string().contains("t-2.json"), "{err}");
        assert_eq!(
            store.load_blocking("t-1"),
            Loaded::Found(progress("t-1", 1))
        );
        assert_eq!(
            entries(dir.path()),
            ["t-1.json", "t-2.json"],
            "the temp file was not cleaned up"
        );
    }

    #[test]
    fn a_tampered_checkpoint_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        store.save_blocking(&progress("t-1", 3)).unwrap();
        let path = store.path("t-1");
        let text = fs::read_to_string(&path).unwrap();
        fs::write(
            &path,
            text.replace("\"steps_completed\": 3", "\"steps_completed\": 9"),
        )
        .unwrap();
        match store.load_blocking("t-1") {
            Loaded::Corrupt { reason, moved_to } => {
                assert!(reason.contains("checksum mismatch"), "{reason}");
                assert_eq!(moved_to, Some(store.corrupt_path("t-1")));
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert_eq!(entries(dir.path()), ["t-1.json.corrupt"]);
        assert_eq!(
            store.load_blocking("t-1"),
            Loaded::Absent,
            "the next delivery starts afresh"
        );
    }

    #[test]
    fn truncated_and_foreign_checkpoints_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        fs::write(store.path("t-1"), b"{\"version\":1,\"checkp").unwrap();
        assert!(
            matches!(store.load_blocking("t-1"), Loaded::Corrupt { reason, .. } if reason.contains("not a checkpoint"))
        );
        // A valid checkpoint of another task under this task's name.
        store.save_blocking(&progress("t-2", 1)).unwrap();
        fs::rename(store.path("t-2"), store.path("t-3")).unwrap();
        assert!(
            matches!(store.load_blocking("t-3"), Loaded::Corrupt { reason, .. } if reason.contains("\"t-2\""))
        );
    }

    #[test]
    fn an_unwritable_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        // A regular file where the directory should be: cannot be created nor written.
        let file = dir.path().join("not-a-dir");
        fs::write(&file, b"").unwrap();
        let err = CheckpointStore::open(file.join("checkpoints")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("not writable") && text.contains("AGENT_CHECKPOINT_DIR"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn async_wrappers_match_the_blocking_calls() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        store.save(&progress("t-9", 4)).await.unwrap();
        assert_eq!(
            store.load("t-9").await.unwrap(),
            Loaded::Found(progress("t-9", 4))
        );
        store.remove("t-9").await.unwrap();
        assert_eq!(store.load("t-9").await.unwrap(), Loaded::Absent);
    }
}
