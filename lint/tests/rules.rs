//! Every rule, shown firing on exactly the mistake it describes: each case applies a few text
//! edits to fixtures/lint/clean-fleet/fleet.yaml (which passes every rule) and asserts the
//! exact set of rules that fire afterwards.

mod common;

use rstest::rstest;

fn clean_fleet() -> String {
    std::fs::read_to_string(common::workspace().join("fixtures/lint/clean-fleet/fleet.yaml"))
        .expect("clean fleet fixture")
}

fn mutate(edits: &[(&str, &str)]) -> String {
    let mut text = clean_fleet();
    for (find, replace) in edits {
        let count = text.matches(find).count();
        assert_eq!(
            count, 1,
            "edit target must occur exactly once, found {count} times: {find:?}"
        );
        text = text.replacen(find, replace, 1);
    }
    text
}

#[test]
fn the_clean_fleet_passes_every_rule() {
    let report = common::lint_text("fleet.yaml", &clean_fleet());
    assert!(report.findings.is_empty(), "{}", common::dump(&report));
    assert_eq!(report.objects.len(), 11);
}

const JOB_DNS_RULE: &str = "    - to:\n        - namespaceSelector:\n            matchLabels:\n              kubernetes.io/metadata.name: kube-system\n          podSelector:\n            matchLabels:\n              k8s-app: kube-dns\n      ports:\n";

