//! What the pipeline page reads on every view and what rarely changes,
//! kept in memory by each replica:
//! - each instance's planner state (flows' hashes, keys' states), keyed by
//!   the instance's version and `updated_at`, which every change to its
//!   flows or keys bumps in the same transaction;
//! - snapshot manifests, which never change.
//!
//! The key of a state is read from the database on every view, so a
//! replica never shows a state another replica has since changed.

use chrono::{DateTime, Utc};
use stagehand_domain::{ContentHash, FlowName, InstanceState};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// A snapshot's flows, name → hash.
pub(crate) type Manifest = BTreeMap<FlowName, ContentHash>;

/// Entries kept of each kind; past that, the cache starts over.
const MAX_ENTRIES: usize = 4096;

#[derive(Debug, Clone, Default)]
pub(crate) struct OverviewCache {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    states: HashMap<Uuid, (StateKey, Known)>,
    manifests: HashMap<Uuid, Arc<Manifest>>,
}

/// An instance's version and when it was bumped.
pub(crate) type StateKey = (i64, DateTime<Utc>);

/// An instance's state with its content hash, computed once.
pub(crate) type Known = (Arc<InstanceState>, ContentHash);

impl OverviewCache {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain maps: still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn state(&self, instance: Uuid, key: StateKey) -> Option<Known> {
        self.inner()
            .states
            .get(&instance)
            .filter(|(k, _)| *k == key)
            .map(|(_, s)| s.clone())
    }

    pub(crate) fn keep_state(&self, instance: Uuid, key: StateKey, state: Known) {
        let mut inner = self.inner();
        if inner.states.len() >= MAX_ENTRIES {
            inner.states.clear();
        }
        inner.states.insert(instance, (key, state));
    }

    pub(crate) fn manifest(&self, snapshot: Uuid) -> Option<Arc<Manifest>> {
        self.inner().manifests.get(&snapshot).cloned()
    }

    pub(crate) fn keep_manifest(&self, snapshot: Uuid, manifest: Arc<Manifest>) {
        let mut inner = self.inner();
        if inner.manifests.len() >= MAX_ENTRIES {
            inner.manifests.clear();
        }
        inner.manifests.insert(snapshot, manifest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_is_served_only_for_the_version_it_was_read_at() {
        let cache = OverviewCache::default();
        let id = Uuid::new_v4();
        let at = Utc::now();
        let state = InstanceState::default();
        let hash = state.content_hash();
        cache.keep_state(id, (3, at), (Arc::new(state), hash));
        assert!(cache.state(id, (3, at)).is_some());
        assert!(cache.state(id, (4, at)).is_none());
        assert!(
            cache
                .state(id, (3, at + chrono::Duration::seconds(1)))
                .is_none()
        );
        assert!(cache.state(Uuid::new_v4(), (3, at)).is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = OverviewCache::default();
        for _ in 0..(MAX_ENTRIES + 10) {
            cache.keep_manifest(Uuid::new_v4(), Arc::default());
        }
        assert!(cache.inner().manifests.len() <= MAX_ENTRIES);
    }
}
