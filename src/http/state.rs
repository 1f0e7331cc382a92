//! The one piece of shared state every handler sees.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::keys::Keys;
use crate::engine::{Engine, ReplicaIdentity};

#[derive(Debug)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub keys: Keys,
    /// Set when shutdown begins, so `/readyz` takes the node out of rotation.
    pub draining: AtomicBool,
    /// Who this process is among the replicas sharing its store (config drift).
    pub replica: ReplicaIdentity,
}
