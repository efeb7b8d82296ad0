//! Agent logs: the container's stdout and stderr, read through the runtime with the container id
//! from the agent's snapshot. Reads do not go through the agent's actor: they change nothing,
//! so they never wait behind a slow start or stop.

use crate::access::Action;
use crate::error::FleetError;
use crate::fleet::Fleet;
use crate::model::Principal;
use crate::runtime::ByteStream;

/// Most lines one logs request returns.
pub const MAX_TAIL: u64 = 10_000;
/// Most bytes one (non-following) logs request returns; the newest are kept.
pub const MAX_LOG_BYTES: usize = 4 * 1024 * 1024;

impl Fleet {
    fn container_of(&self, who: &Principal, name: &str) -> Result<String, FleetError> {
        let visible = self.agent(who, name, Action::Read)?;
        visible.view.container_id.clone().ok_or_else(|| {
            FleetError::Conflict(format!(
                "agent '{name}' has no container right now; start it to recreate one"
            ))
        })
    }

    /// The last `tail` lines (capped at [`MAX_TAIL`]) of the agent's output.
    pub async fn logs(&self, who: &Principal, name: &str, tail: u64) -> Result<String, FleetError> {
        let container = self.container_of(who, name)?;
        let bytes = self
            .inner
            .runtime
            .logs(&container, tail.min(MAX_TAIL), MAX_LOG_BYTES)
            .await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The agent's output from the last `tail` lines on, live, until the stream is dropped or
    /// the container stops.
    pub fn follow_logs(
        &self,
        who: &Principal,
        name: &str,
        tail: u64,
    ) -> Result<ByteStream, FleetError> {
        let container = self.container_of(who, name)?;
        Ok(self
            .inner
            .runtime
            .follow_logs(&container, tail.min(MAX_TAIL)))
    }
}
