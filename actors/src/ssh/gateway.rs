//! The SSH gateway: one listener per agent with valid keys, on that agent's leased SSH port.
//!
//! ## Shape
//! The [`Gateway`] handle owns an arbiter thread of its own (SSH key exchange, encryption and
//! the byte pumping of sessions never compete with the agent actors) running one control task.
//! The control task is the only owner of the listeners: it *reconciles* them with the
//! [`SshKeys`] mirror whenever the mirror changes, when the fleet asks ([`Gateway::sync`]), and
//! every [`RECONCILE_EVERY`]:
//! - an agent with at least one valid key (and a published snapshot, which gives its port) gets
//!   a listener on `FLOTILLA_SSH_BIND:<ssh_port>`;
//! - a listener whose agent has no valid key left (revoked, expired, agent deleted) is stopped,
//!   and with it every connection it accepted.
//!
//! Listening only while keys exist keeps the attack surface to the ports that are in use, and
//! is what makes revocation total: a revoke or delete closes the port *and* ends the sessions on
//! it. Expiry needs no job: logins check it ([`SshKeys::authorize`]), sessions end when their
//! key expires, and the next reconcile closes a port whose keys have all expired.
//!
//! ## Ownership and shutdown
//! Everything hangs off one cancellation tree: gateway → listener → connection → process.
//! Cancelling a listener's token stops its accept loop (closing the port), disconnects its
//! sessions and detaches their processes; [`Gateway::shutdown`] cancels the root and stops the
//! thread. Connections are capped ([`MAX_CONNECTIONS`]) so a flood cannot exhaust the process.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Arbiter, ArbiterHandle};
use chrono::Utc;
use russh::keys::PrivateKey;
use russh::{MethodKind, MethodSet, SshId};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::keys::{self, SshKeys};
use super::session;
use crate::config::FleetConfig;
use crate::directory::Directory;
use crate::error::FleetError;
use crate::model::AgentId;
use crate::runtime::ContainerRuntime;
use crate::store::Store;

/// How often listeners are reconciled even when nothing changed (closes ports whose keys have
/// expired, retries ports that could not be bound).
pub const RECONCILE_EVERY: Duration = Duration::from_secs(15);

/// Most SSH connections open at once, over all agents.
pub const MAX_CONNECTIONS: usize = 512;

/// How long [`Gateway::shutdown`] waits for the control task to end.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// What every listener and session of the gateway shares.
pub(super) struct Shared {
    pub keys: SshKeys,
    pub directory: Directory,
    pub runtime: Arc<dyn ContainerRuntime>,
    pub russh: Arc<russh::server::Config>,
    /// Permits for open connections ([`MAX_CONNECTIONS`]).
    pub connections: Arc<Semaphore>,
}

