//! The baseline: the same containers flotilla makes, made directly through bollard.
//!
//! Each raw agent gets what a flotilla agent gets from Docker — its two labelled named volumes
//! (workspace and runtime state) and a container built from flotilla's own
//! `container_spec` (same image, user, environment, mounts, CPU/memory/pids limits), sent as
//! the very create request flotilla's Docker runtime sends (`runtime::docker::create_request`,
//! with its fixed hardening) — and nothing else: no registry row, no runtime settings files,
//! no inspects. Its objects carry their own instance label, so
//! the server under test never sees their events.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::{
    DownloadFromContainerOptionsBuilder, ListContainersOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder, StopContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use chrono::Utc;
use flotilla_actors::agent::{runtime_files, spec};
use flotilla_actors::model::{
    AgentId, AgentRecord, AgentRuntime, DEFAULT_EXECUTION_TIMEOUT, Phase, Resources,
};
use flotilla_actors::runtime::ContainerSpec;
use flotilla_actors::{FleetConfig, runtime::labels};
use futures_util::StreamExt;

/// Stop grace period, as flotilla's (`FleetConfig::stop_grace`): agents run with an init, so a
/// stop takes milliseconds either way.
const STOP_GRACE_SECONDS: i32 = 10;

/// One raw agent: its container spec and volume names.
#[derive(Debug, Clone)]
pub struct RawAgent {
    /// The record flotilla would keep for it (for the runtime files of [`start_synced`]).
    pub record: AgentRecord,
    pub spec: ContainerSpec,
    pub volumes: Vec<String>,
    pub labels: HashMap<String, String>,
}

/// What flotilla would build for an agent called `name` with these limits.
pub fn raw_agent(
    instance: &str,
    image: &str,
    name: &str,
    ssh_port: u16,
    cpu: &str,
    memory: &str,
) -> Result<RawAgent, String> {
    let mut config = FleetConfig::new(instance, "mem://");
    config.agent_image = image.to_string();
    let record = AgentRecord {
        id: AgentId::new(),
        name: name.to_string(),
        owner: "admin".into(),
        agent_type: "business-assistant".into(),
        runtime: AgentRuntime::ClaudeCode,
        runtime_model: None,
        template: None,
        resources: Resources {
            cpu: cpu.into(),
            memory: memory.into(),
        },
        custom_instructions: None,
        github_repo: None,
        tags: Vec::new(),
        system: false,
        ssh_port,
        autonomy_enabled: false,
        read_only_enabled: false,
        read_only_patterns: Default::default(),
        execution_timeout_seconds: DEFAULT_EXECUTION_TIMEOUT,
        expose_enabled: false,
        consume_enabled: false,
        avatar_version: 0,
        created: Utc::now(),
        phase: Phase::Ready,
    };
    let spec = spec::container_spec(&config, &record, &[]).map_err(|e| e.to_string())?;
    Ok(RawAgent {
        volumes: vec![
            spec::workspace_volume(record.id),
            spec::state_volume(record.id),
        ],
        labels: spec::object_labels(&config, record.id)
            .into_iter()
            .collect(),
        spec,
        record,
    })
}

fn err(e: bollard::errors::Error) -> String {
    e.to_string()
}

/// Create the volumes and the container, then start it; returns the container id.
pub async fn create_and_start(docker: &Docker, agent: &RawAgent) -> Result<String, String> {
    let id = create(docker, agent).await?;
    start(docker, &id).await?;
    Ok(id)
}

/// [`create_and_start`] with the Docker calls flotilla's create adds, made directly: a lookup
/// of the container name and of the workspace volume (both absent), the runtime files written
/// before the start, and an inspect after it. The baseline that tells flotilla's own overhead
/// (HTTP, actors, the store) from the work it does in Docker.
pub async fn create_and_start_synced(docker: &Docker, agent: &RawAgent) -> Result<String, String> {
    let absent = |r: Result<(), bollard::errors::Error>| match r {
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Ok(()) => Err(format!("{} already exists", agent.spec.name)),
        Err(e) => Err(e.to_string()),
    };
    absent(
        docker
            .inspect_container(&agent.spec.name, None)
            .await
            .map(drop),
    )?;
    absent(docker.inspect_volume(&agent.volumes[0]).await.map(drop))?;
    let id = create(docker, agent).await?;
    write_runtime_files(docker, &id, agent, None).await?;
    start(docker, &id).await?;
    docker.inspect_container(&id, None).await.map_err(err)?;
    Ok(id)
}

/// Create the volumes and the container; returns the container id.
async fn create(docker: &Docker, agent: &RawAgent) -> Result<String, String> {
    for volume in &agent.volumes {
        docker
            .create_volume(VolumeCreateRequest {
                name: Some(volume.clone()),
                labels: Some(agent.labels.clone()),
                ..Default::default()
            })
            .await
            .map_err(err)?;
    }
    let (options, body) = flotilla_actors::runtime::docker::create_request(&agent.spec);
    let created = docker
        .create_container(Some(options), body)
        .await
        .map_err(err)?;
    Ok(created.id)
}

