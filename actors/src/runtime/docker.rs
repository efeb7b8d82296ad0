//! The local Docker implementation of [`ContainerRuntime`], over bollard.
//!
//! Every call is bounded by a deadline (bollard's own timeout does not cover streamed bodies) and
//! its error classified: daemon unreachable → `Unavailable`, deadline passed → `Timeout`,
//! 404 → `NotFound`, 409 → `Conflict`. The API version is negotiated at connect, since daemons
//! are often older than bollard's default.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, ContainerSummaryStateEnum, HostConfig,
    HostConfigCgroupnsModeEnum, Mount, MountType, RestartPolicy, RestartPolicyNameEnum,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    ContainerArchiveInfoOptionsBuilder, CreateContainerOptions, CreateContainerOptionsBuilder,
    DownloadFromContainerOptionsBuilder, EventsOptionsBuilder, ListContainersOptionsBuilder,
    ListVolumesOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptionsBuilder, RenameContainerOptionsBuilder, StatsOptionsBuilder,
    StopContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::{MutationGauge, observe_docker_call};

use super::{AttachedExec, ExecOutput, ExecSpec, TtySize};
use super::{
    ByteStream, ContainerInfo, ContainerRuntime, ContainerSpec, ContainerState, EventStream,
    HostInfo, PathStat, RuntimeError, RuntimeEvent, StatsReading,
};

/// Go's `os.ModeDir` and `os.ModeSymlink`, as Docker reports file modes.
const GO_MODE_DIR: u32 = 1 << 31;
const GO_MODE_SYMLINK: u32 = 1 << 27;

/// Detach keys of attached execs with a TTY. Docker always watches a TTY's input for a detach
/// sequence (default `ctrl-p,ctrl-q`, which would swallow readline's ctrl-p) and cannot be told
/// not to; a long sequence of rarely typed keys makes an accidental detach practically
/// impossible. Its first key (ctrl-^) is held back until the next key shows it is not a detach.
const EXEC_DETACH_KEYS: &str = "ctrl-^,ctrl-@,ctrl-^,ctrl-@,ctrl-^,ctrl-@,ctrl-^,ctrl-@";

/// Mutating Docker calls allowed at once unless [`DockerRuntime::with_mutation_limit`] says
/// otherwise (`FLOTILLA_DOCKER_CONCURRENCY`).
pub const DEFAULT_MUTATION_LIMIT: usize = 16;

/// Local Docker through bollard. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    docker: Docker,
    /// Deadline of one ordinary call.
    timeout: Duration,
    /// Slots for calls that change Docker's state (create, start, stop, remove, rename,
    /// volumes, copying files in), shared by every clone: a burst of creates across the fleet
    /// queues here instead of piling onto dockerd, which gains no throughput beyond a few
    /// concurrent creates. Reads (inspect, list, stats, logs, archives out, execs) never wait.
    /// The wait is not part of a call's deadline; callers are bounded by the actor timeout.
    mutations: Arc<Semaphore>,
}

impl DockerRuntime {
    /// Connect to the local daemon (`DOCKER_HOST` or `/var/run/docker.sock`) and negotiate the
    /// API version. Fails if the daemon cannot be reached.
    pub async fn connect(timeout: Duration) -> Result<Self, RuntimeError> {
        let docker = Docker::connect_with_local_defaults().map_err(classify)?;
        let docker = bounded(timeout, "negotiating the API version", async move {
            docker.negotiate_version().await
        })
        .await?;
        Ok(Self {
            docker,
            timeout,
            mutations: Arc::new(Semaphore::new(DEFAULT_MUTATION_LIMIT)),
        })
    }

    /// Allow at most `limit` (≥ 1) mutating calls at once, across every clone made from now on.
    pub fn with_mutation_limit(mut self, limit: usize) -> Self {
        self.mutations = Arc::new(Semaphore::new(limit.max(1)));
        self
    }

    /// Wait for a slot for a mutating call; the slot is held until the returned guard drops.
    async fn mutation_slot(&self) -> Result<MutationSlot, RuntimeError> {
        let mut gauge = MutationGauge::waiting();
        let permit =
            self.mutations.clone().acquire_owned().await.map_err(|_| {
                RuntimeError::Unavailable("the docker runtime is shutting down".into())
            })?;
        gauge.running();
        Ok(MutationSlot {
            _permit: permit,
            _gauge: gauge,
        })
    }

    /// The underlying client, for the image builder.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    async fn call<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, DockerError>>,
    ) -> Result<T, RuntimeError> {
        bounded(self.timeout, what, fut).await
    }
}

