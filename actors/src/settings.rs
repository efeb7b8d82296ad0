//! Agent settings: autonomy, read-only mode and execution timeout. Reads come from the agent's
//! snapshot; changes go through its actor ([`Configure`]), so they are serialised with
//! lifecycle operations and applied to the runtime by the one writer of the agent.

use crate::access::Action;
use crate::agent::messages::{ConfigChange, ConfigOutcome, Configure, HomeFile, WriteHomeFiles};
use crate::agent::runtime_files::validate_patterns;
use crate::error::FleetError;
use crate::fleet::Fleet;
use crate::model::{AgentRecord, EXECUTION_TIMEOUT_RANGE, Principal, ReadOnlyPatterns};

impl Fleet {
    /// The agent's record, for reading its settings (anyone who can read the agent).
    pub fn settings_of(&self, who: &Principal, name: &str) -> Result<AgentRecord, FleetError> {
        Ok(self.agent(who, name, Action::Read)?.view.record.clone())
    }

    /// Apply a settings change (owner or admin; never on a system agent).
    pub async fn configure(
        &self,
        who: &Principal,
        name: &str,
        change: ConfigChange,
    ) -> Result<ConfigOutcome, FleetError> {
        match &change {
            ConfigChange::Timeout(seconds) if !EXECUTION_TIMEOUT_RANGE.contains(seconds) => {
                return Err(FleetError::invalid(
                    "execution_timeout_seconds",
                    format!(
                        "must be between {} and {}",
                        EXECUTION_TIMEOUT_RANGE.start(),
                        EXECUTION_TIMEOUT_RANGE.end()
                    ),
                ));
            }
            ConfigChange::ReadOnly {
                patterns:
                    Some(ReadOnlyPatterns {
                        blocked_patterns,
                        allowed_patterns,
                    }),
                ..
            } => {
                validate_patterns(blocked_patterns)
                    .map_err(|e| FleetError::invalid("config.blocked_patterns", e))?;
                validate_patterns(allowed_patterns)
                    .map_err(|e| FleetError::invalid("config.allowed_patterns", e))?;
            }
            _ => {}
        }
        let addr = self.addr_for(who, name, Action::Configure)?;
        self.ask(name, &addr, Configure { change }).await
    }

    /// Write files into the agent's home through its actor (owner or admin). Paths must be
    /// validated by the caller.
    pub async fn write_home_files(
        &self,
        who: &Principal,
        name: &str,
        files: Vec<HomeFile>,
    ) -> Result<(), FleetError> {
        let addr = self.addr_for(who, name, Action::Manage)?;
        self.ask(name, &addr, WriteHomeFiles { files }).await
    }
}
