//! Test-only fault injection: make the next operation of a named agent panic, to prove that the
//! supervisor restarts a crashed agent actor (see `supervisor`).
//!
//! **It cannot be switched on by configuration.** A [`FaultPlan`] exists only when code that
//! builds a [`FleetConfig`](crate::FleetConfig) by hand puts one in `FleetConfig::faults` (the
//! tests do, through `flotilla::config::Config::test_faults`). No environment variable, config
//! file or HTTP route creates or arms one, so `flotilla serve` always runs with `faults: None`,
//! and an agent actor then never consults it. Arming needs the plan's handle, which only the
//! code that made it holds.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Agents whose next operation panics, each once. Cheap to clone; clones share the plan.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    /// Names of agents whose next operation (any mutating command) panics inside its actor.
    panic_next: Arc<Mutex<HashSet<String>>>,
}

impl FaultPlan {
    pub fn new() -> Self {
        Self::default()
    }

    /// Make the next operation of agent `name` panic inside its actor (once).
    pub fn panic_next_operation(&self, name: &str) {
        if let Ok(mut names) = self.panic_next.lock() {
            names.insert(name.to_string());
        }
    }

    /// True (once) if the next operation of agent `name` must panic.
    pub(crate) fn take_panic(&self, name: &str) -> bool {
        self.panic_next
            .lock()
            .map(|mut names| names.remove(name))
            .unwrap_or(false)
    }
}
