//! The agents' shared checkpoint volume, and looking into it.
//!
//! A fresh named volume is owned by root, and the agent runs as an unprivileged user from a
//! `FROM scratch` image that has no directory to copy ownership from, so the volume is handed to
//! the agent's uid by a short-lived helper container before any agent starts. The same kind of
//! helper lists, reads and plants checkpoint files for assertions (the agent image has no shell).

use std::time::Duration;

use crate::Scope;
use crate::docker::{ContainerSpec, DockerError};

/// Where agents mount the volume (their `AGENT_CHECKPOINT_DIR`).
pub const MOUNT_PATH: &str = "/checkpoints";
/// The reference agent image's user (distroless "nonroot").
pub const AGENT_UID: u32 = 65532;
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// A named volume shared by all agents of a scope: whichever agent gets a redelivered task finds
/// its checkpoint.
#[derive(Debug, Clone)]
pub struct CheckpointVolume {
    name: String,
    toolbox_image: String,
    owner_uid: u32,
}

impl CheckpointVolume {
    /// Creates the volume and gives it to `owner_uid`.
    pub async fn create(
        scope: &Scope,
        toolbox_image: &str,
        owner_uid: u32,
    ) -> Result<CheckpointVolume, DockerError> {
        scope.engine().require_image(toolbox_image).await?;
        let volume = CheckpointVolume {
            name: scope.create_volume("checkpoints").await?,
            toolbox_image: toolbox_image.to_owned(),
            owner_uid,
        };
        volume
            .helper(
                scope,
                "chown",
                r#"chown "$OWNER:$OWNER" "$DIR" && chmod 0770 "$DIR""#,
                &[],
            )
            .await?;
        Ok(volume)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// File names in the volume, sorted.
    pub async fn list(&self, scope: &Scope) -> Result<Vec<String>, DockerError> {
        let out = self.helper(scope, "ls", r#"ls -A1 "$DIR""#, &[]).await?;
        let mut names: Vec<String> = out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        names.sort();
        Ok(names)
    }

    /// The contents of `file`, or `None` if it does not exist.
    pub async fn read(&self, scope: &Scope, file: &str) -> Result<Option<String>, DockerError> {
        let out = self
            .helper(scope, "cat", r#"if [ -e "$DIR/$FILE" ]; then printf 'present\n'; cat "$DIR/$FILE"; else printf 'absent\n'; fi"#, &[("FILE", file)])
            .await?;
        Ok(match out.split_once('\n') {
            Some(("present", contents)) => Some(contents.to_owned()),
            _ => None,
        })
    }

    /// Writes `contents` (text) to `file`, owned by the agent's uid, as a corrupt or foreign
    /// checkpoint for the agent to find.
    pub async fn write(
        &self,
        scope: &Scope,
        file: &str,
        contents: &str,
    ) -> Result<(), DockerError> {
        let script =
            r#"printf '%s' "$CONTENT" > "$DIR/$FILE" && chown "$OWNER:$OWNER" "$DIR/$FILE""#;
        self.helper(
            scope,
            "write",
            script,
            &[("FILE", file), ("CONTENT", contents)],
        )
        .await
        .map(drop)
    }

    /// Runs `script` with `sh -c` in a helper with the volume at [`MOUNT_PATH`] (as `$DIR`) and
    /// `$OWNER` set; returns its output, or its exit code and output if it failed.
    async fn helper(
        &self,
        scope: &Scope,
        what: &str,
        script: &str,
        env: &[(&str, &str)],
    ) -> Result<String, DockerError> {
        let mut spec = ContainerSpec::new(
            format!("ckpt-{what}-{}", helper_counter()),
            &self.toolbox_image,
        )
        .entrypoint(["sh", "-c", script])
        .cmd(Vec::<String>::new())
        .user("0")
        .env("DIR", MOUNT_PATH)
        .env("OWNER", self.owner_uid.to_string())
        .volume(&self.name, MOUNT_PATH)
        .network(scope.agents_network(), Vec::<String>::new());
        for (k, v) in env {
            spec = spec.env(*k, *v);
        }
        let container = scope.run(spec).await?;
        let status = container.wait_exit(HELPER_TIMEOUT).await;
        let output = container.logs().await;
        container.remove().await?;
        let (status, output) = (status?, output?);
        match status.exit_code {
            Some(0) => Ok(output),
            code => Err(DockerError::HelperFailed {
                container: container.name().to_owned(),
                exit_code: code.unwrap_or(-1),
                output,
            }),
        }
    }
}

fn helper_counter() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