/// A held slot for a mutating call (see [`DockerRuntime::mutation_slot`]).
struct MutationSlot {
    _permit: OwnedSemaphorePermit,
    _gauge: MutationGauge,
}

/// Run a Docker call with a deadline and classify its failure. Its duration is recorded in
/// `flotilla_docker_call_duration_seconds` under `what`'s slug (see [`crate::metrics`]).
pub(crate) async fn bounded<T>(
    timeout: Duration,
    what: &str,
    fut: impl Future<Output = Result<T, DockerError>>,
) -> Result<T, RuntimeError> {
    let started = std::time::Instant::now();
    let result = match tokio::time::timeout(timeout, fut).await {
        Ok(result) => result.map_err(classify),
        Err(_) => Err(RuntimeError::Timeout(format!(
            "{what} took longer than {}s",
            timeout.as_secs()
        ))),
    };
    observe_docker_call(what, started.elapsed());
    result
}

/// Map a bollard error to the runtime-neutral classes.
pub(crate) fn classify(e: DockerError) -> RuntimeError {
    match e {
        DockerError::DockerResponseServerError {
            status_code,
            message,
        } => match status_code {
            404 => RuntimeError::NotFound(message),
            409 => RuntimeError::Conflict(message),
            _ => RuntimeError::Other(format!("{message} (status {status_code})")),
        },
        DockerError::RequestTimeoutError => RuntimeError::Timeout("request timed out".into()),
        DockerError::SocketNotFoundError(path) => {
            RuntimeError::Unavailable(format!("no docker socket at {path}"))
        }
        DockerError::HyperLegacyError { err } => {
            RuntimeError::Unavailable(format!("cannot reach the docker daemon: {err}"))
        }
        DockerError::IOError { err } => {
            RuntimeError::Unavailable(format!("cannot reach the docker daemon: {err}"))
        }
        other => RuntimeError::Other(other.to_string()),
    }
}

fn label_filter(label: &str, value: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![format!("{label}={value}")])])
}

fn to_btree(labels: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    labels.unwrap_or_default().into_iter().collect()
}

fn inspect_state(status: Option<ContainerStateStatusEnum>) -> ContainerState {
    match status {
        Some(ContainerStateStatusEnum::RUNNING) => ContainerState::Running,
        Some(ContainerStateStatusEnum::PAUSED) => ContainerState::Paused,
        Some(ContainerStateStatusEnum::RESTARTING) => ContainerState::Restarting,
        _ => ContainerState::Stopped,
    }
}

fn log_bytes(output: LogOutput) -> Bytes {
    match output {
        LogOutput::StdOut { message }
        | LogOutput::StdErr { message }
        | LogOutput::StdIn { message }
        | LogOutput::Console { message } => message,
    }
}

fn summary_state(status: Option<ContainerSummaryStateEnum>) -> ContainerState {
    match status {
        Some(ContainerSummaryStateEnum::RUNNING) => ContainerState::Running,
        Some(ContainerSummaryStateEnum::PAUSED) => ContainerState::Paused,
        Some(ContainerSummaryStateEnum::RESTARTING) => ContainerState::Restarting,
        _ => ContainerState::Stopped,
    }
}