/// A request to the control task.
enum Command {
    /// Reconcile the listeners now; answer whether `agent` (if given) could be served.
    Sync {
        agent: Option<AgentId>,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// The handle that owns the gateway (see the module doc).
pub(crate) struct Gateway {
    keys: SshKeys,
    commands: mpsc::Sender<Command>,
    /// Root of the cancellation tree; cancelled by [`Gateway::shutdown`] and on drop.
    stop: CancellationToken,
    /// Fires when the control task has ended; taken by the first [`Gateway::shutdown`].
    done: Mutex<Option<oneshot::Receiver<()>>>,
    /// The gateway's own thread, stopped after the control task.
    arbiter: ArbiterHandle,
}

impl Gateway {
    /// Load the stored keys and the host key (generated into the data dir on first start), and
    /// start the control task on a thread of its own. Listeners open at the first
    /// [`Gateway::sync`]. Must run inside an actix `System`.
    pub(crate) async fn start(
        config: &FleetConfig,
        store: &Store,
        runtime: Arc<dyn ContainerRuntime>,
        directory: Directory,
    ) -> Result<Self, FleetError> {
        let keys = SshKeys::new();
        keys.load(store.load_ssh_keys().await?, Utc::now());
        let dir = config.data_dir.clone();
        let host_key = tokio::task::spawn_blocking(move || keys::load_or_create_host_key(&dir))
            .await
            .map_err(|e| FleetError::Internal(format!("loading the SSH host key: {e}")))??;
        let shared = Arc::new(Shared {
            keys: keys.clone(),
            directory,
            runtime,
            russh: Arc::new(server_config(host_key)),
            connections: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        });
        let (commands, commands_rx) = mpsc::channel(64);
        let stop = CancellationToken::new();
        let (done_tx, done_rx) = oneshot::channel();
        let arbiter = Arbiter::new();
        let task = control(shared, config.ssh_bind, commands_rx, stop.clone());
        arbiter.spawn(async move {
            task.await;
            let _ = done_tx.send(());
        });
        Ok(Self {
            keys,
            commands,
            stop,
            done: Mutex::new(Some(done_rx)),
            arbiter: arbiter.handle(),
        })
    }

    /// The key mirror the gateway authenticates against (written by the registry actor).
    pub(crate) fn keys(&self) -> &SshKeys {
        &self.keys
    }

    /// Open and close listeners to match the keys now, and wait until done. With `agent`, fails
    /// if that agent has valid keys but its port could not be bound.
    pub(crate) async fn sync(&self, agent: Option<AgentId>) -> Result<(), FleetError> {
        let gone = || FleetError::Internal("the SSH gateway has stopped".into());
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Sync { agent, reply })
            .await
            .map_err(|_| gone())?;
        answer
            .await
            .map_err(|_| gone())?
            .map_err(FleetError::Internal)
    }

    /// Stop listening, end every session, and stop the gateway's thread. Waits (bounded) for
    /// the control task; later calls return at once.
    pub(crate) async fn shutdown(&self) {
        self.stop.cancel();
        let done = self.done.lock().ok().and_then(|mut d| d.take());
        if let Some(done) = done
            && tokio::time::timeout(SHUTDOWN_WAIT, done).await.is_err()
        {
            warn!("SSH gateway did not stop in time");
        }
        self.arbiter.stop();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.cancel();
        self.arbiter.stop();
    }
}

/// russh's settings: public-key logins only, constant-time refusals, keepalives to notice dead
/// clients instead of an idle timeout (an idle shell is legitimate).
fn server_config(host_key: PrivateKey) -> russh::server::Config {
    russh::server::Config {
        server_id: SshId::Standard("SSH-2.0-flotilla".into()),
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        auth_rejection_time: Duration::from_secs(1),
        // OpenSSH probes with "none" first; refusing that probe need not be slow.
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        max_auth_attempts: 6,
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    }
}

/// A listener the control task owns.
struct Listener {
    port: u16,
    /// Cancels the accept loop and every connection it accepted.
    stop: CancellationToken,
}

/// The control task: the only owner of the listeners.
async fn control(
    shared: Arc<Shared>,
    bind: IpAddr,
    mut commands: mpsc::Receiver<Command>,
    stop: CancellationToken,
) {
    let mut listeners: HashMap<AgentId, Listener> = HashMap::new();
    let mut tick = tokio::time::interval(RECONCILE_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            command = commands.recv() => match command {
                None => break,
                Some(Command::Sync { agent, reply }) => {
                    let failures = reconcile(&shared, bind, &mut listeners, &stop).await;
                    let answer = match agent.and_then(|a| failures.get(&a)) {
                        Some(failure) => Err(failure.clone()),
                        None => Ok(()),
                    };
                    let _ = reply.send(answer);
                }
            },
            () = shared.keys.changed() => {
                reconcile(&shared, bind, &mut listeners, &stop).await;
            }
            _ = tick.tick() => {
                reconcile(&shared, bind, &mut listeners, &stop).await;
            }
        }
    }
    for listener in listeners.into_values() {
        listener.stop.cancel();
    }
    debug!("SSH gateway stopped");
}

/// Make the listeners match the agents with valid keys; returns the agents whose port could not
/// be bound, with the reason.
async fn reconcile(
    shared: &Arc<Shared>,
    bind: IpAddr,
    listeners: &mut HashMap<AgentId, Listener>,
    stop: &CancellationToken,
) -> HashMap<AgentId, String> {
    let now = Utc::now();
    let wanted: HashMap<AgentId, u16> = shared
        .keys
        .agents_with_active(now)
        .into_iter()
        .filter_map(|id| Some((id, shared.directory.get(id)?.record.ssh_port)))
        .collect();
    listeners.retain(|id, listener| {
        let keep = wanted.get(id) == Some(&listener.port);
        if !keep {
            listener.stop.cancel();
            info!(agent = %id, port = listener.port, "SSH gateway stopped listening");
        }
        keep
    });
    let mut failures = HashMap::new();
    for (id, port) in wanted {
        if listeners.contains_key(&id) {
            continue;
        }
        match TcpListener::bind((bind, port)).await {
            Ok(socket) => {
                let token = stop.child_token();
                tokio::spawn(accept_loop(shared.clone(), id, socket, token.clone()));
                listeners.insert(id, Listener { port, stop: token });
                info!(agent = %id, address = %bind, port, "SSH gateway listening");
            }
            Err(error) => {
                warn!(agent = %id, address = %bind, port, %error, "SSH gateway cannot listen");
                failures.insert(
                    id,
                    format!("the SSH gateway cannot listen on {bind}:{port}: {error}"),
                );
            }
        }
    }
    failures
}

/// Accept connections for one agent until `stop` is cancelled (which also closes the port).
async fn accept_loop(
    shared: Arc<Shared>,
    agent: AgentId,
    socket: TcpListener,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = socket.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
                    warn!(agent = %agent, %peer, "too many SSH connections; connection refused");
                    continue;
                };
                tokio::spawn(session::serve(
                    shared.clone(),
                    agent,
                    stream,
                    peer,
                    stop.child_token(),
                    permit,
                ));
            }
            Err(error) => {
                // Typically out of file descriptors: back off instead of spinning.
                warn!(agent = %agent, %error, "SSH accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
