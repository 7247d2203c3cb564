//! Property: whatever bytes come in, parsing and linting return findings, never a panic.

mod common;

use agentfleet_lint::source::{Source, decode};
use proptest::prelude::*;

fn lint_bytes(bytes: Vec<u8>) -> agentfleet_lint::LintReport {
    agentfleet_lint::lint(
        &[Source {
            name: "fuzz.yaml".into(),
            text: decode(bytes),
        }],
        "default",
    )
}

/// The seed and clean fixtures, as material to mutate.
fn manifests() -> Vec<String> {
    let ws = common::workspace();
    let mut texts =
        vec![std::fs::read_to_string(ws.join("fixtures/lint/clean-fleet/fleet.yaml")).unwrap()];
    for entry in std::fs::read_dir(ws.join("fixtures/seed/article")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            texts.push(std::fs::read_to_string(path).unwrap());
        }
    }
    texts
}

/// Edits that keep a manifest "almost right", where most parser and decoder branches live.
#[derive(Debug, Clone)]
enum Mutation {
    DeleteByte(usize),
    InsertByte(usize, u8),
    ReplaceByte(usize, u8),
    DuplicateLine(usize),
    Truncate(usize),
    IndentLine(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let structural = prop::sample::select(vec![
        b' ', b'\t', b':', b'-', b'[', b'{', b'"', b'\'', b'#', b'&', b'*', b'\n', b'|', b'>',
        b'!', b'0', 0xff,
    ]);
    prop_oneof![
        any::<usize>().prop_map(Mutation::DeleteByte),
        (any::<usize>(), structural.clone()).prop_map(|(i, b)| Mutation::InsertByte(i, b)),
        (any::<usize>(), structural).prop_map(|(i, b)| Mutation::ReplaceByte(i, b)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 0usize..8).prop_map(|(l, n)| Mutation::IndentLine(l, n)),
    ]
}

fn apply(text: &str, mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for m in mutations {
        let len = bytes.len().max(1);
        match *m {
            Mutation::DeleteByte(i) if !bytes.is_empty() => {
                bytes.remove(i % bytes.len());
            }
            Mutation::InsertByte(i, b) => bytes.insert(i % (bytes.len() + 1), b),
            Mutation::ReplaceByte(i, b) if !bytes.is_empty() => bytes[i % len] = b,
            Mutation::Truncate(i) => bytes.truncate(i % len),
            Mutation::DuplicateLine(l) | Mutation::IndentLine(l, _) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
                if lines.is_empty() {
                    continue;
                }
                let at = l % lines.len();
                match *m {
                    Mutation::DuplicateLine(_) => lines.insert(at, lines[at].clone()),
                    Mutation::IndentLine(_, n) => {
                        lines[at] = format!("{}{}", " ".repeat(n), lines[at])
                    }
                    _ => unreachable!(),
                }
                bytes = lines.join("\n").into_bytes();
            }
            _ => {}
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let report = lint_bytes(bytes);
        for f in &report.findings {
            prop_assert!(f.location.line >= 1 && f.location.column >= 1, "positions are 1-based: {f:?}");
        }
    }

    #[test]
    fn mutated_manifests_never_panic(index in any::<usize>(), mutations in prop::collection::vec(mutation(), 1..6)) {
        let texts = manifests();
        let text = &texts[index % texts.len()];
        let report = lint_bytes(apply(text, &mutations));
        for f in report.findings.iter().filter(|f| f.is_input_error()) {
            prop_assert!(!f.message.is_empty());
            prop_assert!(f.location.line >= 1);
        }
    }
}
