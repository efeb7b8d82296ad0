//! What an agent's Docker objects look like, derived from its record and the fleet config alone.
//!
//! Because the desired spec is a pure function of the record, the actor can tell whether a
//! container is stale (its `flotilla.spec` digest differs) and recreate it on the next start.

use std::collections::BTreeMap;

use crate::config::FleetConfig;
use crate::error::FleetError;
use crate::model::{AgentId, AgentRecord, AgentRuntime};
use crate::runtime::{ContainerSpec, VolumeMount, labels};

/// Home of the `developer` user inside every agent image; the workspace volume is mounted here.
pub const HOME: &str = "/home/developer";
/// `uid:gid` of `developer`, the agent image contract's unprivileged user.
pub const AGENT_USER: &str = "1000:1000";
pub const AGENT_UID: u64 = 1000;

pub fn container_name(agent_name: &str) -> String {
    format!("agent-{agent_name}")
}

pub fn workspace_volume(id: AgentId) -> String {
    format!("flotilla-{id}-workspace")
}

/// The volume holding the runtime's own state directory (mounted over `~/.claude` or
/// `~/.gemini`), separate from the workspace so it stays writable when the workspace is
/// mounted read-only.
pub fn state_volume(id: AgentId) -> String {
    format!("flotilla-{id}-state")
}

/// The volume an agent publishes as its shared folder (named by id: renames move nothing).
pub fn shared_volume(id: AgentId) -> String {
    format!("flotilla-{id}-shared")
}

/// Where an agent's own shared folder is mounted (read-write).
pub const SHARED_OUT: &str = "/home/developer/shared-out";
/// Where the shared folders it consumes are mounted (read-only), one per producer.
pub const SHARED_IN: &str = "/home/developer/shared-in";

/// A producer whose shared folder a consumer mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Producer {
    pub id: AgentId,
    pub name: String,
}

impl Producer {
    pub fn mount_path(&self) -> String {
        format!("{SHARED_IN}/{}", self.name)
    }
}

/// The producers a container mounts, from its `flotilla.consumes` label.
pub fn consumed_producers(info: &crate::runtime::ContainerInfo) -> Vec<AgentId> {
    info.label(labels::CONSUMES)
        .unwrap_or("")
        .split(',')
        .filter_map(|id| id.parse().ok())
        .collect()
}

/// Absolute path of the runtime's state directory inside the container.
pub fn state_dir(runtime: AgentRuntime) -> String {
    format!("{HOME}/{}", runtime.state_dir())
}

/// Labels shared by every object of an agent (container and volumes).
pub fn object_labels(config: &FleetConfig, id: AgentId) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::INSTANCE.to_string(), config.instance.clone()),
        (labels::AGENT_ID.to_string(), id.to_string()),
    ])
}

/// The container the agent should have right now, mounting the shared folders of `producers`
/// (already filtered to those it may consume).
pub fn container_spec(
    config: &FleetConfig,
    record: &AgentRecord,
    producers: &[Producer],
) -> Result<ContainerSpec, FleetError> {
    let nano_cpus = record
        .resources
        .nano_cpus()
        .map_err(|e| FleetError::invalid("resources.cpu", e))?;
    let memory_bytes = record
        .resources
        .memory_bytes()
        .map_err(|e| FleetError::invalid("resources.memory", e))?;

    let mut labels = object_labels(config, record.id);
    labels.insert(labels::AGENT_NAME.into(), record.name.clone());
    labels.insert(labels::RUNTIME.into(), record.runtime.to_string());
    labels.insert(labels::TYPE.into(), record.agent_type.clone());
    labels.insert(labels::SSH_PORT.into(), record.ssh_port.to_string());

    let mut env = BTreeMap::from([
        ("AGENT_ID".to_string(), record.id.to_string()),
        ("AGENT_NAME".to_string(), record.name.clone()),
        ("AGENT_RUNTIME".to_string(), record.runtime.to_string()),
        (
            "AGENT_RUNTIME_MODEL".to_string(),
            record.runtime_model.clone().unwrap_or_default(),
        ),
        ("HOME".to_string(), HOME.to_string()),
    ]);
    if let Some(repo) = &record.github_repo {
        env.insert("GITHUB_REPO".into(), repo.clone());
    }
    env.insert(
        "AGENT_EXECUTION_TIMEOUT".into(),
        record.execution_timeout_seconds.to_string(),
    );
    if record.runtime == AgentRuntime::ClaudeCode {
        // Keeps Claude Code's `.claude.json` inside its (always writable) state directory.
        env.insert("CLAUDE_CONFIG_DIR".into(), state_dir(record.runtime));
    }

    let mut spec = ContainerSpec {
        name: container_name(&record.name),
        image: config.agent_image.clone(),
        user: AGENT_USER.into(),
        hostname: record.name.clone(),
        working_dir: HOME.into(),
        env,
        labels,
        mounts: vec![
            VolumeMount {
                volume: workspace_volume(record.id),
                target: HOME.into(),
                read_only: record.read_only_enabled,
            },
            VolumeMount {
                volume: state_volume(record.id),
                target: state_dir(record.runtime),
                read_only: false,
            },
        ],
        nano_cpus,
        memory_bytes,
        pids_limit: config.pids_limit,
    };
    if record.expose_enabled {
        spec.mounts.push(VolumeMount {
            volume: shared_volume(record.id),
            target: SHARED_OUT.into(),
            read_only: false,
        });
    }
    if record.consume_enabled && !producers.is_empty() {
        for producer in producers {
            spec.mounts.push(VolumeMount {
                volume: shared_volume(producer.id),
                target: producer.mount_path(),
                read_only: true,
            });
        }
        let ids: Vec<String> = producers.iter().map(|p| p.id.to_string()).collect();
        spec.labels.insert(labels::CONSUMES.into(), ids.join(","));
    }
    let digest = spec.digest();
    spec.labels.insert(labels::SPEC.into(), digest);
    Ok(spec)
}

