//! The agent's configuration, read once from the environment at start.
//!
//! Every knob is an environment variable named in [`agentfleet_protocol::env`], so the
//! manifests, the Docker runtime and `conform` drive the binary the same way. A bad value stops
//! start-up with an error that names the variable, the value (never the broker URL's, which
//! carries a password) and what is expected: an agent that guesses is harder to debug than one
//! that refuses to start.
//!
//! Empty values count as unset: Kubernetes' downward API and `docker run -e NAME=` both produce
//! empty strings for "nothing here".

use std::{ffi::OsString, fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use agentfleet_protocol::{Topology, env};
use lapin::uri::AMQPUri;
use reqwest::Url;

/// Everything the agent reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// This agent's index in the fleet (Indexed Job completion index).
    pub agent_index: u32,
    pub broker: BrokerConfig,
    /// Base URL of the OpenAI-compatible gateway.
    pub gateway_url: Url,
    pub checkpoint_dir: PathBuf,
    pub metrics_addr: SocketAddr,
    pub llm: LlmConfig,
    /// Time allowed between SIGTERM and exit.
    pub stop_grace: Duration,
    /// Exit 0 after this long without a delivery; `None` = never.
    pub idle_exit: Option<Duration>,
    /// Exit 0 after this many tasks were finished (result published or dead-lettered);
    /// `None` = unlimited.
    pub max_tasks: Option<u64>,
    /// `tracing` filter directives.
    pub log_filter: String,
    pub test: TestKnobs,
}

/// Where the broker is and what the agent declares there.
#[derive(Clone)]
pub struct BrokerConfig {
    /// The parsed URL, credentials included. Never printed: see [`BrokerConfig::endpoint`].
    pub uri: AMQPUri,
    pub topology: Topology,
    /// Give up (re)connecting after this long.
    pub deadline: Duration,
}

impl BrokerConfig {
    /// `host:port/vhost`: the part of the broker URL that is safe to log.
    pub fn endpoint(&self) -> String {
        redacted_endpoint(&self.uri)
    }
}

impl fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("endpoint", &self.endpoint())
            .field("topology", &self.topology)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// The broker's address without credentials, for logs and errors: `host:port/vhost`, with
/// the vhost percent-encoded as in the URL (the default vhost `/` shows as `%2f`).
pub fn redacted_endpoint(uri: &AMQPUri) -> String {
    let vhost = uri.vhost.replace('%', "%25").replace('/', "%2f");
    format!("{}:{}/{vhost}", uri.authority.host, uri.authority.port)
}

/// How LLM calls are paced: timeout, backoff, retry budget and circuit breaker.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmConfig {
    pub timeout: Duration,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// `false` retries immediately (the retry-storm scenario's negative control).
    pub backoff_enabled: bool,
    /// Attempts of one call before its step fails; `None` = unlimited.
    pub max_attempts: Option<u32>,
    pub retry_budget_ratio: f64,
    pub retry_budget_min_per_sec: f64,
    pub breaker_failures: u32,
    pub breaker_open: Duration,
}

/// Knobs the scenarios use; off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestKnobs {
    /// Extra delay in every step of every task, after the gateway answered.
    pub step_delay: Duration,
    /// Log SIGTERM and carry on (an agent the platform must SIGKILL at the grace deadline).
    pub ignore_sigterm: bool,
    /// Deliberately break one contract clause, so `agentfleet conform` can show it catches it.
    pub contract_break: Option<ContractBreak>,
}

/// The contract clauses the agent can be told to break (test knob `AGENT_TEST_BREAK`). Each is a
/// bug of the article's agent, reproduced on purpose so conformance fixtures exist for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractBreak {
    /// Exit 0 on SIGTERM even with a task unfinished (the article's `sys.exit(0)`): an Indexed
    /// Job would count the index as complete with its work undone.
    ExitZeroOnSigterm,
    /// Checkpoint only when SIGTERM arrives, not after every step (the article's agent): a
    /// SIGKILL or an OOM kill loses every step since the task started.
    CheckpointOnlyOnSigterm,
    /// Serve no `/metrics`.
    NoMetrics,
}

