//! The agentfleet harness library.
//!
//! The pieces a scenario is assembled from, each in its own module:
//! - [`docker`]: a thin, typed layer over the Docker Engine API (bollard), event-driven waits;
//! - [`scope`] and [`sweep`]: ownership of everything one test or scenario creates, teardown;
//! - [`services`]: RabbitMQ and the gateway simulator as containers, with their clients;
//! - [`queue`] and [`ledger`]: publishing tasks and accounting for every result and dead letter;
//! - [`request_log`]: what the gateway saw (call gaps, `Retry-After` compliance, rates);
//! - [`agents`] and [`checkpoints`]: launching agent containers and looking into their volume;
//! - [`stack`]: the whole single-broker set-up most agent tests start from;
//! - [`metrics`] and [`wait`]: scraping Prometheus text and waiting on observations with deadlines;
//! - [`runtime`]: the runtime trait scenarios are written against, the reference pod template read
//!   from the manifests, and the Docker runtime (a Job controller stand-in included);
//! - [`scenario`], [`scenarios`] and [`timeline`]: the five scenarios, their single entry point
//!   [`scenarios::run`], their outcome type and the timeline sampled while they run.

pub mod agents;
pub mod checkpoints;
pub mod cluster_cli;
pub mod docker;
pub mod images;
pub mod ledger;
pub mod metrics;
pub mod queue;
pub mod request_log;
pub mod scope;
pub mod services;
pub mod stack;
pub mod sweep;
pub mod tls;
pub mod wait;

pub use scope::Scope;
pub mod conform;
pub mod e2e;
pub mod report;
pub mod runtime;
pub mod scenario;
pub mod scenarios;
pub mod timeline;