#[async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn host_info(&self) -> Result<HostInfo, RuntimeError> {
        let info = self.call("reading host info", self.docker.info()).await?;
        Ok(HostInfo {
            cpus: info.ncpu.unwrap_or(1),
            memory_bytes: info.mem_total.unwrap_or(i64::MAX),
        })
    }

    async fn image_exists(&self, image: &str) -> Result<bool, RuntimeError> {
        match self
            .call("inspecting the image", self.docker.inspect_image(image))
            .await
        {
            Ok(_) => Ok(true),
            Err(RuntimeError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn create_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), RuntimeError> {
        let request = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        let _slot = self.mutation_slot().await?;
        self.call("creating a volume", self.docker.create_volume(request))
            .await
            .map(|_| ())
    }

    async fn volume_exists(&self, name: &str) -> Result<bool, RuntimeError> {
        match self
            .call("inspecting a volume", self.docker.inspect_volume(name))
            .await
        {
            Ok(_) => Ok(true),
            Err(RuntimeError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        let options = RemoveVolumeOptionsBuilder::default().force(false).build();
        let _slot = self.mutation_slot().await?;
        match self
            .call(
                "removing a volume",
                self.docker.remove_volume(name, Some(options)),
            )
            .await
        {
            Ok(()) | Err(RuntimeError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn list_volumes(&self, label: &str, value: &str) -> Result<Vec<String>, RuntimeError> {
        let filters = label_filter(label, value);
        let options = ListVolumesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let list = self
            .call("listing volumes", self.docker.list_volumes(Some(options)))
            .await?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect())
    }

    /// Creates the container [`create_request`] describes.
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let (options, body) = create_request(spec);
        let _slot = self.mutation_slot().await?;
        let created = self
            .call(
                "creating a container",
                self.docker.create_container(Some(options), body),
            )
            .await?;
        Ok(created.id)
    }

    async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        let _slot = self.mutation_slot().await?;
        // Started straight away, not inspected first: Docker refuses to start a paused
        // container (409, "cannot start a paused container, try unpause instead"), and only
        // then is it unpaused.
        match self
            .call(
                "starting a container",
                self.docker
                    .start_container(id, None::<bollard::query_parameters::StartContainerOptions>),
            )
            .await
        {
            Err(RuntimeError::Conflict(message)) if message.contains("paused") => {
                self.call("unpausing a container", self.docker.unpause_container(id))
                    .await
            }
            other => other,
        }
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let seconds = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::default().t(seconds).build();
        let deadline = self.timeout + grace;
        let _slot = self.mutation_slot().await?;
        match bounded(
            deadline,
            "stopping a container",
            self.docker.stop_container(id, Some(options)),
        )
        .await
        {
            Ok(()) | Err(RuntimeError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(false)
            .build();
        let _slot = self.mutation_slot().await?;
        match self
            .call(
                "removing a container",
                self.docker.remove_container(id, Some(options)),
            )
            .await
        {
            Ok(()) | Err(RuntimeError::NotFound(_)) => Ok(()),
            // Removal already in progress (e.g. by a concurrent cleanup): it will be gone.
            Err(RuntimeError::Conflict(m)) if m.contains("already in progress") => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn rename_container(&self, id: &str, new_name: &str) -> Result<(), RuntimeError> {
        let options = RenameContainerOptionsBuilder::default()
            .name(new_name)
            .build();
        let _slot = self.mutation_slot().await?;
        self.call(
            "renaming a container",
            self.docker.rename_container(id, options),
        )
        .await
    }

    async fn inspect_container(&self, id: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        let inspected = match self
            .call(
                "inspecting a container",
                self.docker.inspect_container(
                    id,
                    None::<bollard::query_parameters::InspectContainerOptions>,
                ),
            )
            .await
        {
            Ok(i) => i,
            Err(RuntimeError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(ContainerInfo {
            id: inspected.id.unwrap_or_default(),
            name: inspected
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            oom_killed: inspected
                .state
                .as_ref()
                .and_then(|s| s.oom_killed)
                .unwrap_or(false),
            started_at: inspected
                .state
                .as_ref()
                .and_then(|s| s.started_at.as_deref())
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
                .filter(|t| t.timestamp() > 0),
            state: inspect_state(inspected.state.and_then(|s| s.status)),
            labels: to_btree(inspected.config.and_then(|c| c.labels)),
        }))
    }

    async fn list_containers(
        &self,
        label: &str,
        value: &str,
    ) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let filters = label_filter(label, value);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .call(
                "listing containers",
                self.docker.list_containers(Some(options)),
            )
            .await?;
        Ok(list
            .into_iter()
            .map(|c| ContainerInfo {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .unwrap_or_default()
                    .first()
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                state: summary_state(c.state),
                labels: to_btree(c.labels),
                started_at: None,
                oom_killed: false,
            })
            .collect())
    }

    async fn put_archive(&self, id: &str, path: &str, tar: Bytes) -> Result<(), RuntimeError> {
        let options = UploadToContainerOptionsBuilder::default()
            .path(path)
            .build();
        let _slot = self.mutation_slot().await?;
        self.call(
            "copying files into a container",
            self.docker
                .upload_to_container(id, Some(options), bollard::body_full(tar)),
        )
        .await
    }

    fn archive(&self, id: &str, path: &str) -> ByteStream {
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(path)
            .build();
        self.docker
            .download_from_container(id, Some(options))
            .map_err(classify)
            .boxed()
    }

    async fn stat_path(&self, id: &str, path: &str) -> Result<Option<PathStat>, RuntimeError> {
        let options = ContainerArchiveInfoOptionsBuilder::default()
            .path(path)
            .build();
        let stat = match self
            .call(
                "reading a path's status",
                self.docker.get_container_archive_info(id, Some(options)),
            )
            .await
        {
            Ok(stat) => stat,
            // The container exists but the path does not (a missing container is NotFound too,
            // which callers rule out by holding its id from the agent's snapshot).
            Err(RuntimeError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let is_symlink = stat.file_mode & GO_MODE_SYMLINK != 0;
        Ok(Some(PathStat {
            name: stat.name,
            size: stat.size,
            is_dir: stat.file_mode & GO_MODE_DIR != 0,
            is_symlink,
            modified: stat.modification_time,
            link_target: (is_symlink && !stat.link_target.is_empty()).then_some(stat.link_target),
        }))
    }

    async fn logs(&self, id: &str, tail: u64, max_bytes: usize) -> Result<Bytes, RuntimeError> {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&tail.to_string())
            .build();
        let mut stream = self.docker.logs(id, Some(options));
        let collect = async {
            let mut out = BytesMut::new();
            while let Some(chunk) = stream.next().await {
                out.extend_from_slice(&log_bytes(chunk?));
                if out.len() > max_bytes * 2 {
                    // Keep memory bounded while reading: drop the oldest half.
                    let excess = out.len() - max_bytes;
                    let _ = out.split_to(excess);
                }
            }
            Ok(out)
        };
        let mut out = bounded(self.timeout, "reading logs", collect).await?;
        if out.len() > max_bytes {
            let _ = out.split_to(out.len() - max_bytes);
        }
        Ok(out.freeze())
    }

    fn follow_logs(&self, id: &str, tail: u64) -> ByteStream {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(true)
            .tail(&tail.to_string())
            .build();
        self.docker
            .logs(id, Some(options))
            .map(|chunk| chunk.map(log_bytes).map_err(classify))
            .boxed()
    }

    async fn stats(&self, id: &str) -> Result<StatsReading, RuntimeError> {
        let options = StatsOptionsBuilder::default()
            .stream(false)
            .one_shot(true)
            .build();
        let mut stream = self.docker.stats(id, Some(options));
        let reading = bounded(self.timeout, "reading stats", async {
            stream.next().await.transpose()
        })
        .await?
        .ok_or_else(|| RuntimeError::Other("docker returned no stats".into()))?;
        let cpu = reading.cpu_stats.unwrap_or_default();
        let memory = reading.memory_stats.unwrap_or_default();
        // Page cache is not memory the agent needs: cgroup v2 reports it as inactive_file,
        // v1 as total_inactive_file (what `docker stats` subtracts).
        let cache = memory
            .stats
            .as_ref()
            .and_then(|s| {
                s.get("inactive_file")
                    .or_else(|| s.get("total_inactive_file"))
                    .copied()
            })
            .unwrap_or(0);
        let usage = memory.usage.unwrap_or(0);
        let (rx, tx) =
            reading
                .networks
                .unwrap_or_default()
                .values()
                .fold((0u64, 0u64), |(rx, tx), n| {
                    (
                        rx.saturating_add(n.rx_bytes.unwrap_or(0)),
                        tx.saturating_add(n.tx_bytes.unwrap_or(0)),
                    )
                });
        Ok(StatsReading {
            read_at: Utc::now(),
            cpu_total_ns: cpu.cpu_usage.and_then(|u| u.total_usage).unwrap_or(0),
            system_cpu_ns: cpu.system_cpu_usage.unwrap_or(0),
            online_cpus: cpu.online_cpus.unwrap_or(1).max(1),
            memory_used_bytes: usage.saturating_sub(cache),
            memory_limit_bytes: memory.limit.unwrap_or(0),
            network_rx_bytes: rx,
            network_tx_bytes: tx,
        })
    }

    async fn exec_attached(&self, id: &str, spec: &ExecSpec) -> Result<AttachedExec, RuntimeError> {
        let config = bollard::models::ExecConfig {
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(spec.tty.is_some()),
            // Honoured from API 1.42 on; older daemons are sized by the resize below.
            console_size: spec
                .tty
                .map(|size| vec![usize::from(size.rows), usize::from(size.cols)]),
            detach_keys: spec.tty.map(|_| EXEC_DETACH_KEYS.to_string()),
            env: Some(spec.env.clone()),
            cmd: Some(spec.cmd.clone()),
            privileged: Some(false),
            user: Some(spec.user.clone()),
            working_dir: Some(spec.working_dir.clone()),
        };
        let created = self
            .call("creating an exec", self.docker.create_exec(id, config))
            .await?;
        let options = bollard::exec::StartExecOptions {
            detach: false,
            tty: spec.tty.is_some(),
            output_capacity: None,
        };
        let started = self
            .call(
                "starting an exec",
                self.docker.start_exec(&created.id, Some(options)),
            )
            .await?;
        let bollard::exec::StartExecResults::Attached { output, input } = started else {
            return Err(RuntimeError::Other(
                "docker started the exec detached".into(),
            ));
        };
        if let Some(size) = spec.tty {
            // The process may not have started when the attach returns, and Docker refuses to
            // resize it until it has ("cannot resize a stopped container"): retry briefly, as
            // the docker CLI does. Before API 1.42 (no `ConsoleSize`) a command that finishes
            // within these first milliseconds may therefore still see a 0x0 terminal.
            for attempt in 1..=10u64 {
                match self.resize_exec(&created.id, size).await {
                    Ok(()) => break,
                    Err(error) if attempt == 10 => {
                        tracing::debug!(%error, "sizing an exec's terminal failed");
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10 * attempt)).await,
                }
            }
        }
        let output = output
            .map(|chunk| {
                chunk.map_err(classify).map(|out| match out {
                    LogOutput::StdErr { message } => ExecOutput::Stderr(message),
                    LogOutput::StdOut { message }
                    | LogOutput::Console { message }
                    | LogOutput::StdIn { message } => ExecOutput::Stdout(message),
                })
            })
            .boxed();
        Ok(AttachedExec {
            id: created.id,
            output,
            input,
        })
    }

    async fn resize_exec(&self, exec_id: &str, size: TtySize) -> Result<(), RuntimeError> {
        let options = bollard::query_parameters::ResizeExecOptionsBuilder::default()
            .w(i32::from(size.cols))
            .h(i32::from(size.rows))
            .build();
        self.call(
            "resizing an exec's terminal",
            self.docker.resize_exec(exec_id, options),
        )
        .await
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, RuntimeError> {
        let inspected = self
            .call("inspecting an exec", self.docker.inspect_exec(exec_id))
            .await?;
        if inspected.running == Some(true) {
            return Ok(None);
        }
        Ok(inspected.exit_code)
    }

    fn container_events(&self, label: &str, value: &str) -> EventStream {
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("label".to_string(), vec![format!("{label}={value}")]),
        ]);
        let options = EventsOptionsBuilder::default().filters(&filters).build();
        self.docker
            .events(Some(options))
            .map(|event| {
                let event = event.map_err(classify)?;
                let actor = event.actor.unwrap_or_default();
                let mut labels = actor.attributes.unwrap_or_default();
                let exit_code = labels.get("exitCode").and_then(|c| c.parse().ok());
                // Attributes mix labels with a few fields of Docker's own.
                for key in ["exitCode", "image", "name", "signal"] {
                    labels.remove(key);
                }
                Ok(RuntimeEvent {
                    container_id: actor.id.unwrap_or_default(),
                    action: event.action.unwrap_or_default(),
                    labels: labels.into_iter().collect(),
                    exit_code,
                })
            })
            .boxed()
    }
}

/// The Docker create request for `spec`, with flotilla's fixed hardening: every capability
/// dropped, `no-new-privileges`, an init process (so stop takes milliseconds), the
/// `unless-stopped` restart policy, a pids limit, swap capped at the memory limit, no
/// privileged mode, no binds, the default bridge network, a private cgroup namespace (the
/// daemon's default on cgroup v1 hosts is the host's, which shows the host's cgroup tree). Only
/// named volumes from the spec are mounted. Public for the fleet benchmark's raw baseline,
/// which must make exactly these containers.
pub fn create_request(spec: &ContainerSpec) -> (CreateContainerOptions, ContainerCreateBody) {
    let mounts = spec
        .mounts
        .iter()
        .map(|m| Mount {
            target: Some(m.target.clone()),
            source: Some(m.volume.clone()),
            typ: Some(MountType::VOLUME),
            read_only: Some(m.read_only),
            ..Default::default()
        })
        .collect();
    let host_config = HostConfig {
        nano_cpus: Some(spec.nano_cpus),
        memory: Some(spec.memory_bytes),
        memory_swap: Some(spec.memory_bytes),
        pids_limit: Some(spec.pids_limit),
        cap_drop: Some(vec!["ALL".into()]),
        security_opt: Some(vec!["no-new-privileges:true".into()]),
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
            maximum_retry_count: None,
        }),
        init: Some(true),
        privileged: Some(false),
        network_mode: Some("bridge".into()),
        cgroupns_mode: Some(HostConfigCgroupnsModeEnum::PRIVATE),
        mounts: Some(mounts),
        ..Default::default()
    };
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        user: Some(spec.user.clone()),
        hostname: Some(spec.hostname.clone()),
        working_dir: Some(spec.working_dir.clone()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(spec.labels.clone().into_iter().collect()),
        host_config: Some(host_config),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default()
        .name(&spec.name)
        .build();
    (options, body)
}
