//! What an image declares about itself: the optional clauses it lacks, read from the image
//! label [`OPTIONAL_MISSING_LABEL`] (e.g. `LABEL dev.agentfleet.contract.optional-missing="7,8"`).
//!
//! The label is parsed strictly: a typo must not silently turn a failing clause into a skipped
//! one, so an unknown number, or a required clause declared missing, is an error naming the
//! label and the fix.

use std::collections::BTreeSet;

use super::clause::Clause;

/// Image label listing the optional clauses (by number, comma-separated) the image lacks.
pub const OPTIONAL_MISSING_LABEL: &str = "dev.agentfleet.contract.optional-missing";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error(
        "image label {OPTIONAL_MISSING_LABEL}={value:?}: `{item}` is not a clause number \
         (expected numbers 1-8 separated by commas, e.g. \"7,8\")"
    )]
    NotANumber { value: String, item: String },
    #[error(
        "image label {OPTIONAL_MISSING_LABEL}={value:?}: clause {number} is {}, which is \
         required and cannot be declared missing; optional clauses are {}",
        clause_word(*number),
        optional_list()
    )]
    Required { value: String, number: u8 },
}

fn clause_word(number: u8) -> String {
    Clause::from_number(number).map_or_else(|| "unknown".to_owned(), |c| c.name().to_owned())
}

fn optional_list() -> String {
    Clause::ALL
        .iter()
        .filter(|c| c.is_optional())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses the label's value. An empty value declares nothing.
pub fn parse_optional_missing(value: &str) -> Result<BTreeSet<Clause>, LabelError> {
    let mut missing = BTreeSet::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let not_a_number = || LabelError::NotANumber {
            value: value.to_owned(),
            item: item.to_owned(),
        };
        let number: u8 = item.parse().map_err(|_| not_a_number())?;
        let clause = Clause::from_number(number).ok_or_else(not_a_number)?;
        if !clause.is_optional() {
            return Err(LabelError::Required {
                value: value.to_owned(),
                number,
            });
        }
        missing.insert(clause);
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_optional_clause_numbers_with_spaces() {
        let got = parse_optional_missing(" 7, 8 ,").unwrap();
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            vec![Clause::Observability, Clause::Isolation]
        );
        assert!(parse_optional_missing("").unwrap().is_empty());
    }

    #[test]
    fn refuses_required_and_unknown_clauses_naming_the_label() {
        let err = parse_optional_missing("7,4").unwrap_err();
        assert_eq!(
            err,
            LabelError::Required {
                value: "7,4".into(),
                number: 4
            }
        );
        let text = err.to_string();
        assert!(
            text.contains(OPTIONAL_MISSING_LABEL) && text.contains("termination"),
            "{text}"
        );
        assert!(matches!(
            parse_optional_missing("9"),
            Err(LabelError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_optional_missing("metrics"),
            Err(LabelError::NotANumber { .. })
        ));
    }
}
