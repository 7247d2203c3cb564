//! A scenario's timeline: periodic samples of the fleet's state and the events that happened.
//!
//! The scenario logic waits on events itself; the timeline is only a record for the report, so
//! it is filled by a background [`Sampler`] (every ~500 ms) and by [`TimelineRecorder::event`]
//! calls, and never drives a decision.

pub mod svg;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// Samples and events, each stamped with milliseconds since the scenario started.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timeline {
    pub samples: Vec<Sample>,
    pub events: Vec<TimelineEvent>,
}

/// The fleet's state at one moment. A field the sampler could not read is carried over from
/// the previous sample (or 0) rather than failing the scenario: the timeline is a record only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Sample {
    pub t_ms: u64,
    pub queue_ready: u32,
    pub queue_unacked: u32,
    pub agents_running: u32,
    /// Requests per second the gateway received since the previous sample.
    pub gateway_rps: f64,
}

/// Something that happened: an agent started, exited, was OOM-killed; an outage began; ...
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineEvent {
    pub t_ms: u64,
    /// Short machine-friendly kind: `agent-start`, `agent-exit`, `oom`, `stop`, `outage-start`, ...
    pub kind: String,
    pub detail: String,
}

/// What a sampler reads once per tick; returned by a [`SampleSource`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    pub queue_ready: Option<u32>,
    pub queue_unacked: Option<u32>,
    pub agents_running: Option<u32>,
    /// Total gateway requests so far (the sampler turns it into a rate).
    pub gateway_requests: Option<u64>,
}

/// Reads the fleet's state for one sample. Boxed future so the scenario can close over its own
/// clients (queue, runtime, gateway) without the timeline knowing their types.
pub type SampleSource =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Reading> + Send>> + Send + Sync>;

/// Shared, append-only timeline of one scenario run. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TimelineRecorder {
    started: Instant,
    inner: Arc<Mutex<Timeline>>,
}

impl Default for TimelineRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl TimelineRecorder {
    pub fn new() -> TimelineRecorder {
        TimelineRecorder {
            started: Instant::now(),
            inner: Arc::default(),
        }
    }

    /// Milliseconds since the recorder was created.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn event(&self, kind: impl Into<String>, detail: impl Into<String>) {
        let event = TimelineEvent {
            t_ms: self.now_ms(),
            kind: kind.into(),
            detail: detail.into(),
        };
        self.lock().events.push(event);
    }

    pub fn push_sample(&self, sample: Sample) {
        self.lock().samples.push(sample);
    }

    /// A copy of what was recorded so far, events in time order.
    pub fn snapshot(&self) -> Timeline {
        let mut timeline = self.lock().clone();
        timeline.events.sort_by_key(|e| e.t_ms);
        timeline
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Timeline> {
        // A panic while holding this lock cannot leave a half-written Vec push behind.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts sampling `source` every `every` until the returned [`Sampler`] is stopped or dropped.
    pub fn start_sampler(&self, source: SampleSource, every: Duration) -> Sampler {
        let recorder = self.clone();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut previous = Sample::default();
            let mut previous_requests: Option<(u64, u64)> = None;
            loop {
                ticker.tick().await;
                let reading = source().await;
                let t_ms = recorder.now_ms();
                let gateway_rps = match (reading.gateway_requests, previous_requests) {
                    (Some(total), Some((t0, n0))) if t_ms > t0 => {
                        total.saturating_sub(n0) as f64 * 1000.0 / (t_ms - t0) as f64
                    }
                    _ => 0.0,
                };
                if let Some(total) = reading.gateway_requests {
                    previous_requests = Some((t_ms, total));
                }
                let sample = Sample {
                    t_ms,
                    queue_ready: reading.queue_ready.unwrap_or(previous.queue_ready),
                    queue_unacked: reading.queue_unacked.unwrap_or(previous.queue_unacked),
                    agents_running: reading.agents_running.unwrap_or(previous.agents_running),
                    gateway_rps,
                };
                recorder.push_sample(sample);
                previous = sample;
            }
        });
        Sampler { task }
    }
}

/// The background sampling task; aborted when stopped or dropped.
#[derive(Debug)]
pub struct Sampler {
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    pub fn stop(self) {}
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[tokio::test(start_paused = true)]
    async fn sampler_turns_request_totals_into_rates_and_carries_missing_fields() {
        let recorder = TimelineRecorder::new();
        let requests = Arc::new(AtomicU64::new(0));
        let counter = requests.clone();
        let source: SampleSource = Arc::new(move || {
            // 10 requests per 500 ms tick = 20 req/s; the queue is only readable on the first tick.
            let total = counter.fetch_add(10, Ordering::SeqCst) + 10;
            Box::pin(async move {
                Reading {
                    queue_ready: (total == 10).then_some(7),
                    queue_unacked: Some(1),
                    agents_running: Some(4),
                    gateway_requests: Some(total),
                }
            })
        });
        let sampler = recorder.start_sampler(source, Duration::from_millis(500));
        tokio::time::sleep(Duration::from_millis(1600)).await;
        sampler.stop();
        recorder.event("outage-start", "503 for 10 s");
        let timeline = recorder.snapshot();
        assert!(timeline.samples.len() >= 3, "{timeline:?}");
        assert_eq!(timeline.samples[0].gateway_rps, 0.0);
        assert!(
            (timeline.samples[2].gateway_rps - 20.0).abs() < 0.01,
            "{timeline:?}"
        );
        assert!(
            timeline.samples.iter().all(|s| s.queue_ready == 7),
            "{timeline:?}"
        );
        assert_eq!(timeline.events[0].kind, "outage-start");
        assert!(
            serde_json::to_string(&timeline)
                .unwrap()
                .contains("\"gateway_rps\"")
        );
    }
}
