//! The Docker watcher: Docker is watched, not polled.
//!
//! One task follows the daemon's container event stream, filtered by this instance's label, and
//! forwards each event about an agent's container to that agent's actor
//! ([`ContainerEventSeen`]), which re-reads the container and adopts the truth — so a container
//! killed, OOM-killed or removed outside flotilla shows in the API within moments, with an
//! `agent_died` event. Helper containers (`flotilla.role`) are ignored.
//!
//! The daemon keeps only its last 1,000 events, so events missed while disconnected are not
//! replayed: after every (re)subscription the watcher asks every agent actor to re-read its
//! container ([`RefreshFromDocker`]). While the daemon is down it retries with a bounded backoff;
//! reads keep answering from snapshots meanwhile, and commands fail fast with 503.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use crate::agent::messages::{ContainerEventSeen, RefreshFromDocker};
use crate::fleet::Fleet;
use crate::runtime::labels;

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Owns the watcher task; [`Watcher::shutdown`] stops it.
pub struct Watcher {
    stop: std::sync::Mutex<Option<oneshot::Sender<()>>>,
}

impl Watcher {
    /// Start following events for `fleet` (on the current arbiter).
    pub(crate) fn start(fleet: Fleet) -> Self {
        let (tx, rx) = oneshot::channel();
        actix::spawn(run(fleet, rx));
        Self {
            stop: std::sync::Mutex::new(Some(tx)),
        }
    }

    pub fn shutdown(&self) {
        if let Ok(mut stop) = self.stop.lock()
            && let Some(tx) = stop.take()
        {
            let _ = tx.send(());
        }
    }
}

async fn run(fleet: Fleet, mut stop: oneshot::Receiver<()>) {
    let instance = fleet.config().instance.clone();
    let mut backoff = Duration::from_millis(200);
    let mut first = true;
    loop {
        let mut events = fleet
            .runtime()
            .container_events(labels::INSTANCE, &instance);
        if !first {
            // Subscribed again: catch up on whatever happened while disconnected.
            info!("docker event stream reconnected; re-reading every agent");
            for addr in fleet.agent_addresses() {
                addr.do_send(RefreshFromDocker);
            }
        }
        first = false;
        loop {
            tokio::select! {
                _ = &mut stop => return,
                next = events.next() => match next {
                    Some(Ok(event)) => {
                        backoff = Duration::from_millis(200);
                        forward(&fleet, event);
                    }
                    Some(Err(error)) => {
                        warn!(%error, "docker event stream failed");
                        break;
                    }
                    None => {
                        debug!("docker event stream ended");
                        break;
                    }
                },
            }
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn forward(fleet: &Fleet, event: crate::runtime::RuntimeEvent) {
    if event.labels.contains_key(labels::ROLE) {
        return;
    }
    let Some(agent) = event
        .labels
        .get(labels::AGENT_ID)
        .and_then(|id| id.parse().ok())
    else {
        return;
    };
    if let Some(addr) = fleet.agent_address(agent) {
        addr.do_send(ContainerEventSeen {
            container_id: event.container_id,
            action: event.action,
            exit_code: event.exit_code,
        });
    }
}
