//! Reports of an `agentfleet e2e` run, written to the report directory
//! (`--report-dir`, default `target/agentfleet`):
//! - the verdict table ([`table`]), printed, colour only on a terminal;
//! - `report.json`: every outcome with its figures, ledger and timeline;
//! - `junit.xml`: one testcase per scenario ([`junit`]);
//! - `timeline-<scenario>.svg`: one chart per scenario ([`crate::timeline::svg`]).

pub mod junit;
pub mod style;
pub mod table;
#[cfg(test)]
pub(crate) mod xml_check;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::scenario::{ScenarioOutcome, Verdict};
use crate::timeline::svg;

use junit::{Case, CaseStatus, Suite};

#[derive(Debug, thiserror::Error)]
#[error("cannot write the report {path} (check --report-dir): {source}")]
pub struct ReportError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// `report.json`'s document.
#[derive(Debug, Serialize)]
pub struct RunReport<'a> {
    pub runtime: &'a str,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub outcomes: &'a [ScenarioOutcome],
}

impl<'a> RunReport<'a> {
    pub fn new(runtime: &'a str, outcomes: &'a [ScenarioOutcome]) -> RunReport<'a> {
        let count = |f: fn(&Verdict) -> bool| outcomes.iter().filter(|o| f(&o.verdict)).count();
        RunReport {
            runtime,
            passed: count(|v| matches!(v, Verdict::Passed)),
            failed: count(|v| matches!(v, Verdict::Failed { .. })),
            skipped: count(|v| matches!(v, Verdict::Skipped { .. })),
            outcomes,
        }
    }
}

/// The files written, for the summary line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub json: PathBuf,
    pub junit: PathBuf,
    pub timelines: Vec<PathBuf>,
}

/// Writes report.json, junit.xml and one SVG per scenario that ran into `dir` (created).
pub fn write_all(
    dir: &Path,
    runtime: &str,
    outcomes: &[ScenarioOutcome],
) -> Result<Written, ReportError> {
    let write = |name: &str, text: &str| -> Result<PathBuf, ReportError> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| ReportError {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    };
    std::fs::create_dir_all(dir).map_err(|source| ReportError {
        path: dir.to_owned(),
        source,
    })?;
    let mut json = serde_json::to_string_pretty(&RunReport::new(runtime, outcomes))
        .expect("outcomes always serialize");
    json.push('\n');
    let json = write("report.json", &json)?;
    let junit = write("junit.xml", &junit_suite(runtime, outcomes).to_xml())?;
    let mut timelines = Vec::new();
    for o in outcomes {
        if matches!(o.verdict, Verdict::Skipped { .. }) && o.timeline.samples.is_empty() {
            continue;
        }
        let title = format!(
            "{} on {}: {}",
            o.scenario,
            o.runtime,
            verdict_word(&o.verdict)
        );
        timelines.push(write(
            &format!("timeline-{}.svg", o.scenario),
            &svg::render(&title, &o.timeline),
        )?);
    }
    Ok(Written {
        json,
        junit,
        timelines,
    })
}

fn verdict_word(v: &Verdict) -> &'static str {
    match v {
        Verdict::Passed => "passed",
        Verdict::Failed { .. } => "failed",
        Verdict::Skipped { .. } => "skipped",
    }
}

