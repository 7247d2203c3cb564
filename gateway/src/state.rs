//! Everything the HTTP handlers share: the fault engine, the request log and the metrics.

use std::time::{Duration, Instant};

use agentfleet_protocol::gateway::{FaultProfile, RequestRecord};

use crate::engine::FaultEngine;
use crate::metrics::GatewayMetrics;
use crate::request_log::RequestLog;
use crate::validate::InvalidProfile;

/// Default bound of the request log: about 100 MB of records, hours of a busy fleet.
pub const DEFAULT_REQUEST_LOG_CAPACITY: usize = 1_000_000;

#[derive(Debug)]
pub struct GatewayState {
    pub engine: FaultEngine,
    pub request_log: RequestLog,
    pub metrics: GatewayMetrics,
}

impl GatewayState {
    /// Applies `profile` now, with a request log bounded to `request_log_capacity` records.
    pub fn new(profile: FaultProfile, request_log_capacity: usize) -> Result<Self, InvalidProfile> {
        Ok(Self {
            engine: FaultEngine::new(profile, Instant::now())?,
            request_log: RequestLog::new(request_log_capacity),
            metrics: GatewayMetrics::new(),
        })
    }

    /// Logs and counts one answered chat request.
    pub fn record(&self, record: RequestRecord, took: Duration) {
        self.metrics.observe_request(record.status, took);
        let dropped = self.request_log.push(record);
        self.metrics.add_log_dropped(dropped);
    }
}
