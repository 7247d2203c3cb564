//! The consume loop: connect, take deliveries one at a time, reconnect when the broker goes
//! away, and decide when the agent is done.
//!
//! The agent is done when it was asked to stop (SIGTERM), when it has been idle for
//! `AGENT_IDLE_EXIT_SECS` (so a ScaledJob pod finishes), or when it has finished
//! `AGENT_MAX_TASKS` tasks. "Finished" means acked: a result published or a dead letter;
//! a requeued failure is not a finished task.

use std::time::Duration;

use futures::StreamExt;
use lapin::Consumer;
use tokio::time::{Instant, sleep_until};
use tracing::{info, warn};

use crate::{
    broker::{Broker, BrokerError},
    config::BrokerConfig,
    delivery::{DeliveryHandler, Handled},
    metrics::{Metrics, TaskStatus},
    shutdown::Stop,
    steps::Interruption,
};

/// Why the worker returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerExit {
    /// No delivery for the idle period.
    Idle,
    /// The task limit was reached.
    MaxTasks,
    /// A stop was requested; `unfinished` when a task was left unacked for redelivery.
    Stopped { unfinished: bool },
}

impl WorkerExit {
    pub fn left_work_unfinished(self) -> bool {
        matches!(self, WorkerExit::Stopped { unfinished: true })
    }
}

/// How one broker session ended.
enum SessionEnd {
    Exit(WorkerExit),
    /// The connection or channel is gone; reconnect.
    Lost(String),
}

#[derive(Debug)]
pub struct Worker<'a> {
    pub agent_index: u32,
    pub broker: &'a BrokerConfig,
    pub handler: DeliveryHandler<'a>,
    pub metrics: &'a Metrics,
    pub stop: Stop,
    pub idle_exit: Option<Duration>,
    pub max_tasks: Option<u64>,
}

/// Counters that outlive a broker session.
struct Tally {
    finished: u64,
    idle_since: Instant,
}

impl Worker<'_> {
    /// Runs until done. `Err` only for broker failures that reconnecting cannot fix (deadline
    /// passed, topology refused).
    pub async fn run(&self) -> Result<WorkerExit, BrokerError> {
        let mut tally = Tally {
            finished: 0,
            idle_since: Instant::now(),
        };
        loop {
            let (broker, mut consumer) = tokio::select! {
                biased;
                () = self.stop.requested() => return Ok(WorkerExit::Stopped { unfinished: false }),
                session = Broker::connect(self.broker, self.agent_index) => session?,
            };
            self.metrics.set_ready(true);
            let end = self.serve(&broker, &mut consumer, &mut tally).await;
            self.metrics.set_ready(false);
            broker.close().await;
            match end {
                SessionEnd::Exit(exit) => return Ok(exit),
                SessionEnd::Lost(reason) => {
                    warn!(broker = %broker.endpoint(), reason, "lost the broker; reconnecting");
                }
            }
        }
    }

    async fn serve(
        &self,
        broker: &Broker,
        consumer: &mut Consumer,
        tally: &mut Tally,
    ) -> SessionEnd {
        loop {
            let idle_deadline = self.idle_exit.map(|idle| tally.idle_since + idle);
            let next = tokio::select! {
                biased;
                () = self.stop.requested() => {
                    info!("stop requested while idle; no task in progress");
                    self.stop_consuming(broker).await;
                    return SessionEnd::Exit(WorkerExit::Stopped { unfinished: false });
                }
                () = sleep_until_some(idle_deadline) => {
                    let idle_secs = self.idle_exit.map_or(0, |d| d.as_secs());
                    info!(idle_secs, "no task for the idle period (AGENT_IDLE_EXIT_SECS); exiting");
                    self.stop_consuming(broker).await;
                    return SessionEnd::Exit(WorkerExit::Idle);
                }
                next = consumer.next() => next,
            };
            let delivery = match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(e)) => return SessionEnd::Lost(e.to_string()),
                None => return SessionEnd::Lost("the broker cancelled the consumer".to_owned()),
            };
            let handled = self.handler.handle(broker, delivery, &self.stop).await;
            tally.idle_since = Instant::now();
            match handled {
                Ok(Handled::Finished(status)) => {
                    if status != TaskStatus::Failed {
                        tally.finished += 1;
                    }
                    if self.max_tasks.is_some_and(|max| tally.finished >= max) {
                        info!(
                            tasks = tally.finished,
                            "task limit reached (AGENT_MAX_TASKS); exiting"
                        );
                        self.stop_consuming(broker).await;
                        return SessionEnd::Exit(WorkerExit::MaxTasks);
                    }
                }
                Ok(Handled::Interrupted(Interruption::BrokerLost)) => {
                    return SessionEnd::Lost("connection lost during a task".to_owned());
                }
                Ok(Handled::Interrupted(Interruption::Stopping | Interruption::StepAbandoned)) => {
                    return SessionEnd::Exit(WorkerExit::Stopped { unfinished: true });
                }
                Err(e) => return SessionEnd::Lost(e.to_string()),
            }
        }
    }

    async fn stop_consuming(&self, broker: &Broker) {
        if let Err(e) = broker.cancel_consumer().await {
            warn!(error = %e, "could not cancel the consumer; closing the channel instead");
        }
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
