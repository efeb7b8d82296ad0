//! The sharing endpoints' side of the `Fleet` handle: share, unshare, list. Owner or admin
//! only; validation here, writes in the sharing actor.

use crate::access::{Action, Share};
use crate::error::FleetError;
use crate::fleet::Fleet;
use crate::model::Principal;
use crate::sharing::messages::{ShareAgent, UnshareAgent};
use crate::validate;

impl Fleet {
    /// Share the agent with a user by email (the user need not exist yet: the share takes
    /// effect when they are created). `Conflict` if already shared; sharing with the owner is
    /// invalid.
    pub async fn share_agent(
        &self,
        who: &Principal,
        name: &str,
        email: &str,
    ) -> Result<Share, FleetError> {
        let visible = self.agent(who, name, Action::Manage)?;
        let email = validate::email(email).map_err(|e| FleetError::invalid("email", e))?;
        let record = &visible.view.record;
        if email == record.owner {
            return Err(FleetError::invalid(
                "email",
                "the agent's owner already has full access",
            ));
        }
        if email == who.username {
            return Err(FleetError::invalid(
                "email",
                "you cannot share an agent with yourself",
            ));
        }
        let share = self
            .inner
            .sharing
            .send(ShareAgent {
                agent_id: record.id,
                email,
                shared_by: who.username.clone(),
            })
            .timeout(self.config().actor_timeout)
            .await??;
        self.events().publish(
            "agent_shared",
            record.id,
            &record.name,
            serde_json::json!({ "shared_with": share.email, "shared_by": share.shared_by }),
        );
        Ok(share)
    }

    /// Remove the agent's share with `email`. `NotFound` if there is none.
    pub async fn unshare_agent(
        &self,
        who: &Principal,
        name: &str,
        email: &str,
    ) -> Result<Share, FleetError> {
        let visible = self.agent(who, name, Action::Manage)?;
        let record = &visible.view.record;
        let share = self
            .inner
            .sharing
            .send(UnshareAgent {
                agent_id: record.id,
                email: email.trim().to_lowercase(),
            })
            .timeout(self.config().actor_timeout)
            .await??;
        self.events().publish(
            "agent_unshared",
            record.id,
            &record.name,
            serde_json::json!({ "shared_with": share.email }),
        );
        Ok(share)
    }

    /// The agent's shares, newest first (owner or admin).
    pub fn list_shares(&self, who: &Principal, name: &str) -> Result<Vec<Share>, FleetError> {
        let visible = self.agent(who, name, Action::Manage)?;
        Ok(self.shares_of(visible.view.record.id))
    }
}
