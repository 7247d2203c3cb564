//! Memory ballast for the OOM fault (`oom_at_step` / `oom_mib` on a task).
//!
//! Allocating is not enough to trip a memory limit: Linux only charges a page to the cgroup
//! when it is first written. So the ballast is filled with a non-zero byte, which writes every
//! page, and is kept alive by the caller for the whole step.

/// Resident memory held for the duration of a step.
#[derive(Debug)]
pub struct Ballast {
    bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot allocate {mib} MiB of ballast for the oom_at_step fault: {reason}")]
pub struct BallastError {
    pub mib: u64,
    pub reason: String,
}

impl Ballast {
    /// Allocates `mib` MiB and writes every byte.
    pub fn allocate(mib: u64) -> Result<Ballast, BallastError> {
        let error = |reason: String| BallastError { mib, reason };
        let len = mib
            .checked_mul(1 << 20)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| error("larger than the address space".to_owned()))?;
        let mut bytes = Vec::new();
        bytes
            .try_reserve_exact(len)
            .map_err(|e| error(e.to_string()))?;
        bytes.resize(len, 0xA5);
        Ok(Ballast {
            bytes: std::hint::black_box(bytes),
        })
    }

    /// Bytes held (all of them written).
    pub fn resident_bytes(&self) -> usize {
        self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident set size of this process in KiB, from /proc (Linux only, like the agent).
    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn ballast_is_resident_not_just_reserved() {
        let before = rss_kib();
        let ballast = Ballast::allocate(64).unwrap();
        let grown = rss_kib().saturating_sub(before);
        assert_eq!(ballast.resident_bytes(), 64 << 20);
        // Other test threads allocate too, so only require most of the 64 MiB to be resident.
        assert!(
            grown >= 60 * 1024,
            "RSS grew by {grown} KiB only: pages were not touched"
        );
    }

    #[test]
    fn an_impossible_size_is_an_error_not_an_abort() {
        let err = Ballast::allocate(u64::MAX).unwrap_err();
        assert!(err.to_string().contains("oom_at_step"), "{err}");
        let err = Ballast::allocate(1 << 40).unwrap_err();
        assert!(err.to_string().contains("MiB"), "{err}");
    }
}
