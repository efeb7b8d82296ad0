//! One SSH connection to one agent: authentication, session channels, and the process each
//! channel runs in the agent's container.
//!
//! ## Login
//! Only public keys, only as user `developer`, only keys issued for *this* agent (the listener
//! the client came through decides which agent) and valid *now*: [`SshKeys::authorize`] is
//! asked both when a key is offered and after russh has verified the client's signature. The
//! connection then lives until the key expires, its listener is stopped (revocation, agent
//! deletion, shutdown) or the client leaves, whichever comes first. A client that has not logged
//! in within [`LOGIN_GRACE`] is dropped.
//!
//! ## Channels
//! The handler below is the single place that decides on every channel request, and it answers
//! each one synchronously (russh keeps one "wants reply" flag per channel, so a late answer
//! could be paired with the wrong request). `pty-req` and `env` (`LANG`, `LC_*`) are recorded;
//! `shell` and `exec` start the process, once per channel; subsystems (sftp), X11, agent and
//! port forwarding are refused — the gateway gives a shell in the container, never a path into
//! the host's network.
//!
//! The process is a Docker exec through [`ContainerRuntime::exec_attached`], as `developer` in
//! `/home/developer`: `/bin/sh -l` for a shell, `/bin/sh -c <command>` for `ssh host command`,
//! with a pseudo-terminal when the client asked for one (sized from `pty-req`, resized on
//! `window-change`) and plain pipes otherwise. The container comes from the agent's published
//! snapshot at that moment, so renames and recreated containers are followed. A task per
//! channel pumps the client's input into the process and the process's output back, in two
//! independent loops (a process that is not reading its input never stops its output), then
//! reports the exit status once the output is drained.
//!
//! Known limit: russh hands a channel's input to the handler inside its connection loop, so a
//! client that keeps sending input to a process that does not read it, while not reading that
//! process's output itself, stalls its own connection (never another one).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure, ChannelWriteHalf, Disconnect, Pty};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::SSH_USER;
use super::gateway::Shared;
use super::keys::{SshKeys, fingerprint};
use crate::agent::spec::{AGENT_USER, HOME};
use crate::model::{AgentId, Status};
use crate::runtime::{AttachedExec, ContainerRuntime, ExecOutput, ExecSpec, RuntimeError, TtySize};

/// How long a client may take from connecting to logging in.
pub const LOGIN_GRACE: Duration = Duration::from_secs(30);

/// Most session channels open at once on one connection (OpenSSH's `MaxSessions`).
const MAX_CHANNELS: usize = 10;

/// Input messages buffered per channel before the connection waits for the process.
const INPUT_BUFFER: usize = 64;

/// Most environment variables a client may pass per channel.
const MAX_ENV: usize = 32;

/// Terminal size used when a client sends zeros.
const DEFAULT_TTY: TtySize = TtySize { cols: 80, rows: 24 };

/// Serve one accepted connection for `agent` until it ends or `stop` is cancelled.
pub(super) async fn serve(
    shared: Arc<Shared>,
    agent: AgentId,
    stream: TcpStream,
    peer: SocketAddr,
    stop: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let (login_tx, login_rx) = oneshot::channel();
    let handler = Connection {
        shared: shared.clone(),
        agent,
        peer,
        login: None,
        login_tx: Some(login_tx),
        channels: HashMap::new(),
        stop: stop.clone(),
    };
    let started = tokio::select! {
        () = stop.cancelled() => return,
        started = tokio::time::timeout(
            LOGIN_GRACE,
            russh::server::run_stream(shared.russh.clone(), stream, handler),
        ) => started,
    };
    let mut session = match started {
        Ok(Ok(session)) => session,
        Ok(Err(error)) => {
            debug!(%peer, %error, "SSH handshake failed");
            return;
        }
        Err(_) => {
            debug!(%peer, "SSH handshake timed out");
            return;
        }
    };
    let handle = session.handle();
    let reason = tokio::select! {
        () = stop.cancelled() => Some("SSH access to this agent has ended"),
        reason = login_window(login_rx) => Some(reason),
        ended = &mut session => {
            if let Err(error) = ended {
                debug!(%peer, %error, "SSH connection ended with an error");
            }
            None
        }
    };
    if let Some(reason) = reason {
        debug!(%peer, agent = %agent, reason, "closing SSH connection");
        let _ = handle
            .disconnect(Disconnect::ByApplication, reason.into(), "en".into())
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(5), session).await;
    }
    // Ends the processes of this connection's channels.
    stop.cancel();
}

