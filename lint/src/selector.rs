//! Kubernetes label selector semantics.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

pub type Labels = BTreeMap<String, String>;

/// Whether `selector` selects an object with `labels`. An empty selector (`{}`) selects
/// everything; `matchLabels` and every `matchExpressions` entry must all hold. An unknown
/// operator selects nothing, as the API server would refuse it.
pub fn matches(selector: &LabelSelector, labels: &Labels) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    let by_expressions = selector.match_expressions.iter().flatten().all(|expr| {
        let values = expr.values.as_deref().unwrap_or_default();
        let actual = labels.get(&expr.key);
        match expr.operator.as_str() {
            "In" => actual.is_some_and(|v| values.contains(v)),
            "NotIn" => actual.is_none_or(|v| !values.contains(v)),
            "Exists" => actual.is_some(),
            "DoesNotExist" => actual.is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}

/// Whether the selector has no requirement at all (`{}` selects every pod or namespace).
pub fn is_empty(selector: &LabelSelector) -> bool {
    selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
}

/// `app=ai-agent, tier in (a,b)`, for messages.
pub fn describe(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for expr in selector.match_expressions.iter().flatten() {
        let values = expr.values.as_deref().unwrap_or_default().join(",");
        parts.push(match expr.operator.as_str() {
            "Exists" => expr.key.clone(),
            "DoesNotExist" => format!("!{}", expr.key),
            op => format!("{} {} ({values})", expr.key, op.to_ascii_lowercase()),
        });
    }
    if parts.is_empty() {
        "{} (everything)".to_owned()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn expr(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
        }
    }

    #[test]
    fn match_labels_and_expressions_all_have_to_hold() {
        let pod = labels(&[("app", "agent"), ("tier", "batch")]);
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "agent")])),
            match_expressions: None,
        };
        assert!(matches(&sel, &pod));
        assert!(!matches(&sel, &labels(&[("app", "other")])));
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "agent")])),
            match_expressions: Some(vec![
                expr("tier", "In", &["batch"]),
                expr("gpu", "DoesNotExist", &[]),
            ]),
        };
        assert!(matches(&sel, &pod));
        let sel = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![expr("tier", "NotIn", &["batch"])]),
        };
        assert!(!matches(&sel, &pod));
        assert!(
            matches(&LabelSelector::default(), &pod),
            "an empty selector selects everything"
        );
        let bogus = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![expr("tier", "Like", &["b"])]),
        };
        assert!(!matches(&bogus, &pod));
        assert_eq!(describe(&LabelSelector::default()), "{} (everything)");
    }
}
