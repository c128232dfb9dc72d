//! API tokens this process has authenticated, so that a CI job's next
//! request does not read its token, team and role again.
//!
//! Used only where this process makes every change the database sees (the
//! embedded SQLite store: one server per file). Every write transaction of
//! the store ends by calling [`TokenCache::changed`] after its commit, and
//! an entry read before that is never served again: a revoked token, a
//! disabled owner, a changed role or a left team count from the next
//! request on. A change made by another process on the same file (the CLI
//! while the server runs) is seen once the entry is [`TokenCache::TTL`]
//! old. PostgreSQL, with other replicas writing, reads every time.

use crate::model::{ApiToken, Team};
use stagehand_domain::PermissionSet;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What authenticating a token establishes.
pub(crate) type Authenticated = (ApiToken, Team, PermissionSet);

/// Entries kept; past that, the cache starts over.
const MAX_ENTRIES: usize = 4096;

#[derive(Debug, Clone, Default)]
pub(crate) struct TokenCache {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Bumped after every committed write.
    epoch: AtomicU64,
    /// By the hash of the token's secret.
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    epoch: u64,
    read_at: Instant,
    found: Authenticated,
}

impl TokenCache {
    /// How long an entry serves when nothing in this process changed:
    /// the bound on seeing another process's change.
    pub(crate) const TTL: Duration = Duration::from_secs(1);

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock leaves a plain map: still usable.
        self.inner
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Read before the database is: an entry stored with it is valid only
    /// if no write committed since.
    pub(crate) fn epoch(&self) -> u64 {
        self.inner.epoch.load(Ordering::Acquire)
    }

    /// A write committed: nothing read before it is served again.
    pub(crate) fn changed(&self) {
        self.inner.epoch.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn get(&self, secret_hash: &str) -> Option<Authenticated> {
        let epoch = self.epoch();
        self.entries()
            .get(secret_hash)
            .filter(|e| e.epoch == epoch && e.read_at.elapsed() < Self::TTL)
            .map(|e| e.found.clone())
    }

    /// Keeps what was read at `epoch` (as [`epoch`](Self::epoch) said
    /// before the read).
    pub(crate) fn keep(&self, secret_hash: &str, epoch: u64, found: Authenticated) {
        let mut entries = self.entries();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            secret_hash.to_owned(),
            Entry {
                epoch,
                read_at: Instant::now(),
                found,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use stagehand_domain::{Name, TeamId, TokenId};

    fn found() -> Authenticated {
        let team = Team {
            id: TeamId(uuid::Uuid::new_v4()),
            name: Name::parse("name", "payments").unwrap(),
            created_at: Utc::now(),
        };
        let token = ApiToken {
            id: TokenId(uuid::Uuid::new_v4()),
            team_id: team.id,
            name: Name::parse("name", "ci").unwrap(),
            user_id: None,
            role: "viewer".into(),
            created_by: "system".into(),
            created_by_user_id: None,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
            created_at: Utc::now(),
        };
        (token, team, PermissionSet::empty())
    }

    #[test]
    fn an_entry_read_before_a_write_is_not_served_after_it() {
        let cache = TokenCache::default();
        let epoch = cache.epoch();
        cache.keep("h", epoch, found());
        assert!(cache.get("h").is_some());
        assert!(cache.get("other").is_none());
        cache.changed();
        assert!(cache.get("h").is_none());
        // Read while a write was committing: stale from the start.
        let before = cache.epoch();
        cache.changed();
        cache.keep("h", before, found());
        assert!(cache.get("h").is_none());
    }

    #[test]
    fn an_entry_expires() {
        let cache = TokenCache::default();
        cache.keep("h", cache.epoch(), found());
        cache.entries().get_mut("h").unwrap().read_at -= TokenCache::TTL;
        assert!(cache.get("h").is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = TokenCache::default();
        for n in 0..(MAX_ENTRIES + 10) {
            cache.keep(&n.to_string(), 0, found());
        }
        assert!(cache.entries().len() <= MAX_ENTRIES);
    }
}