/// One testcase per scenario; figures go to `<system-out>`.
pub fn junit_suite(runtime: &str, outcomes: &[ScenarioOutcome]) -> Suite {
    let cases = outcomes
        .iter()
        .map(|o| {
            let status = match &o.verdict {
                Verdict::Passed => CaseStatus::Passed,
                Verdict::Failed { reasons } => CaseStatus::Failed {
                    kind: None,
                    message: reasons.first().cloned().unwrap_or_else(|| "failed".into()),
                    body: reasons.join("\n"),
                },
                Verdict::Skipped { reason } => CaseStatus::Skipped {
                    message: reason.clone(),
                },
            };
            let mut system_out: Vec<String> = o.figures.iter().map(table::figure).collect();
            system_out.extend(o.checks.iter().map(table::check_line));
            system_out.extend(o.warnings.iter().map(|w| format!("warning: {w}")));
            if let Some(dir) = &o.artifacts {
                system_out.push(format!("artifacts: {}", dir.display()));
            }
            Case {
                name: o.scenario.to_string(),
                classname: format!("agentfleet.e2e.{runtime}"),
                time: o.duration,
                status,
                system_out: system_out.join("\n"),
            }
        })
        .collect();
    Suite {
        name: format!("agentfleet e2e ({runtime})"),
        cases,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::scenario::{Figure, ScenarioId};
    use crate::timeline::{Sample, Timeline};
    use xml_check::assert_well_formed;

    fn outcome(
        scenario: ScenarioId,
        verdict: Verdict,
        secs: u64,
        figures: Vec<Figure>,
    ) -> ScenarioOutcome {
        ScenarioOutcome {
            scenario,
            runtime: "docker".into(),
            verdict,
            duration: Duration::from_secs(secs),
            waiting_by_design: Duration::ZERO,
            figures,
            checks: vec![],
            warnings: vec![],
            ledger: None,
            timeline: Timeline {
                samples: vec![
                    Sample {
                        t_ms: 0,
                        queue_ready: 4,
                        queue_unacked: 0,
                        agents_running: 0,
                        gateway_rps: 0.0,
                    },
                    Sample {
                        t_ms: 1000,
                        queue_ready: 2,
                        queue_unacked: 2,
                        agents_running: 2,
                        gateway_rps: 3.0,
                    },
                ],
                events: vec![],
            },
            artifacts: None,
        }
    }

    pub(crate) fn outcomes() -> Vec<ScenarioOutcome> {
        vec![
            outcome(
                ScenarioId::Scaling,
                Verdict::Passed,
                42,
                vec![
                    Figure::new("throughput ratio", 3.1, "x").bounded(">= 2.5 x"),
                    Figure::new("lost", 0.0, ""),
                ],
            ),
            ScenarioOutcome {
                checks: vec![crate::scenario::CheckOutcome {
                    name: "KEDA ScaledJob follows its scaling formula".into(),
                    verdict: agentfleet_cluster::checks::Verdict::Skipped {
                        reason: "no KEDA on docker".into(),
                    },
                }],
                ..outcome(ScenarioId::Oom, Verdict::Passed, 12, vec![])
            },
            outcome(
                ScenarioId::RetryStorm,
                Verdict::Failed {
                    reasons: vec![
                        "aggregate retry rate 40 req/s above the bound 12.5 req/s".into(),
                    ],
                },
                31,
                vec![Figure::new("aggregate retry rate", 40.0, "req/s").bounded("<= 12.5 req/s")],
            ),
            ScenarioOutcome {
                timeline: Timeline::default(),
                ..outcome(
                    ScenarioId::NetworkIsolation,
                    Verdict::Skipped {
                        reason: "needs kind or a cluster".into(),
                    },
                    0,
                    vec![],
                )
            },
        ]
    }

    #[test]
    fn writes_json_junit_and_a_timeline_per_scenario_that_ran() {
        let dir =
            std::env::temp_dir().join(format!("agentfleet-report-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let written = write_all(&dir, "docker", &outcomes()).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&written.json).unwrap()).unwrap();
        assert_eq!(
            (
                json["passed"].as_u64(),
                json["failed"].as_u64(),
                json["skipped"].as_u64()
            ),
            (Some(2), Some(1), Some(1))
        );
        assert_eq!(json["outcomes"][1]["checks"][0]["verdict"], "skipped");
        assert_eq!(
            json["outcomes"][1]["checks"][0]["reason"],
            "no KEDA on docker"
        );
        assert_eq!(json["outcomes"][2]["scenario"], "retry-storm");
        assert_eq!(json["outcomes"][2]["verdict"]["verdict"], "failed");
        let xml = std::fs::read_to_string(&written.junit).unwrap();
        assert_well_formed(&xml);
        assert_eq!(xml.matches("<testcase ").count(), 4);
        assert!(
            xml.contains(
                "check skipped: KEDA ScaledJob follows its scaling formula (no KEDA on docker)"
            ),
            "{xml}"
        );
        assert!(
            xml.contains(
                "<failure message=\"aggregate retry rate 40 req/s above the bound 12.5 req/s\">"
            ),
            "{xml}"
        );
        assert!(
            xml.contains("<skipped message=\"needs kind or a cluster\"/>"),
            "{xml}"
        );
        let names: Vec<String> = written
            .timelines
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            vec![
                "timeline-scaling.svg",
                "timeline-oom.svg",
                "timeline-retry-storm.svg"
            ]
        );
        assert_well_formed(&std::fs::read_to_string(&written.timelines[0]).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unwritable_directory_is_named_in_the_error() {
        let file =
            std::env::temp_dir().join(format!("agentfleet-report-file-{}", std::process::id()));
        std::fs::write(&file, "not a directory").unwrap();
        let err = write_all(&file.join("sub"), "docker", &outcomes()).unwrap_err();
        assert!(err.to_string().contains("agentfleet-report-file"), "{err}");
        assert!(err.to_string().contains("--report-dir"), "{err}");
        std::fs::remove_file(&file).unwrap();
    }
}
