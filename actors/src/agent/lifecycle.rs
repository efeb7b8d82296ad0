//! The agent lifecycle as an explicit state machine.
//!
//! Every operation asks a guard first (`can_start`, `can_stop`, ...). A guard either allows the
//! operation, says it is already done (start/stop are idempotent), or refuses it with a typed
//! [`TransitionError`] that the server turns into 409. Nothing else in the code compares states.
//!
//! ```text
//!   Provisioning ──ok──► Running ◄──start── Stopped
//!        │                 │  └────stop────►  ▲
//!      fail                ├──(died)──────────┘
//!        ▼                 ▼
//!     Deleted ◄── Deleting ◄── delete (from any state but Deleted)
//! ```
//! `Paused` and `Restarting` are Docker states observed on the container; start unpauses a paused
//! agent, stop stops either.

use crate::model::Status;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Being created: registry row written, Docker objects not yet complete.
    Provisioning,
    Running,
    Stopped,
    Paused,
    Restarting,
    /// Being deleted: Docker objects and rows are being removed.
    Deleting,
    /// Gone. The actor stops after reaching this state.
    Deleted,
}

/// What a guard decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Do the operation.
    Proceed,
    /// The agent is already where the operation would take it; succeed without doing anything.
    AlreadyDone,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {operation} agent while it is {}", state.as_str())]
pub struct TransitionError {
    pub operation: &'static str,
    pub state: Lifecycle,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Provisioning => "being created",
            Lifecycle::Running => "running",
            Lifecycle::Stopped => "stopped",
            Lifecycle::Paused => "paused",
            Lifecycle::Restarting => "restarting",
            Lifecycle::Deleting => "being deleted",
            Lifecycle::Deleted => "deleted",
        }
    }

    /// The status the API shows for this state.
    pub fn status(self) -> Status {
        match self {
            Lifecycle::Running => Status::Running,
            Lifecycle::Paused => Status::Paused,
            Lifecycle::Restarting => Status::Restarting,
            Lifecycle::Provisioning
            | Lifecycle::Stopped
            | Lifecycle::Deleting
            | Lifecycle::Deleted => Status::Stopped,
        }
    }

    fn refuse(self, operation: &'static str) -> TransitionError {
        TransitionError {
            operation,
            state: self,
        }
    }

    pub fn can_start(self) -> Result<Decision, TransitionError> {
        match self {
            Lifecycle::Running => Ok(Decision::AlreadyDone),
            Lifecycle::Stopped | Lifecycle::Paused | Lifecycle::Restarting => Ok(Decision::Proceed),
            Lifecycle::Provisioning | Lifecycle::Deleting | Lifecycle::Deleted => {
                Err(self.refuse("start"))
            }
        }
    }

    pub fn can_stop(self) -> Result<Decision, TransitionError> {
        match self {
            Lifecycle::Stopped => Ok(Decision::AlreadyDone),
            Lifecycle::Running | Lifecycle::Paused | Lifecycle::Restarting => Ok(Decision::Proceed),
            Lifecycle::Provisioning | Lifecycle::Deleting | Lifecycle::Deleted => {
                Err(self.refuse("stop"))
            }
        }
    }

    pub fn can_rename(self) -> Result<Decision, TransitionError> {
        match self {
            Lifecycle::Running | Lifecycle::Stopped | Lifecycle::Paused | Lifecycle::Restarting => {
                Ok(Decision::Proceed)
            }
            Lifecycle::Provisioning | Lifecycle::Deleting | Lifecycle::Deleted => {
                Err(self.refuse("rename"))
            }
        }
    }

    /// Configuration changes (and anything else that rewrites the record) follow rename's rule.
    pub fn can_configure(self) -> Result<Decision, TransitionError> {
        self.can_rename().map_err(|mut e| {
            e.operation = "configure";
            e
        })
    }

    /// Delete is allowed from every live state, including an interrupted create or delete
    /// (that is how recovery finishes them).
    pub fn can_delete(self) -> Result<Decision, TransitionError> {
        match self {
            Lifecycle::Deleted => Err(self.refuse("delete")),
            _ => Ok(Decision::Proceed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_and_stop_are_idempotent() {
        assert_eq!(Lifecycle::Running.can_start(), Ok(Decision::AlreadyDone));
        assert_eq!(Lifecycle::Stopped.can_stop(), Ok(Decision::AlreadyDone));
        assert_eq!(Lifecycle::Stopped.can_start(), Ok(Decision::Proceed));
        assert_eq!(Lifecycle::Running.can_stop(), Ok(Decision::Proceed));
    }

    #[test]
    fn nothing_but_delete_runs_on_a_dying_agent() {
        for s in [
            Lifecycle::Deleting,
            Lifecycle::Deleted,
            Lifecycle::Provisioning,
        ] {
            assert!(s.can_start().is_err());
            assert!(s.can_stop().is_err());
            assert!(s.can_rename().is_err());
        }
        assert!(Lifecycle::Deleting.can_delete().is_ok());
        assert!(Lifecycle::Deleted.can_delete().is_err());
    }
}
