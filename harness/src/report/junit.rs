//! The JUnit XML writer for the CI UIs: one `<testsuite>` with one `<testcase>` per scenario or
//! contract clause. It is the lint crate's writer (the workspace has one), re-exported here so the
//! harness' reports and the SVG timelines reach it by the same path as before.

pub use agentfleet_lint::report::junit::{Case, CaseStatus, Suite, escape};

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::report::xml_check::assert_well_formed;

    fn case(name: &str, status: CaseStatus) -> Case {
        Case {
            name: name.into(),
            classname: "agentfleet.e2e".into(),
            time: Duration::from_millis(1500),
            status,
            system_out: String::new(),
        }
    }

    #[test]
    fn writes_counts_and_one_testcase_per_case() {
        let suite = Suite {
            name: "agentfleet e2e".into(),
            cases: vec![
                case("scaling", CaseStatus::Passed),
                case(
                    "oom",
                    CaseStatus::Failed {
                        kind: None,
                        message: "resumed from 0 < 3".into(),
                        body: "log <tail> & \"more\"\u{1b}[0m".into(),
                    },
                ),
                case(
                    "rollout",
                    CaseStatus::Skipped {
                        message: "needs a cluster (runtime docker)".into(),
                    },
                ),
            ],
        };
        let xml = suite.to_xml();
        assert_well_formed(&xml);
        assert!(
            xml.contains(r#"tests="3" failures="1" errors="0" skipped="1" time="4.500""#),
            "{xml}"
        );
        assert_eq!(xml.matches("<testcase ").count(), 3);
        assert!(
            xml.contains(r#"<skipped message="needs a cluster (runtime docker)"/>"#),
            "{xml}"
        );
        assert!(
            xml.contains("log &lt;tail&gt; &amp; &quot;more&quot;\u{FFFD}[0m"),
            "{xml}"
        );
        assert!(
            xml.contains(
                r#"<testcase name="scaling" classname="agentfleet.e2e" time="1.500"></testcase>"#
            ),
            "{xml}"
        );
    }
}