/// Resolves with the reason a connection must end: no login within [`LOGIN_GRACE`], or the
/// expiry of the key it logged in with.
async fn login_window(login: oneshot::Receiver<DateTime<Utc>>) -> &'static str {
    match tokio::time::timeout(LOGIN_GRACE, login).await {
        Err(_) => "login timed out",
        // The handler is gone, so the connection is ending anyway.
        Ok(Err(_)) => std::future::pending().await,
        Ok(Ok(expires_at)) => {
            let left = (expires_at - Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(left).await;
            "the SSH key has expired"
        }
    }
}

/// What a logged-in connection knows about its key.
struct Login {
    fingerprint: String,
    expires_at: DateTime<Utc>,
}

/// A pseudo-terminal the client asked for.
#[derive(Debug, Clone)]
struct PtyRequest {
    term: String,
    size: TtySize,
}

/// One open session channel.
struct ChannelState {
    /// Taken by the channel's process task when it starts.
    write: Option<ChannelWriteHalf<Msg>>,
    pty: Option<PtyRequest>,
    env: Vec<(String, String)>,
    /// Feeds the running process; `None` until `shell`/`exec`. Dropped on channel close, which
    /// ends the process task.
    input: Option<mpsc::Sender<Input>>,
}

/// From the client to a channel's process.
#[derive(Debug)]
enum Input {
    Data(Bytes),
    Eof,
    Resize(TtySize),
}

/// The russh handler of one connection (see the module doc).
struct Connection {
    shared: Arc<Shared>,
    agent: AgentId,
    peer: SocketAddr,
    login: Option<Login>,
    /// Tells [`serve`] the login key's expiry.
    login_tx: Option<oneshot::Sender<DateTime<Utc>>>,
    channels: HashMap<ChannelId, ChannelState>,
    /// Cancelled when the connection ends; the processes watch it.
    stop: CancellationToken,
}

impl Connection {
    fn authorize(&self, user: &str, key: &russh::keys::PublicKey) -> Option<DateTime<Utc>> {
        if user != SSH_USER {
            return None;
        }
        authorize_key(&self.shared.keys, self.agent, key)
    }

    /// Start the channel's process (`shell` when `command` is `None`), answering the request.
    fn start(
        &mut self,
        channel: ChannelId,
        command: Option<String>,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let Some(state) = self.channels.get_mut(&channel) else {
            return session.channel_failure(channel);
        };
        if state.input.is_some() || state.write.is_none() {
            // One process per channel.
            return session.channel_failure(channel);
        }
        let container = self
            .shared
            .directory
            .get(self.agent)
            .filter(|view| view.status == Status::Running)
            .and_then(|view| view.container_id.clone());
        let Some(container) = container else {
            session.channel_failure(channel)?;
            session.extended_data(
                channel,
                1,
                Bytes::from_static(b"flotilla: the agent is not running; start it first\r\n"),
            )?;
            session.exit_status_request(channel, 1)?;
            session.eof(channel)?;
            return session.close(channel);
        };
        session.channel_success(channel)?;

        let mut env: Vec<String> = vec![
            format!("HOME={HOME}"),
            format!("USER={SSH_USER}"),
            format!("LOGNAME={SSH_USER}"),
            "SHELL=/bin/sh".into(),
        ];
        env.extend(state.env.iter().map(|(k, v)| format!("{k}={v}")));
        if let Some(pty) = &state.pty {
            env.push(format!("TERM={}", pty.term));
        }
        let cmd = match &command {
            None => vec!["/bin/sh".into(), "-l".into()],
            Some(command) => vec!["/bin/sh".into(), "-c".into(), command.clone()],
        };
        let spec = ExecSpec {
            cmd,
            user: AGENT_USER.into(),
            working_dir: HOME.into(),
            env,
            tty: state.pty.as_ref().map(|p| p.size),
        };
        let (input, input_rx) = mpsc::channel(INPUT_BUFFER);
        state.input = Some(input);
        let Some(write) = state.write.take() else {
            return Ok(());
        };
        debug!(agent = %self.agent, peer = %self.peer, shell = command.is_none(), tty = spec.tty.is_some(), "SSH process starting");
        tokio::spawn(run_process(
            self.shared.runtime.clone(),
            container,
            spec,
            write,
            input_rx,
            self.stop.clone(),
        ));
        Ok(())
    }

    /// Queue input for a channel's running process; dropped if it has none (or has ended).
    async fn feed(&self, channel: ChannelId, input: Input) {
        if let Some(sender) = self.channels.get(&channel).and_then(|c| c.input.clone()) {
            let _ = sender.send(input).await;
        }
    }
}

/// The expiry of `agent`'s key `key`, if it may log in now.
fn authorize_key(
    keys: &SshKeys,
    agent: AgentId,
    key: &russh::keys::PublicKey,
) -> Option<DateTime<Utc>> {
    keys.authorize(agent, key.key_data(), Utc::now())
}