#[rstest]
#[case::af005_duplicate("AF005", &[("\n---\napiVersion: storage.k8s.io/v1", "\n---\napiVersion: v1\nkind: LimitRange\nmetadata:\n  name: agent-limits\n  namespace: agents\nspec:\n  limits: []\n---\napiVersion: storage.k8s.io/v1")], &["AF005"])]
#[case::af006_missing_namespace("AF006", &[("  name: agent-batch\n  namespace: agents\n", "  name: agent-batch\n")], &["AF006", "AF046", "AF065", "AF071", "AF072"])]
#[case::af007_unknown_suppression("AF007", &[("kind: Namespace\nmetadata:\n  name: agents\n", "kind: Namespace\nmetadata:\n  name: agents\n  annotations:\n    agentfleet.dev/lint-ignore: AF999\n")], &["AF007"])]
#[case::af008_unchecked_kind("AF008", &[("\n---\napiVersion: storage.k8s.io/v1", "\n---\napiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n  name: agent\n  namespace: agents\nspec: {}\n---\napiVersion: storage.k8s.io/v1")], &["AF008"])]
#[case::af010_pdb_selects_nothing("AF010", &[("  minAvailable: 1\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: agent\n", "  minAvailable: 1\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: nobody\n")], &["AF010"])]
#[case::af011_max_unavailable("AF011", &[("  minAvailable: 1\n  selector:", "  maxUnavailable: 1\n  selector:")], &["AF011"])]
#[case::af011_percentage("AF011", &[("  minAvailable: 1\n  selector:", "  minAvailable: \"50%\"\n  selector:")], &["AF011"])]
#[case::af012_min_available_unreachable("AF012", &[("  minAvailable: 1\n  selector:", "  minAvailable: 4\n  selector:"), ("      metadata:\n        labels:\n          app.kubernetes.io/name: agent\n", "      metadata:\n        labels:\n          app.kubernetes.io/name: agent-keda\n")], &["AF012", "AF046"])]
#[case::af020_scaledjob_restart_default("AF020", &[("        restartPolicy: Never\n        automountServiceAccountToken: false\n", "        automountServiceAccountToken: false\n")], &["AF020", "AF022", "AF024"])]
#[case::af021_job_restart_always("AF021", &[("      restartPolicy: Never\n      serviceAccountName: agent\n", "      restartPolicy: Always\n      serviceAccountName: agent\n")], &["AF021", "AF022"])]
#[case::af022_failure_policy_needs_never("AF022", &[("      restartPolicy: Never\n      serviceAccountName: agent\n", "      restartPolicy: OnFailure\n      serviceAccountName: agent\n")], &["AF022", "AF024"])]
#[case::af023_no_disruption_ignore("AF023", &[("\n  podFailurePolicy:\n    rules:\n      - action: Ignore\n", "\n  podFailurePolicy:\n    rules:\n      - action: Count\n")], &["AF023"])]
#[case::af024_onfailure_oom("AF024", &[("\n  podFailurePolicy:\n    rules:\n      - action: Ignore\n        onPodConditions:\n          - type: DisruptionTarget\n", "\n"), ("      restartPolicy: Never\n      serviceAccountName: agent\n", "      restartPolicy: OnFailure\n      serviceAccountName: agent\n")], &["AF023", "AF024"])]
#[case::af025_no_ttl("AF025", &[("  ttlSecondsAfterFinished: 3600\n", "")], &["AF025"])]
#[case::af026_grace_too_short("AF026", &[("terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 10")], &["AF026"])]
#[case::af026_checkpoint_not_a_number("AF026", &[("agentfleet.dev/checkpoint-seconds: \"20\"", "agentfleet.dev/checkpoint-seconds: \"20s\"")], &["AF026"])]
#[case::af027_index_not_indexed("AF027", &[("  completionMode: Indexed\n", "")], &["AF027"])]
#[case::af028_scaledjob_condition_without_status("AF028", &[("            - type: DisruptionTarget\n              status: \"True\"\n", "            - type: DisruptionTarget\n")], &["AF028"])]
#[case::af030_default_rollout("AF030", &[("  rollout:\n    strategy: gradual\n", "")], &["AF030"])]
#[case::af031_max_replicas_default("AF031", &[("  maxReplicaCount: 20\n", "")], &["AF031"])]
#[case::af032_amqp_not_accurate("AF032", &[("  scalingStrategy:\n    strategy: accurate\n", "")], &["AF032"])]
#[case::af033_inline_credentials("AF033", &[("        protocol: amqp\n", "        protocol: amqp\n        host: amqp://guest:guest@rabbitmq:5672/\n")], &["AF033"])]
#[case::af034_auth_not_in_input("AF034", &[("        name: rabbitmq-auth\n", "        name: rabbitmq-auth-v2\n")], &["AF034"])]
#[case::af035_trigger_incomplete("AF035", &[("        queueName: agent-tasks\n", "")], &["AF035"])]
#[case::af035_auth_without_host("AF035", &[("    - parameter: host\n", "    - parameter: password\n")], &["AF035"])]
#[case::af040_netpol_selects_nothing("AF040", &[("      app.kubernetes.io/name: agent\n  policyTypes", "      app.kubernetes.io/name: nobody\n  policyTypes")], &["AF040", "AF046"])]
#[case::af041_dns_udp_only("AF041", &[("        - port: 53\n          protocol: TCP\n", "")], &["AF041"])]
#[case::af042_namespace_label_unset("AF042", &[("              kubernetes.io/metadata.name: llm-gateway\n", "              name: llm-gateway\n")], &["AF042"])]
#[case::af043_egress_without_dns("AF043", &[(JOB_DNS_RULE, "    - to: [{ipBlock: {cidr: 192.0.2.0/24}}]\n      ports:\n")], &["AF043"])]
#[case::af044_egress_too_wide("AF044", &[("  egress:\n    - to:\n", "  egress:\n    - to:\n        - ipBlock:\n            cidr: 0.0.0.0/0\n    - to:\n")], &["AF044", "AF045"])]
#[case::af045_dns_any_destination("AF045", &[(JOB_DNS_RULE, "    - ports:\n")], &["AF045"])]
#[case::af046_agent_not_isolated("AF046", &[("      metadata:\n        labels:\n          app.kubernetes.io/name: agent\n", "      metadata:\n        labels:\n          app.kubernetes.io/name: agent-keda\n")], &["AF046"])]
#[case::af047_scrape_blocked("AF047", &[("              kubernetes.io/metadata.name: monitoring\n", "              kubernetes.io/metadata.name: observability\n")], &["AF047"])]
#[case::af050_missing_requests("AF050", &[("\n            requests:\n              cpu: 250m\n              memory: 1Gi\n            limits:\n              memory: 2Gi\n", "\n            limits:\n              memory: 2Gi\n")], &["AF050"])]
#[case::af051_above_limit_range_max("AF051", &[("\n            limits:\n              memory: 2Gi\n", "\n            limits:\n              memory: 2Gi\n              cpu: \"8\"\n")], &["AF051"])]
#[case::af051_below_limit_range_min("AF051", &[("\n            requests:\n              cpu: 250m\n              memory: 1Gi\n            limits:\n              memory: 2Gi\n", "\n            requests:\n              cpu: 250m\n              memory: 32Mi\n            limits:\n              memory: 64Mi\n")], &["AF051"])]
#[case::af052_limit_request_ratio("AF052", &[("\n            limits:\n              memory: 2Gi\n", "\n            limits:\n              memory: 4Gi\n")], &["AF052"])]
#[case::af053_request_exceeds_limit("AF053", &[("\n            requests:\n              cpu: 250m\n              memory: 1Gi\n", "\n            requests:\n              cpu: 250m\n              memory: 3Gi\n")], &["AF053"])]
#[case::af060_run_as_root("AF060", &[("        runAsNonRoot: true\n        runAsUser: 65532\n", "")], &["AF060"])]
#[case::af061_writable_root("AF061", &[("\n            readOnlyRootFilesystem: true\n", "\n")], &["AF061"])]
#[case::af062_privilege_escalation("AF062", &[("\n            allowPrivilegeEscalation: false\n", "\n")], &["AF062"])]
#[case::af063_capabilities("AF063", &[("\n            capabilities:\n              drop: [ALL]\n", "\n")], &["AF063"])]
#[case::af064_seccomp("AF064", &[("\n        seccompProfile:\n          type: RuntimeDefault\n      volumes", "\n      volumes")], &["AF064"])]
#[case::af065_token("AF065", &[("\nautomountServiceAccountToken: false\n", "\n")], &["AF065"])]
#[case::af066_host_network("AF066", &[("      serviceAccountName: agent\n", "      serviceAccountName: agent\n      hostNetwork: true\n")], &["AF066"])]
#[case::af067_latest("AF067", &[("agentfleet-agent:0.1.0\n          ports:", "agentfleet-agent:latest\n          ports:")], &["AF067"])]
#[case::af070_secret_in_env("AF070", &[("            - name: AGENT_LOG\n              value: info\n", "            - name: OPENAI_API_KEY\n              value: sk-live-123\n")], &["AF070"])]
#[case::af070_url_password_in_env("AF070", &[("            - name: AGENT_LOG\n              value: info\n", "            - name: AGENT_QUEUE\n              value: amqp://agent:hunter2@rabbitmq:5672/\n")], &["AF070"])]
#[case::af071_secret_missing("AF071", &[("                  name: agent-secrets\n", "                  name: agent-secret\n")], &["AF071"])]
#[case::af072_pvc_missing("AF072", &[("            claimName: agent-checkpoints\n", "            claimName: checkpoints\n")], &["AF072"])]
#[case::af080_annotations_on_job("AF080", &[("  name: agent-batch\n  namespace: agents\nspec:", "  name: agent-batch\n  namespace: agents\n  annotations:\n    prometheus.io/scrape: \"true\"\nspec:")], &["AF080"])]
#[case::af081_port_undeclared("AF081", &[("prometheus.io/port: \"8080\"", "prometheus.io/port: \"9090\"")], &["AF081"])]
#[case::af090_rwx_unknown_class("AF090", &[("  storageClassName: shared-nfs\n", "  storageClassName: efs\n")], &["AF090"])]
#[case::af090_rwx_default_class("AF090", &[("  storageClassName: shared-nfs\n", "")], &["AF090"])]
fn each_rule_fires_on_its_mistake(
    #[case] rule: &str,
    #[case] edits: &[(&str, &str)],
    #[case] expected: &[&str],
) {
    assert!(
        expected.contains(&rule),
        "the case must expect its own rule"
    );
    let report = common::lint_text("fleet.yaml", &mutate(edits));
    assert_eq!(
        common::fired(&report),
        expected,
        "findings:\n{}",
        common::dump(&report)
    );
}

