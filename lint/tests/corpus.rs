//! fixtures/lint/: broken YAML and wrong-typed fields. Each file yields a clear input error
//! naming file:line:column, exits 2, and never takes the linter down.

mod common;

use agentfleet_lint::cli::{LintArgs, run_lint_with_stdin};
use rstest::rstest;

#[rstest]
#[case::bad_indentation("bad-indentation.yaml", "AF001", 9, 6, "check this line's indentation")]
#[case::tab_indentation("tab-indentation.yaml", "AF001", 6, 2, "tabs")]
#[case::duplicate_key("duplicate-key.yaml", "AF001", 13, 3, "duplicate key `backoffLimit`")]
#[case::unclosed_quote("unclosed-quote.yaml", "AF001", 4, 9, "unclosed quote")]
#[case::unknown_anchor("unknown-anchor.yaml", "AF001", 5, 11, "unknown anchor")]
#[case::not_utf8("not-utf8.yaml", "AF001", 6, 9, "not valid UTF-8")]
#[case::typo_completion_mode(
    "typo-completion-mode.yaml",
    "AF002",
    6,
    3,
    "unknown field `completionMod` in spec of Job; did you mean `completionMode`?"
)]
#[case::typo_at_depth(
    "typo-at-depth.yaml",
    "AF002",
    17,
    13,
    "`readOnlyRootFilesytem` in spec.template.spec.containers[0].securityContext of Job; did you mean `readOnlyRootFilesystem`?"
)]
#[case::keda_typo("keda-typo.yaml", "AF002", 6, 3, "did you mean `maxReplicaCount`?")]
#[case::string_where_int(
    "string-where-int.yaml",
    "AF003",
    6,
    17,
    "spec.backoffLimit: invalid type: string \"3\", expected i32 (write the number without quotes)"
)]
#[case::int_where_string(
    "int-where-string.yaml",
    "AF003",
    7,
    25,
    "expected a string (quote the value"
)]
#[case::list_where_map(
    "list-where-map.yaml",
    "AF003",
    16,
    13,
    "containers[0].resources: invalid type: sequence"
)]
#[case::unquoted_trigger_value(
    "unquoted-trigger-value.yaml",
    "AF003",
    17,
    16,
    "spec.triggers[0].metadata.value"
)]
#[case::missing_containers(
    "missing-containers.yaml",
    "AF003",
    8,
    7,
    "at least one container is required"
)]
#[case::second_document_broken(
    "second-document-broken.yaml",
    "AF003",
    14,
    13,
    "spec.ports[0].port: invalid type: string \"http\", expected i32"
)]
#[case::unknown_kind(
    "unknown-kind.yaml",
    "AF004",
    2,
    1,
    "unknown kind `Jobb` in batch/v1; did you mean `Job`?"
)]
#[case::missing_apiversion("missing-apiversion.yaml", "AF004", 1, 1, "missing apiVersion")]
#[case::removed_api_version("removed-api-version.yaml", "AF004", 1, 1, "use apiVersion: policy/v1")]
#[case::scalar_document(
    "scalar-document.yaml",
    "AF004",
    2,
    1,
    "document is a string, not an object"
)]
fn broken_input_is_an_error_at_file_line_column(
    #[case] file: &str,
    #[case] rule: &str,
    #[case] line: u32,
    #[case] column: u32,
    #[case] message: &str,
) {
    let path = common::path(&format!("fixtures/lint/{file}"));
    let report = common::lint_paths(std::slice::from_ref(&path));
    let errors: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.is_input_error())
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "exactly one input error expected:\n{}",
        common::dump(&report)
    );
    let error = errors[0];
    assert_eq!(
        (error.rule.id, error.location.line, error.location.column),
        (rule, line, column),
        "{}",
        common::dump(&report)
    );
    assert!(
        error.message.contains(message),
        "message {:?} lacks {message:?}",
        error.message
    );

    // Through the CLI: exit 2, and the human output names file:line:column.
    let mut args = LintArgs::new([path.clone()]);
    args.fail_on = agentfleet_lint::cli::FailOn::Never;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_lint_with_stdin(&args, &mut &b""[..], &mut out, &mut err);
    let out = String::from_utf8(out).unwrap();
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("{path}:{line}:{column}: error[{rule}]")),
        "{out}"
    );
}

/// Every file of the corpus has a case above.
#[test]
fn every_corpus_file_has_a_case() {
    let source = std::fs::read_to_string(common::workspace().join("lint/tests/corpus.rs")).unwrap();
    for entry in std::fs::read_dir(common::workspace().join("fixtures/lint")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            let name = entry.file_name().into_string().unwrap();
            assert!(
                source.contains(&format!("\"{name}\"")),
                "fixtures/lint/{name} has no test case"
            );
        }
    }
}

/// A broken document does not hide the others: the first document of the file still parses.
#[test]
fn other_documents_of_a_broken_file_are_still_read() {
    let report = common::lint_paths(&[common::path("fixtures/lint/second-document-broken.yaml")]);
    assert_eq!(report.objects.len(), 1);
    assert_eq!(report.objects[0].1.name, "fine");
}
