//! Checks a [`FaultProfile`] before it is applied.
//!
//! Serde already rejects unknown fields and wrong types; this catches values that parse but
//! make no sense (a rate of 1.5, a uniform latency whose minimum exceeds its maximum), so a
//! scenario with a typo fails loudly at `PUT /admin/faults` instead of silently injecting the
//! wrong faults.

use agentfleet_protocol::gateway::{FaultProfile, Hang, Latency, Outage};

/// A profile value that parsed but cannot be applied. `field` is the JSON path of the culprit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidProfile {
    pub field: String,
    pub problem: String,
}

impl InvalidProfile {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Validates every field of `profile`, reporting the first problem found.
pub fn validate_profile(profile: &FaultProfile) -> Result<(), InvalidProfile> {
    for (field, rate) in [
        ("rate_429", profile.rate_429),
        ("rate_500", profile.rate_500),
        ("rate_503", profile.rate_503),
    ] {
        validate_rate(field, rate)?;
    }
    let total = profile.rate_429 + profile.rate_500 + profile.rate_503;
    if total > 1.0 {
        return Err(InvalidProfile::new(
            "rate_429 + rate_500 + rate_503",
            format!("the error rates add up to {total}, which exceeds 1; lower one of them"),
        ));
    }
    for (index, outage) in profile.outages.iter().enumerate() {
        validate_outage(&format!("outages[{index}]"), outage)?;
    }
    validate_latency(&profile.latency)?;
    if profile.capacity == Some(0) {
        return Err(InvalidProfile::new(
            "capacity",
            "must be at least 1 (omit it for unlimited; use an outage with status 429 to refuse every request)",
        ));
    }
    validate_hangs(&profile.hangs)
}

/// A hang names the task it holds (an empty id would match no request, silently), once (two
/// entries for one task would leave it unclear which count applies).
fn validate_hangs(hangs: &[Hang]) -> Result<(), InvalidProfile> {
    for (index, hang) in hangs.iter().enumerate() {
        if hang.task_id.trim().is_empty() {
            return Err(InvalidProfile::new(
                format!("hangs[{index}].task_id"),
                "must name a task (the x-task-id header its requests carry)",
            ));
        }
        if let Some(first) = hangs[..index]
            .iter()
            .position(|other| other.task_id == hang.task_id)
        {
            return Err(InvalidProfile::new(
                format!("hangs[{index}].task_id"),
                format!(
                    "task {:?} is already hung by hangs[{first}]; keep one entry per task",
                    hang.task_id
                ),
            ));
        }
    }
    Ok(())
}

/// Validates an outage window; `prefix` is its JSON path (empty for a top-level object, as in
/// the body of `POST /admin/outage`), used in the error.
pub fn validate_outage(prefix: &str, outage: &Outage) -> Result<(), InvalidProfile> {
    let field = |name: &str| {
        if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        }
    };
    validate_outage_status(&field("status"), outage.status)?;
    if outage.duration_ms == 0 {
        return Err(InvalidProfile::new(
            field("duration_ms"),
            "must be at least 1 (a zero-length outage never applies)",
        ));
    }
    Ok(())
}

/// An outage answers with an error status; anything outside 400..=599 would look like success
/// or a redirect to the agent and defeat the point of the window.
fn validate_outage_status(field: &str, status: u16) -> Result<(), InvalidProfile> {
    if (400..=599).contains(&status) {
        Ok(())
    } else {
        Err(InvalidProfile::new(
            field,
            format!("{status} is not an error status; use 400..=599 (usually 429 or 503)"),
        ))
    }
}

fn validate_rate(field: &str, rate: f64) -> Result<(), InvalidProfile> {
    if rate.is_finite() && (0.0..=1.0).contains(&rate) {
        Ok(())
    } else {
        Err(InvalidProfile::new(
            field,
            format!("{rate} is not a probability; use a number within 0..=1"),
        ))
    }
}