/// Every rule that is not an input error has at least one case above (input errors are
/// covered by fixtures/lint/, see tests/corpus.rs).
#[test]
fn every_rule_has_a_case() {
    let source = std::fs::read_to_string(common::workspace().join("lint/tests/rules.rs")).unwrap();
    for rule in agentfleet_lint::RULES.iter().filter(|r| !r.input_error) {
        let marker = format!("#[case::{}_", rule.id.to_ascii_lowercase());
        assert!(
            source.contains(&marker),
            "no test case for {} ({})",
            rule.id,
            rule.name
        );
    }
}

#[test]
fn lint_ignore_suppresses_only_the_named_rules() {
    let text = mutate(&[
        ("  ttlSecondsAfterFinished: 3600\n", ""),
        (
            "  name: agent-batch\n  namespace: agents\n",
            "  name: agent-batch\n  namespace: agents\n  annotations:\n    agentfleet.dev/lint-ignore: \"AF025, AF067\"\n",
        ),
        (
            "agentfleet-agent:0.1.0\n          ports:",
            "agentfleet-agent:latest\n          ports:",
        ),
        ("  rollout:\n    strategy: gradual\n", ""),
    ]);
    let report = common::lint_text("fleet.yaml", &text);
    assert_eq!(
        common::fired(&report),
        ["AF030"],
        "{}",
        common::dump(&report)
    );
    let mut suppressed: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.suppressed)
        .map(|f| f.rule.id)
        .collect();
    suppressed.sort_unstable();
    assert_eq!(suppressed, ["AF025", "AF067"]);
}
