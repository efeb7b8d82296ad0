//! An in-memory [`ContainerRuntime`] for the criterion benches: containers and volumes are
//! entries in a map, every call answers at once. It exists so the benches can run the real
//! [`Fleet`](flotilla_actors::Fleet) — store, actors, directory, access index — with no Docker
//! daemon and no Docker latency, and measure flotilla's own cost. It is bench support, not a
//! product runtime: archives are accepted and dropped, files never exist, execs fail.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use flotilla_actors::runtime::{
    AttachedExec, ByteStream, ContainerInfo, ContainerRuntime, ContainerSpec, ContainerState,
    EventStream, ExecSpec, HostInfo, PathStat, RuntimeError, StatsReading, TtySize,
};
use futures_util::StreamExt;

/// Containers by id and volumes by name, behind one lock (never held across an await).
#[derive(Default)]
pub struct MemoryRuntime {
    state: Mutex<State>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct State {
    containers: BTreeMap<String, ContainerInfo>,
    volumes: BTreeMap<String, BTreeMap<String, String>>,
}

impl MemoryRuntime {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> Result<T, RuntimeError> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| RuntimeError::Other("memory runtime lock poisoned".into()))?;
        Ok(f(&mut state))
    }
}

impl State {
    /// A container by id or name.
    fn find(&mut self, id: &str) -> Option<&mut ContainerInfo> {
        if self.containers.contains_key(id) {
            return self.containers.get_mut(id);
        }
        self.containers.values_mut().find(|c| c.name == id)
    }

    fn set_state(&mut self, id: &str, state: ContainerState) -> Result<(), RuntimeError> {
        let container = self
            .find(id)
            .ok_or_else(|| RuntimeError::NotFound(format!("no container {id}")))?;
        if state == ContainerState::Running && container.state != ContainerState::Running {
            container.started_at = Some(Utc::now());
        }
        container.state = state;
        Ok(())
    }
}

fn not_found(what: &str) -> ByteStream {
    let error = RuntimeError::NotFound(format!("{what}: the memory runtime holds no files"));
    futures_util::stream::once(async move { Err(error) }).boxed()
}

#[async_trait]
impl ContainerRuntime for MemoryRuntime {
    async fn host_info(&self) -> Result<HostInfo, RuntimeError> {
        Ok(HostInfo {
            cpus: 64,
            memory_bytes: 1 << 40,
        })
    }

    async fn image_exists(&self, _image: &str) -> Result<bool, RuntimeError> {
        Ok(true)
    }

    async fn create_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), RuntimeError> {
        self.with(|s| {
            s.volumes.entry(name.to_string()).or_insert(labels.clone());
        })
    }

    async fn volume_exists(&self, name: &str) -> Result<bool, RuntimeError> {
        self.with(|s| s.volumes.contains_key(name))
    }

    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        self.with(|s| {
            s.volumes.remove(name);
        })
    }

    async fn list_volumes(&self, label: &str, value: &str) -> Result<Vec<String>, RuntimeError> {
        self.with(|s| {
            s.volumes
                .iter()
                .filter(|(_, labels)| labels.get(label).map(String::as_str) == Some(value))
                .map(|(name, _)| name.clone())
                .collect()
        })
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let id = format!("{:064x}", self.next_id.fetch_add(1, Ordering::Relaxed) + 1);
        self.with(|s| {
            if s.containers.values().any(|c| c.name == spec.name) {
                return Err(RuntimeError::Conflict(format!(
                    "name {} is in use",
                    spec.name
                )));
            }
            s.containers.insert(
                id.clone(),
                ContainerInfo {
                    id: id.clone(),
                    name: spec.name.clone(),
                    state: ContainerState::Stopped,
                    labels: spec.labels.clone(),
                    started_at: None,
                    oom_killed: false,
                },
            );
            Ok(id.clone())
        })?
    }

    async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        self.with(|s| s.set_state(id, ContainerState::Running))?
    }

    async fn stop_container(&self, id: &str, _grace: Duration) -> Result<(), RuntimeError> {
        self.with(|s| s.set_state(id, ContainerState::Stopped))?
    }

    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        self.with(|s| {
            let key = s.find(id).map(|c| c.id.clone());
            if let Some(key) = key {
                s.containers.remove(&key);
            }
        })
    }

    async fn rename_container(&self, id: &str, new_name: &str) -> Result<(), RuntimeError> {
        self.with(|s| {
            let container = s
                .find(id)
                .ok_or_else(|| RuntimeError::NotFound(format!("no container {id}")))?;
            container.name = new_name.to_string();
            Ok(())
        })?
    }

    async fn inspect_container(&self, id: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        self.with(|s| s.find(id).cloned())
    }

    async fn list_containers(
        &self,
        label: &str,
        value: &str,
    ) -> Result<Vec<ContainerInfo>, RuntimeError> {
        self.with(|s| {
            s.containers
                .values()
                .filter(|c| c.label(label) == Some(value))
                .cloned()
                .collect()
        })
    }

    async fn put_archive(&self, id: &str, _path: &str, _tar: Bytes) -> Result<(), RuntimeError> {
        self.with(|s| s.find(id).map(|_| ()))?
            .ok_or_else(|| RuntimeError::NotFound(format!("no container {id}")))
    }

    fn archive(&self, _id: &str, path: &str) -> ByteStream {
        not_found(path)
    }

    async fn stat_path(&self, _id: &str, _path: &str) -> Result<Option<PathStat>, RuntimeError> {
        Ok(None)
    }

    async fn logs(&self, _id: &str, _tail: u64, _max: usize) -> Result<Bytes, RuntimeError> {
        Ok(Bytes::new())
    }

    fn follow_logs(&self, _id: &str, _tail: u64) -> ByteStream {
        futures_util::stream::empty().boxed()
    }

    fn container_events(&self, _label: &str, _value: &str) -> EventStream {
        // Nothing ever happens outside flotilla here: a stream that never yields nor ends.
        futures_util::stream::pending().boxed()
    }

    async fn stats(&self, _id: &str) -> Result<StatsReading, RuntimeError> {
        Ok(StatsReading {
            read_at: Utc::now(),
            cpu_total_ns: 1_000_000,
            system_cpu_ns: 1_000_000_000,
            online_cpus: 2,
            memory_used_bytes: 1 << 20,
            memory_limit_bytes: 64 << 20,
            network_rx_bytes: 0,
            network_tx_bytes: 0,
        })
    }

    async fn exec_attached(
        &self,
        _id: &str,
        _spec: &ExecSpec,
    ) -> Result<AttachedExec, RuntimeError> {
        Err(RuntimeError::Other(
            "the memory runtime runs no processes".into(),
        ))
    }

    async fn resize_exec(&self, _exec_id: &str, _size: TtySize) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn exec_exit_code(&self, _exec_id: &str) -> Result<Option<i64>, RuntimeError> {
        Ok(Some(0))
    }
}