fn validate_latency(latency: &Latency) -> Result<(), InvalidProfile> {
    match *latency {
        Latency::None | Latency::Fixed { .. } => Ok(()),
        Latency::Uniform { min_ms, max_ms } if min_ms > max_ms => Err(InvalidProfile::new(
            "latency.min_ms",
            format!("min_ms ({min_ms}) exceeds max_ms ({max_ms}); min_ms must be <= max_ms"),
        )),
        Latency::Uniform { .. } => Ok(()),
        Latency::Exponential { mean_ms, max_ms } if max_ms < mean_ms => Err(InvalidProfile::new(
            "latency.max_ms",
            format!(
                "max_ms ({max_ms}) is below mean_ms ({mean_ms}); the cap must be >= the mean or the distribution collapses onto the cap"
            ),
        )),
        Latency::Exponential { .. } => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid_field(profile: &FaultProfile) -> String {
        validate_profile(profile)
            .expect_err("profile should be rejected")
            .field
    }

    #[test]
    fn default_profile_is_valid() {
        assert_eq!(validate_profile(&FaultProfile::default()), Ok(()));
    }

    #[test]
    fn hangs_need_a_task_id_each_once() {
        let hang = |task_id: &str| Hang {
            task_id: task_id.to_owned(),
            after_answers: 1,
        };
        let profile = FaultProfile {
            hangs: vec![hang("a"), hang(" ")],
            ..FaultProfile::default()
        };
        assert_eq!(invalid_field(&profile), "hangs[1].task_id");
        let profile = FaultProfile {
            hangs: vec![hang("a"), hang("b"), hang("a")],
            ..FaultProfile::default()
        };
        let error = validate_profile(&profile).expect_err("a task hung twice");
        assert_eq!(error.field, "hangs[2].task_id");
        assert!(error.problem.contains("hangs[0]"), "{error}");
        let profile = FaultProfile {
            hangs: vec![hang("a"), hang("b")],
            ..FaultProfile::default()
        };
        assert_eq!(validate_profile(&profile), Ok(()));
    }

    #[test]
    fn rates_outside_zero_to_one_name_their_field() {
        let profile = FaultProfile {
            rate_500: 1.5,
            ..FaultProfile::default()
        };
        assert_eq!(invalid_field(&profile), "rate_500");
        let profile = FaultProfile {
            rate_429: -0.1,
            ..FaultProfile::default()
        };
        assert_eq!(invalid_field(&profile), "rate_429");
        let profile = FaultProfile {
            rate_503: f64::NAN,
            ..FaultProfile::default()
        };
        assert_eq!(invalid_field(&profile), "rate_503");
    }

    #[test]
    fn rates_summing_above_one_are_rejected() {
        let profile = FaultProfile {
            rate_429: 0.6,
            rate_503: 0.5,
            ..FaultProfile::default()
        };
        assert_eq!(invalid_field(&profile), "rate_429 + rate_500 + rate_503");
    }

    #[test]
    fn uniform_latency_needs_min_at_most_max() {
        let profile = FaultProfile {
            latency: Latency::Uniform {
                min_ms: 20,
                max_ms: 10,
            },
            ..FaultProfile::default()
        };
        assert_eq!(invalid_field(&profile), "latency.min_ms");
        let equal = FaultProfile {
            latency: Latency::Uniform {
                min_ms: 10,
                max_ms: 10,
            },
            ..FaultProfile::default()
        };
        assert_eq!(validate_profile(&equal), Ok(()));
    }

    #[test]
    fn outage_problems_name_the_window() {
        let profile = FaultProfile {
            outages: vec![
                Outage {
                    start_ms: 0,
                    duration_ms: 10,
                    status: 503,
                },
                Outage {
                    start_ms: 0,
                    duration_ms: 10,
                    status: 200,
                },
            ],
            ..FaultProfile::default()
        };
        assert_eq!(invalid_field(&profile), "outages[1].status");
        let profile = FaultProfile {
            outages: vec![Outage {
                start_ms: 0,
                duration_ms: 0,
                status: 503,
            }],
            ..FaultProfile::default()
        };
        assert_eq!(invalid_field(&profile), "outages[0].duration_ms");
    }

    #[test]
    fn zero_capacity_is_rejected() {
        let profile = FaultProfile {
            capacity: Some(0),
            ..FaultProfile::default()
        };
        assert_eq!(invalid_field(&profile), "capacity");
    }
}
