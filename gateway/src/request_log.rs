//! The bounded log of chat requests that the harness reads back with `GET /admin/requests`.
//!
//! Scenarios compute per-agent request rates from it (the retry-storm bound), so it must not
//! grow without limit during a long run: past `capacity` records the oldest are dropped and
//! counted, and the count is exposed so a report can say the log was truncated.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use agentfleet_protocol::gateway::RequestRecord;

#[derive(Debug)]
pub struct RequestLog {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    records: VecDeque<RequestRecord>,
    capacity: usize,
    dropped: u64,
}

impl RequestLog {
    /// A log holding at most `capacity` records (at least one is kept whatever is asked).
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                records: VecDeque::new(),
                capacity: capacity.max(1),
                dropped: 0,
            }),
        }
    }

    /// Appends `record`, dropping the oldest record when full. Returns how many were dropped
    /// (0 or 1) so the caller can count it in metrics.
    pub fn push(&self, record: RequestRecord) -> u64 {
        let mut inner = self.lock();
        let mut dropped_now = 0;
        while inner.records.len() >= inner.capacity {
            inner.records.pop_front();
            dropped_now += 1;
        }
        inner.dropped += dropped_now;
        inner.records.push_back(record);
        dropped_now
    }

    /// Records that arrived at or after `since_ms` (Unix milliseconds), oldest first.
    pub fn since(&self, since_ms: u64) -> Vec<RequestRecord> {
        let inner = self.lock();
        // Records are appended when answered, so arrival times are only nearly sorted (a slow
        // request is logged after faster later ones): filter, do not binary-search.
        inner
            .records
            .iter()
            .filter(|record| record.at_ms >= since_ms)
            .cloned()
            .collect()
    }

    /// Empties the log. The dropped counter is kept: it counts over the process lifetime.
    pub fn clear(&self) {
        self.lock().records.clear();
    }

    /// Records dropped because the log was full, since start.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(at_ms: u64) -> RequestRecord {
        RequestRecord {
            at_ms,
            agent_index: None,
            task_id: None,
            status: 200,
            retry_after_secs: None,
            latency_ms: 0,
        }
    }

    #[test]
    fn full_log_drops_the_oldest_and_counts_them() {
        let log = RequestLog::new(3);
        let dropped: u64 = (1..=5).map(|at| log.push(record(at))).sum();
        assert_eq!(dropped, 2);
        assert_eq!(log.dropped(), 2);
        let kept: Vec<u64> = log.since(0).iter().map(|r| r.at_ms).collect();
        assert_eq!(kept, vec![3, 4, 5]);
    }

    #[test]
    fn since_filters_by_arrival_and_clear_keeps_the_drop_count() {
        let log = RequestLog::new(2);
        for at in [10, 30, 20] {
            log.push(record(at));
        }
        let recent: Vec<u64> = log.since(25).iter().map(|r| r.at_ms).collect();
        assert_eq!(recent, vec![30]);
        log.clear();
        assert!(log.is_empty());
        assert_eq!(log.dropped(), 1);
    }
}
