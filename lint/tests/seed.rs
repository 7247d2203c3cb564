//! The article's manifests (fixtures/seed): each real bug is caught by the exact rule on the
//! exact object and line, and nothing fires on what the article gets right.

mod common;

use std::collections::BTreeMap;

use agentfleet_lint::LintReport;

fn article() -> LintReport {
    common::lint_paths(&[common::path("fixtures/seed/article")])
}

/// Findings as (file name, object, rule) -> lines.
fn by_object(report: &LintReport) -> BTreeMap<(String, String, &'static str), Vec<u32>> {
    let mut map: BTreeMap<_, Vec<u32>> = BTreeMap::new();
    for f in report.findings.iter().filter(|f| !f.suppressed) {
        let file = f
            .location
            .file
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let object = f
            .object
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        map.entry((file, object, f.rule.id))
            .or_default()
            .push(f.location.line);
    }
    map
}

fn assert_finding(report: &LintReport, file: &str, object: &str, rule: &str, line: u32) {
    let map = by_object(report);
    let lines = map
        .get(&(file.to_owned(), object.to_owned(), rule))
        .cloned()
        .unwrap_or_default();
    assert!(
        lines.contains(&line),
        "expected {rule} on {object} at {file}:{line}; got lines {lines:?}\n{}",
        common::dump(report)
    );
}

#[test]
fn the_pdb_blocks_every_eviction_of_job_pods() {
    let report = article();
    assert_finding(
        &report,
        "agent-pdb.yaml",
        "PodDisruptionBudget agents/agent-pdb",
        "AF011",
        8,
    );
    let f = report
        .findings
        .iter()
        .find(|f| f.rule.id == "AF011")
        .unwrap();
    assert!(
        f.message.contains("maxUnavailable \"10%\"") && f.message.contains("429"),
        "{}",
        f.message
    );
}

#[test]
fn the_pdb_and_netpol_select_labels_that_sit_on_the_job_not_its_pods() {
    let report = article();
    assert_finding(
        &report,
        "agent-pdb.yaml",
        "PodDisruptionBudget agents/agent-pdb",
        "AF010",
        9,
    );
    assert_finding(
        &report,
        "agent-netpol.yaml",
        "NetworkPolicy agents/agent-isolation",
        "AF040",
        8,
    );
    let f = report
        .findings
        .iter()
        .find(|f| f.rule.id == "AF040")
        .unwrap();
    assert!(
        f.message
            .contains("Job default/agent-batch-run carries the labels on its own metadata"),
        "{}",
        f.message
    );
    // ... so the agents run unisolated.
    assert_finding(
        &report,
        "agent-job.yaml",
        "Job agent-batch-run",
        "AF046",
        16,
    );
    assert_finding(
        &report,
        "agent-scaledjob.yaml",
        "ScaledJob agents/agent-scaledjob",
        "AF046",
        10,
    );
}

#[test]
fn the_netpol_allows_dns_on_udp_only_and_selects_namespaces_by_an_unset_label() {
    let report = article();
    assert_finding(
        &report,
        "agent-netpol.yaml",
        "NetworkPolicy agents/agent-isolation",
        "AF041",
        14,
    );
    assert_finding(
        &report,
        "agent-netpol.yaml",
        "NetworkPolicy agents/agent-isolation",
        "AF042",
        18,
    );
    assert_finding(
        &report,
        "agent-netpol.yaml",
        "NetworkPolicy agents/agent-isolation",
        "AF042",
        21,
    );
    assert_finding(
        &report,
        "agent-netpol.yaml",
        "NetworkPolicy agents/agent-isolation",
        "AF045",
        22,
    );
}

#[test]
fn the_scaledjob_deletes_running_jobs_on_change_and_under_scales_over_amqp() {
    let report = article();
    assert_finding(
        &report,
        "agent-scaledjob.yaml",
        "ScaledJob agents/agent-scaledjob",
        "AF030",
        7,
    );
    assert_finding(
        &report,
        "agent-scaledjob.yaml",
        "ScaledJob agents/agent-scaledjob",
        "AF032",
        28,
    );
}

#[test]
fn on_failure_restarts_and_evictions_burn_the_backoff_limit() {
    let report = article();
    assert_finding(
        &report,
        "agent-job.yaml",
        "Job agent-batch-run",
        "AF024",
        17,
    );
    assert_finding(
        &report,
        "agent-scaledjob.yaml",
        "ScaledJob agents/agent-scaledjob",
        "AF024",
        21,
    );
    assert_finding(&report, "agent-job.yaml", "Job agent-batch-run", "AF023", 9);
    assert_finding(
        &report,
        "agent-scaledjob.yaml",
        "ScaledJob agents/agent-scaledjob",
        "AF023",
        8,
    );
}

#[test]
fn the_rwx_claim_names_a_storage_class_nothing_defines() {
    assert_finding(
        &article(),
        "agent-pvc.yaml",
        "PersistentVolumeClaim agents/agent-checkpoints",
        "AF090",
        13,
    );
}

#[test]
fn the_job_has_no_namespace_and_its_secret_is_not_in_the_input() {
    let report = article();
    assert_finding(&report, "agent-job.yaml", "Job agent-batch-run", "AF006", 4);
    assert_finding(
        &report,
        "agent-job.yaml",
        "Job agent-batch-run",
        "AF071",
        36,
    );
    assert_finding(
        &report,
        "rabbitmq-auth.yaml",
        "TriggerAuthentication agents/rabbitmq-auth",
        "AF071",
        10,
    );
}