impl ContractBreak {
    const ALL: [(&'static str, ContractBreak); 3] = [
        ("exit-zero-on-sigterm", ContractBreak::ExitZeroOnSigterm),
        (
            "checkpoint-only-on-sigterm",
            ContractBreak::CheckpointOnlyOnSigterm,
        ),
        ("no-metrics", ContractBreak::NoMetrics),
    ];
}

/// Why the configuration was refused. Every variant names the variable and what it expects.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{var} is not set; expected {expected}")]
    Missing { var: &'static str, expected: String },
    #[error("{var}={value:?} is invalid: expected {expected}")]
    Invalid {
        var: &'static str,
        value: String,
        expected: String,
    },
    /// Like `Invalid`, for variables whose value is a secret and so is not repeated.
    #[error(
        "{var} is invalid ({problem}); the value is not shown because it may carry credentials; expected {expected}"
    )]
    InvalidSecret {
        var: &'static str,
        problem: String,
        expected: String,
    },
    #[error("{var} is not valid UTF-8")]
    NotUnicode { var: &'static str },
    #[error("{var} and {other} disagree: {problem}")]
    Inconsistent {
        var: &'static str,
        other: &'static str,
        problem: String,
    },
}

// Defaults, chosen for a pod with Kubernetes' default 30 s termination grace period and a
// gateway that answers within seconds.
const DEFAULT_CHECKPOINT_DIR: &str = "/checkpoints";
const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:8080";
const DEFAULT_LLM_TIMEOUT_MS: u64 = 30_000;
const DEFAULT_BACKOFF_BASE_MS: u64 = 250;
const DEFAULT_BACKOFF_CAP_MS: u64 = 10_000;
/// Unlimited: a gateway outage is not the task's fault, and failing its step would burn the
/// task's deliveries and dead-letter healthy work. The breaker keeps waiting cheap.
const DEFAULT_LLM_MAX_ATTEMPTS: u32 = 0;
const DEFAULT_RETRY_BUDGET_RATIO: f64 = 0.2;
const DEFAULT_RETRY_BUDGET_MIN_PER_SEC: f64 = 1.0;
const DEFAULT_BREAKER_FAILURES: u32 = 5;
const DEFAULT_BREAKER_OPEN_MS: u64 = 10_000;
/// Below Kubernetes' default 30 s termination grace period, leaving time to close cleanly.
const DEFAULT_STOP_GRACE_MS: u64 = 20_000;
const DEFAULT_BROKER_DEADLINE_SECS: u64 = 60;
const DEFAULT_LOG: &str = "info";

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var_os(name))
    }

    /// Reads the configuration through `lookup`, so tests need not touch the process
    /// environment (which is shared between test threads).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Config, ConfigError> {
        let vars = Vars { lookup: &lookup };
        let topology_default = Topology::default();
        let topology = Topology {
            task_queue: vars.queue_name(env::TASK_QUEUE, &topology_default.task_queue)?,
            result_queue: vars.queue_name(env::RESULT_QUEUE, &topology_default.result_queue)?,
            dead_letter_queue: vars
                .queue_name(env::DEAD_LETTER_QUEUE, &topology_default.dead_letter_queue)?,
            delivery_limit: vars.number(
                env::DELIVERY_LIMIT,
                topology_default.delivery_limit,
                1..=u32::MAX,
                "a number of deliveries >= 1",
            )?,
        };
        check_distinct_queues(&topology)?;

        let backoff_base = vars.millis(env::BACKOFF_BASE_MS, DEFAULT_BACKOFF_BASE_MS, 1)?;
        let backoff_cap = vars.millis(env::BACKOFF_CAP_MS, DEFAULT_BACKOFF_CAP_MS, 1)?;
        if backoff_cap < backoff_base {
            return Err(ConfigError::Inconsistent {
                var: env::BACKOFF_CAP_MS,
                other: env::BACKOFF_BASE_MS,
                problem: format!(
                    "the cap ({} ms) is below the base ({} ms); raise the cap or lower the base",
                    backoff_cap.as_millis(),
                    backoff_base.as_millis()
                ),
            });
        }

        let llm = LlmConfig {
            timeout: vars.millis(env::LLM_TIMEOUT_MS, DEFAULT_LLM_TIMEOUT_MS, 1)?,
            backoff_base,
            backoff_cap,
            backoff_enabled: vars.boolean(env::BACKOFF_ENABLED, true)?,
            max_attempts: non_zero(vars.number(
                env::LLM_MAX_ATTEMPTS,
                DEFAULT_LLM_MAX_ATTEMPTS,
                0..=u32::MAX,
                "a number of attempts (0 = unlimited)",
            )?),
            retry_budget_ratio: vars.fraction(
                env::RETRY_BUDGET_RATIO,
                DEFAULT_RETRY_BUDGET_RATIO,
                false,
                "a finite number >= 0 (retries allowed per first attempt, e.g. 0.2)",
            )?,
            retry_budget_min_per_sec: vars.fraction(
                env::RETRY_BUDGET_MIN_PER_SEC,
                DEFAULT_RETRY_BUDGET_MIN_PER_SEC,
                true,
                // A single agent has one call in flight: with no floor, a retry that finds the
                // bucket empty would wait for a first attempt that can never come.
                "a finite number > 0 (retries per second always allowed, e.g. 1)",
            )?,
            breaker_failures: vars.number(
                env::BREAKER_FAILURES,
                DEFAULT_BREAKER_FAILURES,
                1..=u32::MAX,
                "a number of consecutive failures >= 1",
            )?,
            breaker_open: vars.millis(env::BREAKER_OPEN_MS, DEFAULT_BREAKER_OPEN_MS, 1)?,
        };

        Ok(Config {
            agent_index: agent_index(&vars)?,
            broker: BrokerConfig {
                uri: broker_uri(&vars)?,
                topology,
                deadline: Duration::from_secs(vars.number(
                    env::BROKER_DEADLINE_SECS,
                    DEFAULT_BROKER_DEADLINE_SECS,
                    1..=u64::MAX,
                    "a number of seconds >= 1",
                )?),
            },
            gateway_url: gateway_url(&vars)?,
            checkpoint_dir: PathBuf::from(
                vars.get(env::CHECKPOINT_DIR)?
                    .unwrap_or_else(|| DEFAULT_CHECKPOINT_DIR.to_owned()),
            ),
            metrics_addr: vars.parsed(
                env::METRICS_ADDR,
                DEFAULT_METRICS_ADDR,
                "a socket address such as 0.0.0.0:8080",
            )?,
            llm,
            stop_grace: vars.millis(env::STOP_GRACE_MS, DEFAULT_STOP_GRACE_MS, 0)?,
            idle_exit: non_zero(vars.number(
                env::IDLE_EXIT_SECS,
                0,
                0..=u64::MAX,
                "a number of seconds (0 = never)",
            )?)
            .map(Duration::from_secs),
            max_tasks: non_zero(vars.number(
                env::MAX_TASKS,
                0,
                0..=u64::MAX,
                "a number of tasks (0 = unlimited)",
            )?),
            log_filter: vars
                .get(env::LOG)?
                .unwrap_or_else(|| DEFAULT_LOG.to_owned()),
            test: TestKnobs {
                step_delay: vars.millis(env::TEST_STEP_DELAY_MS, 0, 0)?,
                ignore_sigterm: vars.boolean(env::TEST_IGNORE_SIGTERM, false)?,
                contract_break: vars.contract_break()?,
            },
        })
    }
}

