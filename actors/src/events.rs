//! The event bus: one in-process broadcast channel that agent actors, the registry and the
//! sharing actor publish to, and that WebSocket sessions (and anything else) subscribe to.
//!
//! Publishing never blocks: a subscriber that falls behind loses the oldest events
//! (`RecvError::Lagged`) rather than slowing the fleet or growing memory.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::model::AgentId;

/// Events a subscriber may miss before it is told it lagged.
const CAPACITY: usize = 4096;

/// Something that happened to an agent.
#[derive(Debug, Clone, Serialize)]
pub struct FleetEvent {
    /// `agent_created`, `agent_started`, ...
    pub event: &'static str,
    pub agent_id: AgentId,
    /// The agent's name when the event happened (the new name for a rename).
    pub name: String,
    pub data: serde_json::Value,
    pub ts: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<FleetEvent>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(CAPACITY);
        Self { tx }
    }

    pub fn publish(
        &self,
        event: &'static str,
        agent_id: AgentId,
        name: &str,
        data: serde_json::Value,
    ) {
        // No subscribers is not an error.
        let _ = self.tx.send(FleetEvent {
            event,
            agent_id,
            name: name.to_string(),
            data,
            ts: Utc::now(),
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<FleetEvent> {
        self.tx.subscribe()
    }
}
