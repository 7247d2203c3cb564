//! The reference manifests (manifests/base and manifests/platform) lint clean at error severity.

mod common;

use agentfleet_lint::Severity;

#[test]
fn reference_manifests_have_no_errors() {
    let report = common::lint_paths(&[
        common::path("manifests/base"),
        common::path("manifests/platform"),
    ]);
    let errors: Vec<_> = report.failing(Severity::Error).collect();
    assert!(errors.is_empty(), "{}", common::dump(&report));
    assert!(
        report.objects.iter().any(|(_, o)| o.kind == "ScaledJob"),
        "the fleet's ScaledJob is linted"
    );
    assert!(
        report
            .objects
            .iter()
            .any(|(_, o)| o.kind == "NetworkPolicy"),
        "the fleet's NetworkPolicies are linted"
    );
}