/// A never-started helper container for writing into the agent's home: its workspace and
/// state volumes, both read-write, and nothing else.
pub fn helper_spec(
    config: &FleetConfig,
    record: &AgentRecord,
) -> Result<ContainerSpec, FleetError> {
    let mut helper = container_spec(config, record, &[])?;
    helper
        .mounts
        .retain(|m| m.volume == workspace_volume(record.id) || m.volume == state_volume(record.id));
    for mount in &mut helper.mounts {
        mount.read_only = false;
    }
    helper.labels.remove(labels::SPEC);
    helper.labels.insert(labels::ROLE.into(), "writer".into());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    helper.name = format!("flotilla-writer-{}-{}", record.id, &suffix[..8]);
    Ok(helper)
}

/// A tar archive holding the given files (paths relative to the home directory), owned by
/// `developer`, with mode 0644; see [`archive`].
pub fn workspace_archive(files: &[(&str, &[u8])]) -> Result<bytes::Bytes, FleetError> {
    let with_mode: Vec<(&str, &[u8], u32)> = files.iter().map(|(p, c)| (*p, *c, 0o644)).collect();
    archive(&with_mode)
}

/// A tar archive of `(relative path, content, mode)` files owned by `developer` (a path ending
/// in `/` is a folder), with entries for their parent folders so that those are owned by
/// `developer` too; ready for
/// [`ContainerRuntime::put_archive`](crate::runtime::ContainerRuntime).
pub fn archive(files: &[(&str, &[u8], u32)]) -> Result<bytes::Bytes, FleetError> {
    let fail = |e: std::io::Error| FleetError::Internal(format!("building an archive: {e}"));
    let mtime = chrono::Utc::now().timestamp().max(0) as u64;
    let mut folders = std::collections::BTreeSet::new();
    for (path, _, _) in files {
        let mut parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        if !path.ends_with('/') {
            parts.pop();
        }
        for depth in 1..=parts.len() {
            folders.insert(parts[..depth].join("/"));
        }
    }
    let mut builder = tar::Builder::new(Vec::new());
    for folder in &folders {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        header.set_mode(0o755);
        header.set_uid(AGENT_UID);
        header.set_gid(AGENT_UID);
        header.set_mtime(mtime);
        builder
            .append_data(&mut header, format!("{folder}/"), std::io::empty())
            .map_err(fail)?;
    }
    for (path, content, mode) in files.iter().filter(|(p, _, _)| !p.ends_with('/')) {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(*mode);
        header.set_uid(AGENT_UID);
        header.set_gid(AGENT_UID);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, path, *content)
            .map_err(fail)?;
    }
    builder.into_inner().map(bytes::Bytes::from).map_err(fail)
}

/// The one regular file in a tar archive (as the runtime returns for a file path), if it is
/// not larger than `max` bytes.
pub fn single_file(tar_bytes: &[u8], max: u64) -> Option<Vec<u8>> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut entry = archive.entries().ok()?.next()?.ok()?;
    if entry.header().entry_type() != tar::EntryType::Regular || entry.size() > max {
        return None;
    }
    let mut out = Vec::with_capacity(entry.size() as usize);
    std::io::Read::read_to_end(&mut entry, &mut out).ok()?;
    Some(out)
}