/// The complete list: any new finding on the article is either a newly caught bug (add it
/// here) or a false positive (fix the rule).
#[test]
fn exactly_these_rules_fire_on_the_article() {
    let security = ["AF060", "AF061", "AF062", "AF063", "AF064", "AF065"];
    let mut expected: Vec<(&str, &str, &str)> = Vec::new();
    for rule in ["AF006", "AF023", "AF024", "AF046", "AF071"]
        .into_iter()
        .chain(security)
    {
        expected.push(("agent-job.yaml", "Job agent-batch-run", rule));
    }
    for rule in ["AF023", "AF024", "AF030", "AF032", "AF046"]
        .into_iter()
        .chain(security)
    {
        expected.push((
            "agent-scaledjob.yaml",
            "ScaledJob agents/agent-scaledjob",
            rule,
        ));
    }
    for rule in ["AF040", "AF041", "AF042", "AF045"] {
        expected.push((
            "agent-netpol.yaml",
            "NetworkPolicy agents/agent-isolation",
            rule,
        ));
    }
    expected.push((
        "agent-pdb.yaml",
        "PodDisruptionBudget agents/agent-pdb",
        "AF010",
    ));
    expected.push((
        "agent-pdb.yaml",
        "PodDisruptionBudget agents/agent-pdb",
        "AF011",
    ));
    expected.push((
        "agent-pvc.yaml",
        "PersistentVolumeClaim agents/agent-checkpoints",
        "AF090",
    ));
    expected.push((
        "rabbitmq-auth.yaml",
        "TriggerAuthentication agents/rabbitmq-auth",
        "AF071",
    ));
    expected.sort_unstable();

    let report = article();
    let mut actual: Vec<(String, String, &str)> = by_object(&report).into_keys().collect();
    actual.sort_unstable();
    let actual_ref: Vec<(&str, &str, &str)> = actual
        .iter()
        .map(|(f, o, r)| (f.as_str(), o.as_str(), *r))
        .collect();
    assert_eq!(actual_ref, expected, "\n{}", common::dump(&report));
    assert_eq!(report.objects.len(), 7, "all seven article objects parse");
}

/// What the article gets right stays quiet: the LimitRange bounds hold, resources are set,
/// the image is pinned, the trigger authenticates through a TriggerAuthentication, the Job is
/// Indexed with a TTL, and maxReplicaCount is set.
#[test]
fn no_false_positives_on_what_the_article_does_right() {
    let fired = common::fired(&article());
    for quiet in [
        "AF025", "AF027", "AF031", "AF033", "AF034", "AF035", "AF050", "AF051", "AF052", "AF053",
        "AF067", "AF070", "AF020", "AF021", "AF022",
    ] {
        assert!(!fired.contains(&quiet), "{quiet} fired on the article");
    }
}

/// The article's later snippets (checkpoint volume, metrics port, Prometheus annotations)
/// applied as it words them: the annotations end up on the Job, where Prometheus never sees
/// them; the metrics port they name does exist.
#[test]
fn the_assembled_job_puts_scrape_annotations_on_the_job() {
    let mut paths: Vec<String> = [
        "agent-scaledjob.yaml",
        "rabbitmq-auth.yaml",
        "agent-pdb.yaml",
        "namespace-limits.yaml",
        "agent-netpol.yaml",
        "agent-pvc.yaml",
    ]
    .iter()
    .map(|f| common::path(&format!("fixtures/seed/article/{f}")))
    .collect();
    paths.push(common::path(
        "fixtures/seed/assembled/agent-job-assembled.yaml",
    ));
    let report = common::lint_paths(&paths);
    for line in [14, 15, 16] {
        assert_finding(
            &report,
            "agent-job-assembled.yaml",
            "Job agent-batch-run",
            "AF080",
            line,
        );
    }
    assert!(
        !common::fired(&report).contains(&"AF081"),
        "port 8080 is declared: {}",
        common::dump(&report)
    );
    // The claim exists, but in namespace agents, not where the namespace-less Job lands.
    assert_finding(
        &report,
        "agent-job-assembled.yaml",
        "Job agent-batch-run",
        "AF072",
        29,
    );
    let f = report
        .findings
        .iter()
        .find(|f| f.rule.id == "AF072")
        .unwrap();
    assert!(
        f.message.contains("there is one in namespace agents"),
        "{}",
        f.message
    );
    // Linted with -n agents, the claim resolves.
    let sources = agentfleet_lint::source::load(&paths, &mut &b""[..]).unwrap();
    let in_agents = agentfleet_lint::lint(&sources, "agents");
    assert!(
        !common::fired(&in_agents).contains(&"AF072"),
        "{}",
        common::dump(&in_agents)
    );
}

/// The snippets are kept verbatim as fragments; a directory walk does not pick them up.
#[test]
fn snippet_fragments_are_not_linted_as_manifests() {
    let dir = common::workspace().join("fixtures/seed/article/snippets");
    let fragments: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(fragments.len(), 3, "{fragments:?}");
    assert!(fragments.iter().all(|f| f.ends_with(".fragment")));
    let report = article();
    assert!(
        report
            .findings
            .iter()
            .all(|f| !f.location.file.contains("snippets"))
    );
}
