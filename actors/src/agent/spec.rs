//! What an agent's Docker objects look like, derived from its record and the fleet config alone.
//!
//! Because the desired spec is a pure function of the record, the actor can tell whether a
//! container is stale (its `flotilla.spec` digest differs) and recreate it on the next start.

use std::collections::BTreeMap;

use crate::config::FleetConfig;
use crate::error::FleetError;
use crate::model::{AgentId, AgentRecord};
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

/// Labels shared by every object of an agent (container and volumes).
pub fn object_labels(config: &FleetConfig, id: AgentId) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::INSTANCE.to_string(), config.instance.clone()),
        (labels::AGENT_ID.to_string(), id.to_string()),
    ])
}

/// The container the agent should have right now.
pub fn container_spec(
    config: &FleetConfig,
    record: &AgentRecord,
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

    let mut spec = ContainerSpec {
        name: container_name(&record.name),
        image: config.agent_image.clone(),
        user: AGENT_USER.into(),
        hostname: record.name.clone(),
        working_dir: HOME.into(),
        env,
        labels,
        mounts: vec![VolumeMount {
            volume: workspace_volume(record.id),
            target: HOME.into(),
            read_only: false,
        }],
        nano_cpus,
        memory_bytes,
        pids_limit: config.pids_limit,
    };
    let digest = spec.digest();
    spec.labels.insert(labels::SPEC.into(), digest);
    Ok(spec)
}

/// A tar archive holding the given files (paths relative to the home directory), owned by
/// `developer`, with entries for their parent folders so that those are owned by `developer`
/// too; ready for [`ContainerRuntime::put_archive`](crate::runtime::ContainerRuntime).
pub fn workspace_archive(files: &[(&str, &[u8])]) -> Result<bytes::Bytes, FleetError> {
    let fail = |e: std::io::Error| FleetError::Internal(format!("building workspace archive: {e}"));
    let mtime = chrono::Utc::now().timestamp().max(0) as u64;
    let mut folders = std::collections::BTreeSet::new();
    for (path, _) in files {
        let mut parts: Vec<&str> = path.split('/').collect();
        parts.pop();
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
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
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
