//! Reading Prometheus text exposition: scraping an endpoint and looking up samples.
//!
//! Only what assertions need: sample name, labels, value. Types, help text, timestamps and
//! exemplars are ignored.

use std::collections::BTreeMap;
use std::fmt;

/// One sample line: `name{label="value",...} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    samples: Vec<Sample>,
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot scrape {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("line {line} of the exposition is not a valid sample ({problem}): {text}")]
    Parse {
        line: usize,
        problem: &'static str,
        text: String,
    },
}

impl Metrics {
    /// Parses Prometheus text format (0.0.4; OpenMetrics' `# EOF` is accepted).
    pub fn parse(text: &str) -> Result<Metrics, MetricsError> {
        let mut samples = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |problem| MetricsError::Parse {
                line: index + 1,
                problem,
                text: raw.to_owned(),
            };
            samples.push(parse_sample(line).map_err(error)?);
        }
        Ok(Metrics { samples })
    }

    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// Samples named `name` whose labels include every `(key, value)` of `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|have| have == v))
        })
    }

    /// The value of the one sample named `name` with (at least) these labels; `None` when there
    /// is none. With several matches, their sum (e.g. a counter over all its `model`s).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut matches = self.matching(name, labels).peekable();
        matches.peek()?;
        Some(matches.map(|s| s.value).sum())
    }

    /// Like [`Self::value`], with 0 for a missing series (a counter never incremented is often
    /// not exported at all).
    pub fn value_or_zero(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or(0.0)
    }

    /// True when some sample belongs to `family`: named `family` itself or `family` plus one of
    /// the suffixes exposition adds (`_total`, `_bucket`, `_sum`, `_count`, `_created`, `_info`).
    pub fn has_family(&self, family: &str) -> bool {
        const SUFFIXES: [&str; 7] = [
            "", "_total", "_bucket", "_sum", "_count", "_created", "_info",
        ];
        self.samples.iter().any(|s| {
            s.name
                .strip_prefix(family)
                .is_some_and(|rest| SUFFIXES.contains(&rest))
        })
    }
}

impl fmt::Display for Metrics {
    /// The samples whose name starts with a given prefix are what matters in a message; this
    /// prints all of them compactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.samples {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            writeln!(f, "{}{{{}}} {}", s.name, labels.join(","), s.value)?;
        }
        Ok(())
    }
}

fn parse_sample(line: &str) -> Result<Sample, &'static str> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty() {
        return Err("empty metric name");
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = parse_labels(after_brace, &mut labels)?;
    }
    let value_text = rest.split_whitespace().next().ok_or("no value")?;
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| "value is not a number")?,
    };
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses `key="value",...}` and returns what follows the closing brace.
fn parse_labels<'a>(
    mut rest: &'a str,
    labels: &mut BTreeMap<String, String>,
) -> Result<&'a str, &'static str> {
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let eq = rest.find('=').ok_or("label without '='")?;
        let key = rest[..eq].trim().to_owned();
        rest = rest[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated escape in label value"),
                },
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value"),
            }
        };
        labels.insert(key, value);
        rest = &rest[end + 1..];
    }
}

/// Fetches and parses `url` (e.g. `http://127.0.0.1:49153/metrics`).
pub async fn scrape(http: &reqwest::Client, url: &str) -> Result<Metrics, MetricsError> {
    let http_error = |source| MetricsError::Http {
        url: url.to_owned(),
        source,
    };
    let response = http.get(url).send().await.map_err(http_error)?;
    let status = response.status();
    let body = response.text().await.map_err(http_error)?;
    if !status.is_success() {
        return Err(MetricsError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
            body,
        });
    }
    Metrics::parse(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP agent_tasks_completed_total Tasks.
# TYPE agent_tasks_completed_total counter
agent_tasks_completed_total{status="success"} 3
agent_tasks_completed_total{status="dead_lettered"} 1
agent_llm_tokens_total{model="m1"} 120
agent_llm_tokens_total{model="m2"} 30
agent_breaker_state 2
agent_task_duration_seconds_bucket{le="+Inf"} 4
agent_odd{path="a \"quoted\" \\ back, slash",x="y"} 1.5e3 1700000000000
# EOF
"#;

    #[test]
    fn looks_up_values_by_labels() {
        let m = Metrics::parse(TEXT).unwrap();
        assert_eq!(
            m.value("agent_tasks_completed_total", &[("status", "success")]),
            Some(3.0)
        );
        assert_eq!(m.value("agent_llm_tokens_total", &[]), Some(150.0));
        assert_eq!(
            m.value("agent_llm_tokens_total", &[("model", "m2")]),
            Some(30.0)
        );
        assert_eq!(m.value("agent_breaker_state", &[]), Some(2.0));
        assert_eq!(m.value("agent_missing_total", &[]), None);
        assert_eq!(m.value_or_zero("agent_missing_total", &[]), 0.0);
        assert_eq!(
            m.value("agent_task_duration_seconds_bucket", &[("le", "+Inf")]),
            Some(4.0)
        );
    }

    #[test]
    fn unescapes_label_values_and_ignores_timestamps() {
        let m = Metrics::parse(TEXT).unwrap();
        assert_eq!(
            m.value("agent_odd", &[("path", r#"a "quoted" \ back, slash"#)]),
            Some(1500.0)
        );
    }

    #[test]
    fn knows_families() {
        let m = Metrics::parse(TEXT).unwrap();
        assert!(m.has_family("agent_task_duration_seconds"));
        assert!(m.has_family("agent_tasks_completed"));
        assert!(!m.has_family("agent_task"));
    }

    #[test]
    fn reports_the_bad_line() {
        let err = Metrics::parse("ok 1\nbroken{a=\"x} 2\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        let err = Metrics::parse("novalue\n").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        let err = Metrics::parse("x abc\n").unwrap_err();
        assert!(err.to_string().contains("not a number"), "{err}");
    }
}