/// A terminal size from a client's request, within what a terminal can be.
fn tty_size(cols: u32, rows: u32) -> TtySize {
    if cols == 0 || rows == 0 {
        return DEFAULT_TTY;
    }
    TtySize {
        cols: u16::try_from(cols.min(4096)).unwrap_or(DEFAULT_TTY.cols),
        rows: u16::try_from(rows.min(4096)).unwrap_or(DEFAULT_TTY.rows),
    }
}

/// Environment variables a client may set (as OpenSSH's Debian default `AcceptEnv LANG LC_*`).
fn env_allowed(name: &str, value: &str) -> bool {
    (name == "LANG" || name.starts_with("LC_"))
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && value.len() <= 256
        && !value.contains('\0')
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(match self.authorize(user, offer.public_key) {
            Some(_) => Auth::Accept,
            None => Auth::reject(),
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let Some(expires_at) = self.authorize(user, key.public_key) else {
            info!(agent = %self.agent, peer = %self.peer, fingerprint = %fingerprint(key.public_key), "SSH login refused");
            return Ok(Auth::reject());
        };
        self.login = Some(Login {
            fingerprint: fingerprint(key.public_key),
            expires_at,
        });
        Ok(Auth::Accept)
    }

    async fn auth_succeeded(&mut self, _: &mut Session) -> Result<(), Self::Error> {
        if let Some(login) = &self.login {
            info!(agent = %self.agent, peer = %self.peer, fingerprint = %login.fingerprint, expires_at = %login.expires_at, "SSH login");
            if let Some(tx) = self.login_tx.take() {
                let _ = tx.send(login.expires_at);
            }
        }
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.login.is_none() {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        if self.channels.len() >= MAX_CHANNELS {
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        // Requests and input reach this handler; the read half is not needed (and must not sit
        // unread, or russh would wait for it to be drained).
        let (read, write) = channel.split();
        drop(read);
        self.channels.insert(
            write.id(),
            ChannelState {
                write: Some(write),
                pty: None,
                env: Vec::new(),
                input: None,
            },
        );
        reply.accept().await;
        Ok(())
    }

    /// Refused: no tunnels into the host's network.
    async fn channel_open_direct_tcpip(
        &mut self,
        _: Channel<Msg>,
        _: &str,
        _: u32,
        _: &str,
        _: u32,
        reply: ChannelOpenHandle,
        _: &mut Session,
    ) -> Result<(), Self::Error> {
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    /// Refused: no tunnels into the host's sockets.
    async fn channel_open_direct_streamlocal(
        &mut self,
        _: Channel<Msg>,
        _: &str,
        reply: ChannelOpenHandle,
        _: &mut Session,
    ) -> Result<(), Self::Error> {
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _: &mut Session,
    ) -> Result<(), Self::Error> {
        // Dropping the input sender ends the channel's process task.
        self.channels.remove(&channel);
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _: &mut Session,
    ) -> Result<(), Self::Error> {
        self.feed(channel, Input::Eof).await;
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _: &mut Session,
    ) -> Result<(), Self::Error> {
        self.feed(channel, Input::Data(Bytes::copy_from_slice(data)))
            .await;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        _: u32,
        _: u32,
        _: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let acceptable_term = !term.is_empty()
            && term.len() <= 64
            && term
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b));
        match self.channels.get_mut(&channel) {
            Some(state) if state.input.is_none() => {
                state.pty = Some(PtyRequest {
                    term: if acceptable_term { term } else { "xterm" }.to_string(),
                    size: tty_size(col_width, row_height),
                });
                session.channel_success(channel)
            }
            _ => session.channel_failure(channel),
        }
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match self.channels.get_mut(&channel) {
            Some(state)
                if state.input.is_none()
                    && state.env.len() < MAX_ENV
                    && env_allowed(name, value) =>
            {
                state.env.push((name.to_string(), value.to_string()));
                session.channel_success(channel)
            }
            _ => session.channel_failure(channel),
        }
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, None, session)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let command = String::from_utf8_lossy(data).into_owned();
        self.start(channel, Some(command), session)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _: bool,
        _: &str,
        _: &str,
        _: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        _: u32,
        _: u32,
        _: &mut Session,
    ) -> Result<(), Self::Error> {
        let size = tty_size(col_width, row_height);
        let running = match self.channels.get_mut(&channel) {
            Some(state) => match (&mut state.pty, &state.input) {
                (Some(pty), None) => {
                    pty.size = size;
                    None
                }
                (Some(_), Some(input)) => Some(input.clone()),
                (None, _) => None,
            },
            None => None,
        };
        if let Some(input) = running {
            // A resize is never worth stalling the connection for.
            let _ = input.try_send(Input::Resize(size));
        }
        Ok(())
    }
}

/// A channel's process: start it, pump input and output until it exits (or the client leaves),
/// then report its exit status and close the channel.
async fn run_process(
    runtime: Arc<dyn ContainerRuntime>,
    container: String,
    spec: ExecSpec,
    write: ChannelWriteHalf<Msg>,
    mut input: mpsc::Receiver<Input>,
    stop: CancellationToken,
) {
    let started = tokio::select! {
        () = stop.cancelled() => return,
        started = runtime.exec_attached(&container, &spec) => started,
    };
    let AttachedExec {
        id,
        output,
        input: stdin,
    } = match started {
        Ok(exec) => exec,
        Err(error) => {
            warn!(%error, "starting a process for an SSH session failed");
            let reason = match error {
                RuntimeError::Conflict(_) | RuntimeError::NotFound(_) => "the agent is not running",
                _ => "docker could not start the process",
            };
            let message = format!("flotilla: {reason}\r\n");
            let _ = write.extended_data_bytes(1, Bytes::from(message)).await;
            finish(&write, 255).await;
            return;
        }
    };
    let exited = tokio::select! {
        () = stop.cancelled() => false,
        delivered = pump_output(output, &write) => delivered,
        // The client closed the channel (or the connection went away).
        () = pump_input(&mut input, stdin, &*runtime, &id) => false,
    };
    // Leaving the loops drops the attached streams: a shell on a terminal gets SIGHUP.
    if exited {
        let code = exit_code(&*runtime, &id).await;
        finish(&write, code).await;
    }
}

/// Copy the process's output to the client until it ends; false if the client went away first.
async fn pump_output(
    mut output: futures_util::stream::BoxStream<'static, Result<ExecOutput, RuntimeError>>,
    write: &ChannelWriteHalf<Msg>,
) -> bool {
    while let Some(chunk) = output.next().await {
        let sent = match chunk {
            Ok(ExecOutput::Stdout(bytes)) => write.data_bytes(bytes).await,
            Ok(ExecOutput::Stderr(bytes)) => write.extended_data_bytes(1, bytes).await,
            Err(error) => {
                debug!(%error, "SSH process output ended with an error");
                break;
            }
        };
        if sent.is_err() {
            return false;
        }
    }
    true
}

/// Copy the client's input to the process until the client closes the channel.
async fn pump_input(
    input: &mut mpsc::Receiver<Input>,
    stdin: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    runtime: &dyn ContainerRuntime,
    exec_id: &str,
) {
    let mut stdin = Some(stdin);
    while let Some(message) = input.recv().await {
        match message {
            Input::Data(bytes) => {
                if let Some(writer) = stdin.as_mut()
                    && (writer.write_all(&bytes).await.is_err() || writer.flush().await.is_err())
                {
                    // The process closed its input; later input has nowhere to go.
                    stdin = None;
                }
            }
            Input::Eof => {
                if let Some(mut writer) = stdin.take() {
                    let _ = writer.shutdown().await;
                }
            }
            Input::Resize(size) => {
                if let Err(error) = runtime.resize_exec(exec_id, size).await {
                    debug!(%error, "resizing an SSH terminal failed");
                }
            }
        }
    }
}

/// The exit code of a finished exec, as an SSH exit status (255 when unknown). The runtime may
/// need a moment after the output ends to record it.
async fn exit_code(runtime: &dyn ContainerRuntime, exec_id: &str) -> u32 {
    for _ in 0..40 {
        match runtime.exec_exit_code(exec_id).await {
            Ok(Some(code)) => return u32::try_from(code).unwrap_or(255),
            Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(error) => {
                debug!(%error, "reading an SSH process's exit code failed");
                return 255;
            }
        }
    }
    255
}

/// Report the exit status and close the channel.
async fn finish(write: &ChannelWriteHalf<Msg>, code: u32) {
    let _ = write.exit_status(code).await;
    let _ = write.eof().await;
    let _ = write.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_sizes_are_sane() {
        assert_eq!(tty_size(0, 0), DEFAULT_TTY);
        assert_eq!(
            tty_size(120, 40),
            TtySize {
                cols: 120,
                rows: 40
            }
        );
        assert_eq!(
            tty_size(u32::MAX, 10),
            TtySize {
                cols: 4096,
                rows: 10
            }
        );
    }

    #[test]
    fn only_locale_variables_pass() {
        assert!(env_allowed("LANG", "C.UTF-8"));
        assert!(env_allowed("LC_ALL", "C"));
        for (name, value) in [
            ("PATH", "/x"),
            ("LD_PRELOAD", "x"),
            ("LC_x", "C"),
            ("LANG", "a\0b"),
        ] {
            assert!(!env_allowed(name, value), "{name}");
        }
    }
}
