//! Where the initial fault profile comes from: a file, inline JSON, or nothing (no faults).

use std::path::PathBuf;

use agentfleet_protocol::gateway::FaultProfile;

use crate::validate::{InvalidProfile, validate_profile};

/// Name of the environment variable holding an inline JSON profile.
pub const FAULTS_ENV: &str = "GATEWAY_FAULTS";
/// Name of the environment variable holding the path of a JSON profile.
pub const FAULTS_FILE_ENV: &str = "GATEWAY_FAULTS_FILE";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileSource {
    /// No faults at all.
    Default,
    /// `--faults FILE` / `GATEWAY_FAULTS_FILE`.
    File(PathBuf),
    /// `--faults-json JSON` / `GATEWAY_FAULTS`.
    Inline(String),
}

/// A start-up profile that cannot be used; every variant names where it came from. The cause is
/// part of the message (not a `source`) so it is printed once, next to the field it names.
#[derive(Debug, thiserror::Error)]
pub enum LoadProfileError {
    #[error("cannot read the fault profile file {path} (--faults / {FAULTS_FILE_ENV}): {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the fault profile from {origin} is not a valid FaultProfile JSON object: {error}")]
    Parse {
        origin: String,
        error: serde_json::Error,
    },
    #[error("the fault profile from {origin} is invalid: {error}")]
    Invalid {
        origin: String,
        error: InvalidProfile,
    },
}

impl ProfileSource {
    fn origin(&self) -> String {
        match self {
            Self::Default => "the built-in default".to_owned(),
            Self::File(path) => format!("file {} (--faults / {FAULTS_FILE_ENV})", path.display()),
            Self::Inline(_) => format!("{FAULTS_ENV} (--faults-json)"),
        }
    }

    /// Reads, parses and validates the profile.
    pub fn load(&self) -> Result<FaultProfile, LoadProfileError> {
        let profile = match self {
            Self::Default => FaultProfile::default(),
            Self::File(path) => {
                let text = std::fs::read(path).map_err(|error| LoadProfileError::Read {
                    path: path.clone(),
                    error,
                })?;
                self.parse(&text)?
            }
            Self::Inline(json) => self.parse(json.as_bytes())?,
        };
        validate_profile(&profile).map_err(|error| LoadProfileError::Invalid {
            origin: self.origin(),
            error,
        })?;
        Ok(profile)
    }

    fn parse(&self, json: &[u8]) -> Result<FaultProfile, LoadProfileError> {
        serde_json::from_slice(json).map_err(|error| LoadProfileError::Parse {
            origin: self.origin(),
            error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_json_loads() {
        let profile = ProfileSource::Inline(r#"{"rate_503": 0.25, "seed": 3}"#.to_owned())
            .load()
            .expect("valid profile");
        assert_eq!(profile.rate_503, 0.25);
        assert_eq!(profile.seed, Some(3));
    }

    #[test]
    fn bad_inline_json_names_the_variable_and_the_field() {
        let error = ProfileSource::Inline(r#"{"rate_5OO": 0.1}"#.to_owned())
            .load()
            .expect_err("unknown field");
        let message = error.to_string();
        assert!(message.contains(FAULTS_ENV), "{message}");
        assert!(message.contains("rate_5OO"), "{message}");
    }

    #[test]
    fn file_loads() {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut file, br#"{"capacity": 4}"#).expect("write profile");
        let profile = ProfileSource::File(file.path().to_owned())
            .load()
            .expect("valid profile");
        assert_eq!(profile.capacity, Some(4));
    }

    #[test]
    fn missing_file_names_the_path() {
        let path = PathBuf::from("/nonexistent/agentfleet-faults.json");
        let message = ProfileSource::File(path)
            .load()
            .expect_err("missing file")
            .to_string();
        assert!(
            message.contains("/nonexistent/agentfleet-faults.json"),
            "{message}"
        );
    }

    #[test]
    fn out_of_range_values_name_the_source_and_field() {
        let message = ProfileSource::Inline(r#"{"rate_429": 2}"#.to_owned())
            .load()
            .expect_err("rate above 1")
            .to_string();
        assert!(
            message.contains(FAULTS_ENV) && message.contains("rate_429"),
            "{message}"
        );
    }
}