pub async fn start(docker: &Docker, id: &str) -> Result<(), String> {
    docker
        .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
        .await
        .map_err(err)
}

/// A start preceded by what flotilla's start adds in Docker: its runtime settings read through
/// the archive API and, when they differ from what flotilla would write, its runtime files
/// written back through it (the same calls, made directly) — the baseline that tells
/// flotilla's own overhead from the work it does.
pub async fn start_synced(docker: &Docker, id: &str, agent: &RawAgent) -> Result<(), String> {
    let current = read_settings(docker, id, agent).await?;
    let files = runtime_files::state_files(&agent.record, current.as_deref());
    // flotilla's actor remembers the digest of what it wrote; here the files were written by
    // [`write_runtime_files`] beforehand, so only the settings file can differ.
    let written = Some(runtime_files::digest(&files));
    if !runtime_files::up_to_date(&files, current.as_deref(), written) {
        write_runtime_files(docker, id, agent, current.as_deref()).await?;
    }
    start(docker, id).await
}

/// The runtime's `settings.json` in the container, `None` if it has none.
async fn read_settings(
    docker: &Docker,
    id: &str,
    agent: &RawAgent,
) -> Result<Option<Vec<u8>>, String> {
    let state_dir = agent.record.runtime.state_dir();
    let options = DownloadFromContainerOptionsBuilder::default()
        .path(&format!(
            "{}/{state_dir}/{}",
            spec::HOME,
            runtime_files::SETTINGS
        ))
        .build();
    let mut tar = Vec::new();
    let mut stream = docker.download_from_container(id, Some(options));
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => tar.extend_from_slice(&bytes),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(spec::single_file(&tar, 1024 * 1024))
}

/// Write the runtime files flotilla would write for this agent (merging into `current`).
pub async fn write_runtime_files(
    docker: &Docker,
    id: &str,
    agent: &RawAgent,
    current: Option<&[u8]>,
) -> Result<(), String> {
    let files = runtime_files::state_files(&agent.record, current);
    let archive =
        runtime_files::home_archive(agent.record.runtime, &files).map_err(|e| e.to_string())?;
    let options = UploadToContainerOptionsBuilder::default()
        .path(spec::HOME)
        .build();
    docker
        .upload_to_container(id, Some(options), bollard::body_full(archive))
        .await
        .map_err(err)
}

pub async fn stop(docker: &Docker, id: &str) -> Result<(), String> {
    let options = StopContainerOptionsBuilder::default()
        .t(STOP_GRACE_SECONDS)
        .build();
    docker.stop_container(id, Some(options)).await.map_err(err)
}

/// Remove the container (forcibly: it may be running) and its volumes.
pub async fn delete(docker: &Docker, id: &str, volumes: &[String]) -> Result<(), String> {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(false)
        .build();
    docker
        .remove_container(id, Some(options))
        .await
        .map_err(err)?;
    for volume in volumes {
        let options = RemoveVolumeOptionsBuilder::default().force(false).build();
        docker
            .remove_volume(volume, Some(options))
            .await
            .map_err(err)?;
    }
    Ok(())
}

fn instance_filter(instance: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        vec![format!("{}={instance}", labels::INSTANCE)],
    )])
}

/// Containers and volumes labelled with `instance`.
pub async fn instance_objects(
    docker: &Docker,
    instance: &str,
) -> Result<(Vec<String>, Vec<String>), String> {
    let filters = instance_filter(instance);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(err)?
        .into_iter()
        .filter_map(|c| c.id)
        .collect();
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(err)?
        .volumes
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.name)
        .collect();
    Ok((containers, volumes))
}

/// Remove every container (with anonymous volumes) and volume labelled with `instance`, 16 at a
/// time. Returns how many of each were removed.
pub async fn remove_instance(docker: &Docker, instance: &str) -> Result<(usize, usize), String> {
    let (containers, _) = instance_objects(docker, instance).await?;
    let removed_containers = futures_util::stream::iter(containers)
        .map(|id| async move {
            let options = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            docker.remove_container(&id, Some(options)).await.is_ok()
        })
        .buffer_unordered(16)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    // Listed after the containers are gone: a volume in use cannot be removed.
    let (_, volumes) = instance_objects(docker, instance).await?;
    let removed_volumes = futures_util::stream::iter(volumes)
        .map(|name| async move {
            let options = RemoveVolumeOptionsBuilder::default().force(true).build();
            docker.remove_volume(&name, Some(options)).await.is_ok()
        })
        .buffer_unordered(16)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    Ok((removed_containers, removed_volumes))
}
