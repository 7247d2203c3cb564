//! Kubernetes resource quantities as numbers, for comparing requests, limits and LimitRanges.

/// Parses a quantity (`500m`, `2Gi`, `1.5`, `1e3`, `4000m`) into its value in base units
/// (cores for CPU, bytes for memory). Returns `None` for malformed quantities.
pub fn parse(quantity: &str) -> Option<f64> {
    let q = quantity.trim();
    let suffixes: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024.0_f64.powi(4)),
        ("Pi", 1024.0_f64.powi(5)),
        ("Ei", 1024.0_f64.powi(6)),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (suffix, factor) in suffixes {
        if let Some(number) = q.strip_suffix(suffix) {
            return number_part(number).map(|n| n * factor);
        }
    }
    number_part(q)
}

fn number_part(text: &str) -> Option<f64> {
    if text.is_empty()
        || !text.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '.'))
    {
        return None;
    }
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// `2Gi`-style rendering is the user's own text; this renders computed ratios.
pub fn ratio(limit: f64, request: f64) -> Option<f64> {
    (request > 0.0).then(|| limit / request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_decimal_and_exponent_forms() {
        assert_eq!(parse("500m"), Some(0.5));
        assert_eq!(parse("2Gi"), Some(2.0 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(parse("4000m"), Some(4.0));
        assert_eq!(parse("1e3"), Some(1000.0));
        assert_eq!(parse("1.5"), Some(1.5));
        assert_eq!(parse("128M"), Some(128e6));
        assert_eq!(parse("Gi"), None);
        assert_eq!(parse("lots"), None);
        assert_eq!(ratio(4.0, 2.0), Some(2.0));
        assert_eq!(ratio(4.0, 0.0), None);
    }
}
