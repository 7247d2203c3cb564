//! JSON-lines logs on stdout: one flat object per event.
//!
//! Every line carries `agent_index` (written by the formatter itself, so lines from
//! dependencies and background tasks have it too) and, inside a task, the fields of the
//! enclosing spans (`task_id`). Flat keys keep `jq 'select(.task_id=="t-1")'` and log
//! pipelines simple; tracing-subscriber's stock JSON format nests span fields instead.
//!
//! Nothing here may print the broker URL: the modules that log the broker use
//! [`crate::config::BrokerConfig::endpoint`].

use std::fmt;

use serde_json::{Map, Value};
use tracing::{
    Event, Level, Metadata, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    EnvFilter, Layer,
    filter::{FilterExt, filter_fn},
    fmt::MakeWriter,
    fmt::{
        FmtContext, FormatEvent, FormattedFields,
        format::{JsonFields, Writer},
        time::{FormatTime, SystemTime},
    },
    layer::SubscriberExt,
    registry::LookupSpan,
    util::SubscriberInitExt,
};

/// Formats events as flat JSON objects with the agent index.
#[derive(Debug, Clone)]
pub struct JsonLines {
    agent_index: Option<u32>,
}

impl JsonLines {
    pub fn new(agent_index: Option<u32>) -> JsonLines {
        JsonLines { agent_index }
    }
}

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        line.insert("timestamp".into(), Value::String(timestamp));
        line.insert(
            "level".into(),
            Value::String(event.metadata().level().to_string()),
        );
        line.insert(
            "target".into(),
            Value::String(event.metadata().target().to_owned()),
        );
        line.insert(
            "agent_index".into(),
            self.agent_index.map_or(Value::Null, Value::from),
        );
        // Span fields, outermost first, so inner spans win on a clash.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<JsonFields>>() else {
                    continue;
                };
                if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(fields) {
                    line.extend(map);
                }
            }
        }
        event.record(&mut FieldVisitor(&mut line));
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Collects an event's fields into the JSON object, typed where tracing gives types.
struct FieldVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for FieldVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().into(), Value::from(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::from(format!("{value:?}")));
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error(
        "AGENT_LOG={filter:?} is not a valid log filter: {reason}; expected e.g. `info` or `info,agent=debug`"
    )]
    Filter { filter: String, reason: String },
    #[error("a global logger is already installed")]
    AlreadyInstalled,
}

/// Installs the JSON-lines subscriber on stdout with `filter` (`AGENT_LOG` syntax).
pub fn init(filter: &str, agent_index: Option<u32>) -> Result<(), LoggingError> {
    tracing_subscriber::registry()
        .with(json_layer(filter, agent_index, std::io::stdout)?)
        .try_init()
        .map_err(|_| LoggingError::AlreadyInstalled)
}

/// The formatting layer with its filter, writing to `writer` (stdout, or a buffer in tests).
fn json_layer<S, W>(
    filter: &str,
    agent_index: Option<u32>,
    writer: W,
) -> Result<impl Layer<S>, LoggingError>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let env_filter = EnvFilter::builder()
        .parse(filter)
        .map_err(|e| LoggingError::Filter {
            filter: filter.to_owned(),
            reason: e.to_string(),
        })?;
    Ok(tracing_subscriber::fmt::layer()
        .fmt_fields(JsonFields::new())
        .event_format(JsonLines::new(agent_index))
        .with_writer(writer)
        .with_filter(env_filter.and(filter_fn(never_logs_secrets))))
}

/// amq-protocol-tcp traces the whole broker URI, password included, when it connects: drop
/// its trace events whatever `AGENT_LOG` asks for.
fn never_logs_secrets(metadata: &Metadata<'_>) -> bool {
    !(metadata.target().starts_with("amq_protocol_tcp") && *metadata.level() == Level::TRACE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing::{info, info_span};

    /// Captures formatted output in memory.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_flat_json_with_agent_index_and_task_id() {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::registry()
            .with(json_layer("info", Some(3), move || writer.clone()).unwrap());
        tracing::subscriber::with_default(subscriber, || {
            info!("outside");
            let span = info_span!("task", task_id = "t-42");
            let _entered = span.enter();
            info!(step = 2u32, ok = true, "inside");
        });
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["agent_index"], 3);
        assert_eq!(lines[0]["message"], "outside");
        assert!(lines[0].get("task_id").is_none());
        assert_eq!(lines[1]["agent_index"], 3);
        assert_eq!(lines[1]["task_id"], "t-42");
        assert_eq!(lines[1]["step"], 2);
        assert_eq!(lines[1]["ok"], true);
        assert_eq!(lines[1]["level"], "INFO");
        assert!(
            lines[1]["timestamp"]
                .as_str()
                .is_some_and(|t| t.contains('T'))
        );
    }

    #[test]
    fn broker_connection_traces_are_dropped_even_at_trace_level() {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::registry()
            .with(json_layer("trace", Some(0), move || writer.clone()).unwrap());
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "amq_protocol_tcp", uri = "amqp://u:secret@h", "Connecting.");
            tracing::debug!(target: "amq_protocol_tcp", "kept");
            tracing::trace!(target: "lapin::channel", "kept too");
        });
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("secret"), "{text}");
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[test]
    fn a_bad_filter_names_the_variable() {
        let err = init("info,=[", Some(0)).unwrap_err();
        assert!(err.to_string().contains("AGENT_LOG"), "{err}");
    }
}
