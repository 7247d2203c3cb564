//! The CLI entry points the `agentfleet` binary calls: exit codes, formats, stdin, --explain,
//! and the netpol truth table.

mod common;

use agentfleet_lint::cli::{
    ColorChoice, FailOn, LintArgs, NetpolArgs, NetpolFormat, run_lint_with_stdin,
    run_netpol_with_stdin,
};
use agentfleet_lint::report::Format;

fn run(args: &LintArgs, stdin: &str) -> (u8, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_lint_with_stdin(args, &mut stdin.as_bytes(), &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn seed() -> LintArgs {
    LintArgs::new([common::path("fixtures/seed/article")])
}

#[test]
fn exit_codes_follow_the_fail_on_threshold() {
    assert_eq!(run(&seed(), "").0, 1, "the article has errors");
    let clean = LintArgs::new([common::path("fixtures/lint/clean-fleet")]);
    assert_eq!(run(&clean, "").0, 0);
    let platform = LintArgs::new([
        common::path("manifests/base"),
        common::path("manifests/platform"),
    ]);
    assert_eq!(
        run(&platform, "").0,
        0,
        "reference manifests have no errors"
    );
    let mut seed_never = seed();
    seed_never.fail_on = FailOn::Never;
    assert_eq!(run(&seed_never, "").0, 0);
    let mut seed_info = seed();
    seed_info.fail_on = FailOn::Info;
    assert_eq!(run(&seed_info, "").0, 1);
}

#[test]
fn usage_errors_exit_2_and_name_the_path() {
    let (code, out, err) = run(&LintArgs::new(["does/not/exist.yaml"]), "");
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(
        err.contains("does/not/exist.yaml: no such file or directory"),
        "{err}"
    );
}

#[test]
fn stdin_is_read_for_dash() {
    let (code, out, _) = run(
        &LintArgs::new(["-"]),
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: x}\nspec:\n  completionMod: Indexed\n  template: {spec: {containers: [{name: a, image: a:1}]}}\n",
    );
    assert_eq!(code, 2);
    assert!(
        out.contains("-:5:3: error[AF002] Job x: unknown field `completionMod`"),
        "{out}"
    );
}

#[test]
fn explain_and_list_rules() {
    let mut args = LintArgs::new(Vec::<String>::new());
    args.explain = Some("af011".into());
    let (code, out, _) = run(&args, "");
    assert_eq!(code, 0);
    assert!(
        out.starts_with("AF011 pdb-blocks-job-evictions (error)"),
        "{out}"
    );
    assert!(out.contains("Fix: Use an integer `minAvailable`"), "{out}");
    args.explain = Some("AF999".into());
    let (code, _, err) = run(&args, "");
    assert_eq!(code, 2);
    assert!(err.contains("unknown rule `AF999`"), "{err}");
    args.explain = None;
    args.list_rules = true;
    let (code, out, _) = run(&args, "");
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), agentfleet_lint::RULES.len());
}

#[test]
fn human_output_is_coloured_only_when_asked() {
    let (_, plain, _) = run(&seed(), "");
    assert!(!plain.contains('\x1b'));
    assert!(
        plain.contains(
            "agent-pdb.yaml:8:3: error[AF011] PodDisruptionBudget agents/agent-pdb: maxUnavailable"
        ),
        "{plain}"
    );
    assert!(
        plain.contains("    fix: Use an integer `minAvailable`"),
        "{plain}"
    );
    assert!(
        plain.contains("3 errors, 24 warnings, 4 info in 7 files (7 objects)"),
        "{plain}"
    );
    let mut args = seed();
    args.color = ColorChoice::Always;
    let (_, coloured, _) = run(&args, "");
    assert!(coloured.contains("\x1b[1;31merror\x1b[0m"), "{coloured}");
}

#[test]
fn json_lists_every_finding_with_a_summary() {
    let mut args = seed();
    args.format = Format::Json;
    let (code, out, _) = run(&args, "");
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["summary"]["errors"], 3);
    let findings = doc["findings"].as_array().unwrap();
    let pdb = findings.iter().find(|f| f["rule"] == "AF011").unwrap();
    assert_eq!(pdb["severity"], "error");
    assert_eq!(pdb["line"], 8);
    assert_eq!(pdb["object"]["kind"], "PodDisruptionBudget");
    assert_eq!(pdb["object"]["namespace"], "agents");
    assert!(
        pdb["file"]
            .as_str()
            .unwrap()
            .ends_with("fixtures/seed/article/agent-pdb.yaml")
    );
}