/// The environment seen through a lookup function, with typed readers that produce
/// [`ConfigError`]s naming the variable.
struct Vars<'a> {
    lookup: &'a dyn Fn(&str) -> Option<OsString>,
}

impl Vars<'_> {
    /// The value of `var`, `None` when unset or empty.
    fn get(&self, var: &'static str) -> Result<Option<String>, ConfigError> {
        match (self.lookup)(var) {
            None => Ok(None),
            Some(raw) => {
                let value = raw
                    .into_string()
                    .map_err(|_| ConfigError::NotUnicode { var })?;
                let value = value.trim().to_owned();
                Ok((!value.is_empty()).then_some(value))
            }
        }
    }

    fn number<T>(
        &self,
        var: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
        expected: &str,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Copy,
    {
        let Some(value) = self.get(var)? else {
            return Ok(default);
        };
        match value.parse::<T>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(invalid(var, value, expected)),
        }
    }

    fn millis(&self, var: &'static str, default: u64, min: u64) -> Result<Duration, ConfigError> {
        let expected = if min == 0 {
            "a whole number of milliseconds".to_owned()
        } else {
            format!("a whole number of milliseconds >= {min}")
        };
        self.number(var, default, min..=u64::MAX, &expected)
            .map(Duration::from_millis)
    }

    fn fraction(
        &self,
        var: &'static str,
        default: f64,
        strictly_positive: bool,
        expected: &str,
    ) -> Result<f64, ConfigError> {
        let Some(value) = self.get(var)? else {
            return Ok(default);
        };
        match value.parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 && (!strictly_positive || x > 0.0) => Ok(x),
            _ => Err(invalid(var, value, expected)),
        }
    }

    fn boolean(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var)?.as_deref() {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(invalid(var, other.to_owned(), "`true` or `false`")),
        }
    }

    fn contract_break(&self) -> Result<Option<ContractBreak>, ConfigError> {
        let Some(value) = self.get(env::TEST_BREAK)? else {
            return Ok(None);
        };
        match ContractBreak::ALL.iter().find(|(name, _)| *name == value) {
            Some((_, broken)) => Ok(Some(*broken)),
            None => {
                let names: Vec<&str> = ContractBreak::ALL.iter().map(|(n, _)| *n).collect();
                Err(invalid(
                    env::TEST_BREAK,
                    value,
                    &format!("one of {}", names.join(", ")),
                ))
            }
        }
    }

    fn parsed<T: FromStr>(
        &self,
        var: &'static str,
        default: &str,
        expected: &str,
    ) -> Result<T, ConfigError> {
        let value = self.get(var)?.unwrap_or_else(|| default.to_owned());
        value.parse().map_err(|_| invalid(var, value, expected))
    }

    fn queue_name(&self, var: &'static str, default: &str) -> Result<String, ConfigError> {
        let Some(name) = self.get(var)? else {
            return Ok(default.to_owned());
        };
        // AMQP queue names are short strings; `amq.` is reserved by the broker.
        if name.len() > 255 || name.starts_with("amq.") {
            return Err(invalid(
                var,
                name,
                "a queue name of at most 255 bytes not starting with `amq.`",
            ));
        }
        Ok(name)
    }
}

