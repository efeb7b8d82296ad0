//! User accounts beyond login: changing a password (which revokes every older token of the
//! user) and deleting a user (admin only). The registry actor is the only writer of users; the
//! server hashes passwords and checks the current one before asking.

use crate::error::FleetError;
use crate::fleet::Fleet;
use crate::model::Principal;
use crate::registry::messages::{RemoveUser, SetPassword};
use crate::sharing::messages::UnshareEverywhere;

impl Fleet {
    /// Replace `username`'s password hash and bump their token version in one registry step, so
    /// every token issued before now is refused. `NotFound` if the user does not exist.
    pub async fn set_password(
        &self,
        username: &str,
        password_hash: String,
    ) -> Result<(), FleetError> {
        self.inner
            .registry
            .send(SetPassword {
                username: username.to_string(),
                password_hash,
            })
            .timeout(self.inner.config.actor_timeout)
            .await?
    }

    /// Delete user `username` (admin only; never oneself, never `admin`). `Conflict` while the
    /// user owns agents (delete them first). Their tokens die with the account; the shares
    /// made to their email are removed first, so that a later account with the same email does
    /// not inherit access.
    pub async fn delete_user(&self, who: &Principal, username: &str) -> Result<(), FleetError> {
        if !who.is_admin() {
            return Err(FleetError::Forbidden(
                "only an admin may delete users".into(),
            ));
        }
        let username = username.trim().to_lowercase();
        if self.inner.accounts.user(&username).is_none() {
            return Err(FleetError::NotFound {
                kind: "user",
                name: username,
            });
        }
        if username == who.username || username == "admin" {
            return Err(FleetError::Forbidden(
                "the admin account and your own account cannot be deleted".into(),
            ));
        }
        let owned = self
            .inner
            .directory
            .all()
            .iter()
            .filter(|view| view.record.owner == username)
            .count();
        if owned > 0 {
            return Err(FleetError::Conflict(format!(
                "{username} still owns {owned} agent(s); delete them first"
            )));
        }
        // The shares first, all in one statement: if removing the account then fails, the user
        // is still there without shares (a retry finishes the job), never gone with shares left
        // for a later account with the same email to inherit.
        self.inner
            .sharing
            .send(UnshareEverywhere {
                email: username.clone(),
            })
            .timeout(self.inner.config.actor_timeout)
            .await??;
        self.inner
            .registry
            .send(RemoveUser { username })
            .timeout(self.inner.config.actor_timeout)
            .await??;
        Ok(())
    }
}
