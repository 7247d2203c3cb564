//! Reading the gateway's request log: the ground truth of how agents treated the LLM gateway
//! (call gaps, `Retry-After` compliance, request rates), independent of what agents report.

use std::collections::BTreeMap;
use std::fmt;

use agentfleet_protocol::gateway::RequestRecord;

/// The calls of each agent (by its `x-agent-index`; `None` for calls without it), oldest first.
pub fn by_agent(log: &[RequestRecord]) -> BTreeMap<Option<u32>, Vec<&RequestRecord>> {
    let mut agents: BTreeMap<Option<u32>, Vec<&RequestRecord>> = BTreeMap::new();
    for record in log {
        agents.entry(record.agent_index).or_default().push(record);
    }
    for calls in agents.values_mut() {
        calls.sort_by_key(|r| r.at_ms);
    }
    agents
}

/// The calls made for one task, oldest first.
pub fn of_task<'a>(log: &'a [RequestRecord], task_id: &str) -> Vec<&'a RequestRecord> {
    let mut calls: Vec<&RequestRecord> = log
        .iter()
        .filter(|r| r.task_id.as_deref() == Some(task_id))
        .collect();
    calls.sort_by_key(|r| r.at_ms);
    calls
}

/// Milliseconds between consecutive arrivals.
pub fn gaps_ms(calls: &[&RequestRecord]) -> Vec<u64> {
    calls
        .windows(2)
        .map(|w| w[1].at_ms.saturating_sub(w[0].at_ms))
        .collect()
}

/// Calls that arrived in `[from_ms, to_ms)`.
pub fn count_between(calls: &[&RequestRecord], from_ms: u64, to_ms: u64) -> usize {
    calls
        .iter()
        .filter(|r| (from_ms..to_ms).contains(&r.at_ms))
        .count()
}

/// A call that came before the `Retry-After` of the previous answer to the same agent elapsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryAfterViolation {
    pub agent_index: Option<u32>,
    pub answered_at_ms: u64,
    pub retry_after_secs: u64,
    pub next_call_at_ms: u64,
}

impl fmt::Display for RetryAfterViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let agent = self
            .agent_index
            .map_or("unknown".to_owned(), |i| i.to_string());
        write!(
            f,
            "agent {agent} called at {} ms, {} ms after an answer with Retry-After {} s",
            self.next_call_at_ms,
            self.next_call_at_ms.saturating_sub(self.answered_at_ms),
            self.retry_after_secs
        )
    }
}

/// The outcome of [`check_retry_after`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryAfterCheck {
    /// Answers carrying `Retry-After` that the same agent followed with another call (the ones
    /// the check could judge; a last answer with no later call proves nothing).
    pub judged: usize,
    pub violations: Vec<RetryAfterViolation>,
}

/// For every answer with `Retry-After: r` at time `t`, the same agent's next call must arrive at
/// `t + r` or later. Arrival times are the gateway's, so no clock skew is involved; the bound is
/// exact (the agent receives the answer after `t`, so even waiting exactly `r` from then on
/// arrives later than `t + r`).
pub fn check_retry_after(log: &[RequestRecord]) -> RetryAfterCheck {
    let mut check = RetryAfterCheck::default();
    for (agent_index, calls) in by_agent(log) {
        for pair in calls.windows(2) {
            let (answer, next) = (pair[0], pair[1]);
            let Some(secs) = answer.retry_after_secs else {
                continue;
            };
            check.judged += 1;
            if next.at_ms < answer.at_ms + secs * 1000 {
                check.violations.push(RetryAfterViolation {
                    agent_index,
                    answered_at_ms: answer.at_ms,
                    retry_after_secs: secs,
                    next_call_at_ms: next.at_ms,
                });
            }
        }
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(agent: u32, at_ms: u64, status: u16, retry_after_secs: Option<u64>) -> RequestRecord {
        RequestRecord {
            at_ms,
            agent_index: Some(agent),
            task_id: Some(format!("t-{agent}")),
            status,
            retry_after_secs,
            latency_ms: 1,
        }
    }

    #[test]
    fn retry_after_is_judged_per_agent() {
        let log = vec![
            call(0, 1_000, 429, Some(1)),
            call(1, 1_100, 200, None), // another agent may call meanwhile
            call(0, 2_000, 429, Some(2)), // exactly t + r: allowed
            call(0, 3_999, 200, None), // 1 ms early: a violation
            call(1, 5_000, 503, Some(1)), // no later call: not judged
        ];
        let check = check_retry_after(&log);
        assert_eq!(check.judged, 2);
        assert_eq!(
            check.violations,
            vec![RetryAfterViolation {
                agent_index: Some(0),
                answered_at_ms: 2_000,
                retry_after_secs: 2,
                next_call_at_ms: 3_999
            }]
        );
        assert!(
            check.violations[0]
                .to_string()
                .contains("1999 ms after an answer with Retry-After 2 s")
        );
    }

    #[test]
    fn gaps_and_counts_follow_arrival_order() {
        let log = vec![
            call(0, 300, 503, None),
            call(0, 100, 503, None),
            call(0, 700, 200, None),
        ];
        let calls = of_task(&log, "t-0");
        assert_eq!(gaps_ms(&calls), vec![200, 400]);
        assert_eq!(count_between(&calls, 100, 700), 2);
        assert_eq!(by_agent(&log)[&Some(0)].len(), 3);
    }
}
