//! A replayable broadcast of [`RuntimeEvent`]s: every subscriber first gets what happened since
//! the session opened, then live events, so a wait started just after an action cannot miss
//! the event the action caused.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::broadcast;

use super::RuntimeEvent;

/// Live events a slow subscriber may lag behind by before it misses some (it is then told so
/// by the stream ending; the history is kept in full regardless).
const CAPACITY: usize = 4096;

#[derive(Debug, Clone)]
pub struct EventBus {
    inner: Arc<Mutex<Vec<RuntimeEvent>>>,
    sender: broadcast::Sender<RuntimeEvent>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            inner: Arc::default(),
            sender: broadcast::channel(CAPACITY).0,
        }
    }
}

impl EventBus {
    pub fn publish(&self, event: RuntimeEvent) {
        let mut history = self.lock();
        history.push(event.clone());
        // Sent under the lock, so a subscriber's history snapshot and its live feed neither
        // overlap nor leave a gap. No receiver is not an error.
        let _ = self.sender.send(event);
    }

    /// Everything so far, then live events.
    pub fn stream(&self) -> BoxStream<'static, RuntimeEvent> {
        let (history, receiver) = {
            let history = self.lock();
            (history.clone(), self.sender.subscribe())
        };
        let live = futures::stream::unfold(receiver, |mut receiver| async move {
            match receiver.recv().await {
                Ok(event) => Some((event, receiver)),
                Err(_closed_or_lagged) => None,
            }
        });
        futures::stream::iter(history).chain(live).boxed()
    }

    pub fn history(&self) -> Vec<RuntimeEvent> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RuntimeEvent>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::AgentRef;

    fn started(index: u32) -> RuntimeEvent {
        RuntimeEvent::Started {
            agent: AgentRef {
                index,
                name: format!("agent-{index}"),
            },
        }
    }

    #[tokio::test]
    async fn late_subscribers_get_the_history_then_live_events_once_each() {
        let bus = EventBus::default();
        bus.publish(started(0));
        let mut stream = bus.stream();
        bus.publish(started(1));
        assert_eq!(stream.next().await, Some(started(0)));
        assert_eq!(stream.next().await, Some(started(1)));
        bus.publish(started(2));
        assert_eq!(stream.next().await, Some(started(2)));
        assert_eq!(bus.history().len(), 3);
    }
}