fn invalid(var: &'static str, value: String, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        var,
        value,
        expected: expected.to_owned(),
    }
}

fn non_zero<T: Default + PartialEq>(n: T) -> Option<T> {
    (n != T::default()).then_some(n)
}

/// `AGENT_INDEX`, else `JOB_COMPLETION_INDEX` (set by Kubernetes for Indexed Jobs).
fn agent_index(vars: &Vars<'_>) -> Result<u32, ConfigError> {
    let expected = "a non-negative integer (the Indexed Job completion index)";
    for var in [env::AGENT_INDEX, env::JOB_COMPLETION_INDEX] {
        if let Some(value) = vars.get(var)? {
            return value.parse().map_err(|_| invalid(var, value, expected));
        }
    }
    Err(ConfigError::Missing {
        var: env::AGENT_INDEX,
        expected: format!(
            "{expected}; set {} or {}",
            env::AGENT_INDEX,
            env::JOB_COMPLETION_INDEX
        ),
    })
}

fn broker_uri(vars: &Vars<'_>) -> Result<AMQPUri, ConfigError> {
    let var = env::QUEUE_URL;
    let expected = "an AMQP URL such as amqp://user:password@rabbitmq:5672/%2f".to_owned();
    let Some(value) = vars.get(var)? else {
        return Err(ConfigError::Missing { var, expected });
    };
    let secret = |problem: &str| ConfigError::InvalidSecret {
        var,
        problem: problem.to_owned(),
        expected: expected.clone(),
    };
    // Parse with `url` first: its errors never echo the input, and it tells IP hosts apart
    // from names (amq-protocol's own parser replaces an IP host with `localhost`).
    let url = Url::parse(&value).map_err(|e| secret(&format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "amqp" | "amqps") {
        return Err(secret(&format!(
            "scheme is `{}`, not amqp or amqps",
            url.scheme()
        )));
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()).map(str::to_owned) else {
        return Err(secret("no host"));
    };
    let mut uri = AMQPUri::from_str(&value)
        .map_err(|_| secret("not a valid AMQP URL (check the port, vhost and query parameters)"))?;
    uri.authority.host = host;
    Ok(uri)
}

fn gateway_url(vars: &Vars<'_>) -> Result<Url, ConfigError> {
    let var = env::GATEWAY_URL;
    let expected = "an http(s) base URL such as http://gateway:8080".to_owned();
    let Some(value) = vars.get(var)? else {
        return Err(ConfigError::Missing { var, expected });
    };
    let url = match Url::parse(&value) {
        Ok(url) => url,
        Err(e) => {
            return Err(ConfigError::InvalidSecret {
                var,
                problem: format!("not a URL: {e}"),
                expected,
            });
        }
    };
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        let problem = format!("scheme `{}` or host missing", url.scheme());
        return Err(ConfigError::InvalidSecret {
            var,
            problem,
            expected,
        });
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::InvalidSecret {
            var,
            problem: "has a query or fragment".to_owned(),
            expected,
        });
    }
    Ok(url)
}