#[test]
fn sarif_is_a_2_1_0_log_with_rules_and_located_results() {
    let mut args = seed();
    args.format = Format::Sarif;
    let (_, out, _) = run(&args, "");
    let log: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(log["version"], "2.1.0");
    let run = &log["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), agentfleet_lint::RULES.len());
    let results = run["results"].as_array().unwrap();
    let pdb = results.iter().find(|r| r["ruleId"] == "AF011").unwrap();
    let index = pdb["ruleIndex"].as_u64().unwrap() as usize;
    assert_eq!(rules[index]["id"], "AF011", "ruleIndex points at the rule");
    assert_eq!(rules[index]["defaultConfiguration"]["level"], "error");
    assert_eq!(pdb["level"], "error");
    let region = &pdb["locations"][0]["physicalLocation"]["region"];
    assert_eq!(
        (region["startLine"].as_u64(), region["startColumn"].as_u64()),
        (Some(8), Some(3))
    );
    assert!(
        pdb["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap()
            .ends_with("fixtures/seed/article/agent-pdb.yaml")
    );
    assert_eq!(
        pdb["locations"][0]["logicalLocations"][0]["fullyQualifiedName"],
        "agents/PodDisruptionBudget/agent-pdb"
    );
    let info = results.iter().find(|r| r["ruleId"] == "AF071").unwrap();
    assert_eq!(info["level"], "note");
}

#[test]
fn junit_has_a_test_case_per_object_failing_at_the_threshold() {
    let mut args = seed();
    args.format = Format::Junit;
    let (_, out, _) = run(&args, "");
    assert!(
        out.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites"),
        "{out}"
    );
    assert_eq!(out.matches("<testcase ").count(), 7, "{out}");
    assert!(
        out.contains(r#"tests="7" failures="2" errors="0""#),
        "PDB and NetworkPolicy have errors: {out}"
    );
    assert_eq!(out.matches("<failure ").count(), 2, "{out}");
    assert!(out.contains(r#"<failure type="AF011""#), "{out}");
    assert_eq!(
        out.matches("<testcase").count(),
        out.matches("</testcase>").count() + out.matches("\"/>").count(),
        "{out}"
    );

    let mut broken = LintArgs::new([common::path("fixtures/lint/unclosed-quote.yaml")]);
    broken.format = Format::Junit;
    let (code, out, _) = run(&broken, "");
    assert_eq!(code, 2);
    assert!(
        out.contains(r#"errors="1""#)
            && out.contains(r#"<error type="AF001" message="unclosed quote">"#),
        "{out}"
    );
}

const FLEET: &str = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: agent, namespace: agents}\nspec:\n  template:\n    metadata: {labels: {app: agent}}\n    spec:\n      restartPolicy: Never\n      containers: [{name: a, image: a:1}]\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: iso, namespace: agents}\nspec:\n  podSelector: {matchLabels: {app: agent}}\n  policyTypes: [Egress]\n  egress:\n    - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: llm-gateway}}}]\n";

#[test]
fn netpol_prints_the_truth_table_and_json() {
    let args = NetpolArgs::new(["-"]);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(
        run_netpol_with_stdin(&args, &mut FLEET.as_bytes(), &mut out, &mut err),
        0
    );
    let table = String::from_utf8(out).unwrap();
    assert!(
        table.contains("Job agents/agent -> outside:443/TCP: denied by egress of agents/iso"),
        "{table}"
    );
    assert!(table.contains("gateway:8080/TCP *"), "{table}");

    let mut args = NetpolArgs::new(["-"]);
    args.format = NetpolFormat::Json;
    let mut out = Vec::new();
    assert_eq!(
        run_netpol_with_stdin(&args, &mut FLEET.as_bytes(), &mut out, &mut err),
        0
    );
    let matrix: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let cols = matrix["cols"].as_array().unwrap();
    let rows = matrix["rows"].as_array().unwrap();
    let r = rows
        .iter()
        .position(|e| e["name"] == "Job agents/agent")
        .unwrap();
    let gateway = cols.iter().position(|e| e["role"] == "gateway").unwrap();
    let outside = cols.iter().position(|e| e["role"] == "outside").unwrap();
    let allowed = &matrix["cells"][r][gateway];
    assert_eq!(allowed["allowed"], true);
    assert_eq!(allowed["egress"]["decision"], "allowed");
    assert_eq!(allowed["egress"]["policy"]["name"], "iso");
    let denied = &matrix["cells"][r][outside];
    assert_eq!(denied["allowed"], false);
    assert_eq!(denied["egress"]["decision"], "denied");
    assert_eq!(denied["ingress"]["decision"], "not-isolated");
}

#[test]
fn netpol_refuses_broken_input() {
    let args = NetpolArgs::new([common::path("fixtures/lint/typo-completion-mode.yaml")]);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(
        run_netpol_with_stdin(&args, &mut &b""[..], &mut out, &mut err),
        2
    );
    let err = String::from_utf8(err).unwrap();
    assert!(
        err.contains("typo-completion-mode.yaml:6:3: error[AF002]"),
        "{err}"
    );
    assert!(out.is_empty());
}