/// Publishing a result into the task queue (or dead letters into it) would loop work forever.
fn check_distinct_queues(t: &Topology) -> Result<(), ConfigError> {
    let pairs = [
        (
            env::RESULT_QUEUE,
            &t.result_queue,
            env::TASK_QUEUE,
            &t.task_queue,
        ),
        (
            env::DEAD_LETTER_QUEUE,
            &t.dead_letter_queue,
            env::TASK_QUEUE,
            &t.task_queue,
        ),
        (
            env::DEAD_LETTER_QUEUE,
            &t.dead_letter_queue,
            env::RESULT_QUEUE,
            &t.result_queue,
        ),
    ];
    for (var, a, other, b) in pairs {
        if a == b {
            return Err(ConfigError::Inconsistent {
                var,
                other,
                problem: format!("both name the queue {a:?}; each queue must be distinct"),
            });
        }
    }
    Ok(())
}

/// The gateway's chat completions endpoint under `base` (which may carry a path prefix).
pub fn chat_completions_url(base: &Url) -> Url {
    let mut url = base.clone();
    let path = format!("{}/v1/chat/completions", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SECRET: &str = "s3cr3t-pa55";

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut map: HashMap<String, String> = HashMap::from([
            (env::AGENT_INDEX.to_owned(), "4".to_owned()),
            (
                env::QUEUE_URL.to_owned(),
                format!("amqp://agent:{SECRET}@10.1.2.3:5673/fleet"),
            ),
            (
                env::GATEWAY_URL.to_owned(),
                "http://gateway:8080".to_owned(),
            ),
        ]);
        for (k, v) in pairs {
            map.insert((*k).to_owned(), (*v).to_owned());
        }
        Config::from_lookup(|name| map.get(name).map(OsString::from))
    }

    #[test]
    fn defaults_apply_when_only_required_variables_are_set() {
        let c = config(&[]).unwrap();
        assert_eq!(c.agent_index, 4);
        assert_eq!(c.broker.topology, Topology::default());
        assert_eq!(c.broker.deadline, Duration::from_secs(60));
        assert_eq!(c.checkpoint_dir, PathBuf::from("/checkpoints"));
        assert_eq!(c.metrics_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.stop_grace, Duration::from_millis(20_000));
        assert_eq!(c.idle_exit, None);
        assert_eq!(c.max_tasks, None);
        assert_eq!(c.llm.max_attempts, None);
        assert!(c.llm.backoff_enabled);
        assert_eq!(c.test, TestKnobs::default());
        assert_eq!(c.log_filter, "info");
    }

    #[test]
    fn broker_url_keeps_ip_hosts_and_logs_no_credentials() {
        let c = config(&[]).unwrap();
        assert_eq!(c.broker.uri.authority.host, "10.1.2.3");
        assert_eq!(c.broker.uri.authority.port, 5673);
        assert_eq!(c.broker.uri.authority.userinfo.password, SECRET);
        assert_eq!(c.broker.endpoint(), "10.1.2.3:5673/fleet");
        let c = config(&[(env::QUEUE_URL, "amqp://u:p@rabbitmq:5672/%2f")]).unwrap();
        assert_eq!(c.broker.endpoint(), "rabbitmq:5672/%2f");
        let debug = format!("{c:?}");
        assert!(
            !debug.contains(SECRET),
            "Debug output leaks the password: {debug}"
        );
    }

    #[test]
    fn index_falls_back_to_job_completion_index() {
        let c = config(&[(env::AGENT_INDEX, ""), (env::JOB_COMPLETION_INDEX, "7")]).unwrap();
        assert_eq!(c.agent_index, 7);
        let c = config(&[(env::AGENT_INDEX, "2"), (env::JOB_COMPLETION_INDEX, "7")]).unwrap();
        assert_eq!(c.agent_index, 2, "AGENT_INDEX wins when both are set");
    }

    #[test]
    fn missing_required_variables_are_named() {
        let err = config(&[(env::AGENT_INDEX, "")]).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Missing {
                    var: "AGENT_INDEX",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("JOB_COMPLETION_INDEX"), "{err}");
        let err = config(&[(env::QUEUE_URL, "")]).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Missing {
                    var: "AGENT_QUEUE_URL",
                    ..
                }
            ),
            "{err}"
        );
        let err = config(&[(env::GATEWAY_URL, "")]).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Missing {
                    var: "AGENT_GATEWAY_URL",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn bad_values_name_the_variable_the_value_and_the_expectation() {
        let err = config(&[(env::LLM_TIMEOUT_MS, "30s")]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("AGENT_LLM_TIMEOUT_MS") && text.contains("\"30s\""),
            "{text}"
        );
        assert!(text.contains("milliseconds"), "{text}");

        let err = config(&[(env::AGENT_INDEX, "-1")]).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    var: "AGENT_INDEX",
                    ..
                }
            ),
            "{err}"
        );
        let err = config(&[(env::BACKOFF_ENABLED, "yes")]).unwrap_err();
        assert!(err.to_string().contains("`true` or `false`"), "{err}");
        let err = config(&[(env::METRICS_ADDR, "8080")]).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    var: "AGENT_METRICS_ADDR",
                    ..
                }
            ),
            "{err}"
        );
        let err = config(&[(env::DELIVERY_LIMIT, "0")]).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    var: "AGENT_DELIVERY_LIMIT",
                    ..
                }
            ),
            "{err}"
        );
        let err = config(&[(env::RETRY_BUDGET_RATIO, "NaN")]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                var: "AGENT_RETRY_BUDGET_RATIO",
                ..
            }
        ));
        let err = config(&[(env::RETRY_BUDGET_MIN_PER_SEC, "0")]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                var: "AGENT_RETRY_BUDGET_MIN_PER_SEC",
                ..
            }
        ));
        let err = config(&[(env::BREAKER_FAILURES, "0")]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                var: "AGENT_BREAKER_FAILURES",
                ..
            }
        ));
        let err = config(&[(env::BROKER_DEADLINE_SECS, "0")]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                var: "AGENT_BROKER_DEADLINE_SECS",
                ..
            }
        ));
    }

    #[test]
    fn a_bad_broker_url_never_echoes_the_password() {
        for url in [
            format!("http://agent:{SECRET}@rabbitmq:5672/"),
            format!("amqp://agent:{SECRET}@rabbitmq:notaport/"),
            format!("amqp://agent:{SECRET}@rabbitmq:5672/?heartbeat=often"),
            format!("agent:{SECRET}"),
        ] {
            let err = config(&[(env::QUEUE_URL, &url)]).unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(
                    err,
                    ConfigError::InvalidSecret {
                        var: "AGENT_QUEUE_URL",
                        ..
                    }
                ),
                "{text}"
            );
            assert!(!text.contains(SECRET), "error leaks the password: {text}");
        }
    }

    #[test]
    fn backoff_cap_below_base_is_refused() {
        let err =
            config(&[(env::BACKOFF_BASE_MS, "500"), (env::BACKOFF_CAP_MS, "100")]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Inconsistent {
                var: "AGENT_BACKOFF_CAP_MS",
                ..
            }
        ));
    }

    #[test]
    fn queues_must_be_distinct() {
        let err = config(&[(env::RESULT_QUEUE, "agent-tasks")]).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Inconsistent {
                    var: "AGENT_RESULT_QUEUE",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn zero_means_never_or_unlimited() {
        let c = config(&[
            (env::IDLE_EXIT_SECS, "30"),
            (env::MAX_TASKS, "5"),
            (env::LLM_MAX_ATTEMPTS, "3"),
            (env::TEST_STEP_DELAY_MS, "1500"),
            (env::TEST_IGNORE_SIGTERM, "true"),
            (env::BACKOFF_ENABLED, "false"),
        ])
        .unwrap();
        assert_eq!(c.idle_exit, Some(Duration::from_secs(30)));
        assert_eq!(c.max_tasks, Some(5));
        assert_eq!(c.llm.max_attempts, Some(3));
        assert!(!c.llm.backoff_enabled);
        assert_eq!(c.test.step_delay, Duration::from_millis(1500));
        assert!(c.test.ignore_sigterm);
        let c = config(&[(env::IDLE_EXIT_SECS, "0"), (env::MAX_TASKS, "0")]).unwrap();
        assert_eq!((c.idle_exit, c.max_tasks), (None, None));
        assert_eq!(c.test.contract_break, None);
    }

    #[test]
    fn contract_break_knob_is_parsed_and_checked() {
        let c = config(&[(env::TEST_BREAK, "checkpoint-only-on-sigterm")]).unwrap();
        assert_eq!(
            c.test.contract_break,
            Some(ContractBreak::CheckpointOnlyOnSigterm)
        );
        let err = config(&[(env::TEST_BREAK, "exit-0")]).err().unwrap();
        let text = err.to_string();
        assert!(
            text.contains("AGENT_TEST_BREAK") && text.contains("exit-zero-on-sigterm"),
            "{text}"
        );
    }

    #[test]
    fn custom_topology_is_read() {
        let c = config(&[
            (env::TASK_QUEUE, "t-x"),
            (env::RESULT_QUEUE, "r-x"),
            (env::DEAD_LETTER_QUEUE, "d-x"),
            (env::DELIVERY_LIMIT, "5"),
        ])
        .unwrap();
        assert_eq!(
            c.broker.topology,
            Topology {
                task_queue: "t-x".into(),
                result_queue: "r-x".into(),
                dead_letter_queue: "d-x".into(),
                delivery_limit: 5
            }
        );
    }

    #[test]
    fn chat_url_keeps_a_path_prefix() {
        let base = Url::parse("http://gw:8080").unwrap();
        assert_eq!(
            chat_completions_url(&base).as_str(),
            "http://gw:8080/v1/chat/completions"
        );
        let base = Url::parse("http://gw:8080/llm/").unwrap();
        assert_eq!(
            chat_completions_url(&base).as_str(),
            "http://gw:8080/llm/v1/chat/completions"
        );
    }
}
