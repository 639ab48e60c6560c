//! The registry: every hook in memory, changed only after Redis accepted the change.
//!
//! Readers (the router, the API's `list`) take a cheap [`HookSet`] snapshot; writers are
//! serialised, so two concurrent creates of one URL cannot both succeed. Memory and Redis never
//! disagree: a change that Redis refuses is not applied in memory, and one that Redis accepted
//! is applied before the caller hears back. Delivery learns of changes through [`HookRegistry::watch`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use indexmap::IndexMap;
use tokio::sync::{Mutex, watch};

use super::{Hook, HookStore};
use crate::config::PermanentUrl;

/// An immutable view of all hooks, indexed for routing.
#[derive(Debug, Default)]
pub struct HookSet {
    by_id: IndexMap<String, Arc<Hook>>,
    by_url: HashMap<String, String>,
    global: Vec<Arc<Hook>>,
    by_meeting: HashMap<String, Vec<Arc<Hook>>>,
}

impl HookSet {
    fn build(hooks: impl IntoIterator<Item = Arc<Hook>>) -> HookSet {
        let mut set = HookSet::default();
        for hook in hooks {
            set.by_url
                .entry(hook.callback_url.clone())
                .or_insert_with(|| hook.id.clone());
            match &hook.meeting_id {
                None => set.global.push(hook.clone()),
                Some(m) => set
                    .by_meeting
                    .entry(m.clone())
                    .or_default()
                    .push(hook.clone()),
            }
            set.by_id.insert(hook.id.clone(), hook);
        }
        set
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Hook>> {
        self.by_id.get(id)
    }

    pub fn by_url(&self, url: &str) -> Option<&Arc<Hook>> {
        self.by_url.get(url).and_then(|id| self.by_id.get(id))
    }

    /// All hooks, in creation order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Hook>> {
        self.by_id.values()
    }

    /// The hooks that may receive an event of this meeting: every global hook, then every hook
    /// scoped to it (the reference served only the first scoped one).
    pub fn candidates<'a>(
        &'a self,
        external_meeting_id: Option<&str>,
    ) -> impl Iterator<Item = &'a Arc<Hook>> {
        let scoped = external_meeting_id
            .and_then(|m| self.by_meeting.get(m))
            .map(|v| v.as_slice())
            .unwrap_or_default();
        self.global.iter().chain(scoped.iter())
    }

    /// What `hooks/list` shows: all hooks, or with `meetingID` the global ones plus every hook
    /// scoped to that meeting; in creation order either way.
    pub fn listed(&self, meeting_id: Option<&str>) -> Vec<Arc<Hook>> {
        self.by_id
            .values()
            .filter(|h| {
                meeting_id.is_none()
                    || h.meeting_id.is_none()
                    || h.meeting_id.as_deref() == meeting_id
            })
            .cloned()
            .collect()
    }
}

/// What `hooks/create` asks for.
#[derive(Debug, Clone)]
pub struct NewHook {
    pub callback_url: String,
    pub meeting_id: Option<String>,
    pub event_ids: Option<Vec<String>>,
    pub get_raw: bool,
    pub multi_event: Option<std::num::NonZeroUsize>,
}

#[derive(Debug)]
pub enum CreateOutcome {
    Created(Arc<Hook>),
    /// A hook with this callback URL exists; nothing changed.
    Duplicate(Arc<Hook>),
}

#[derive(Debug, PartialEq)]
pub enum RemoveOutcome {
    Removed(Arc<Hook>),
    NotFound,
    /// Permanent hooks are configuration, not API state.
    Permanent,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("Redis refused the change: {0}")]
    Store(#[from] redis::RedisError),
    #[error("the registry holds {0} hooks, the configured maximum")]
    Full(usize),
}

pub struct HookRegistry {
    store: HookStore,
    current: RwLock<Arc<HookSet>>,
    writer: Mutex<()>,
    version: watch::Sender<u64>,
    permanent_urls: Vec<PermanentUrl>,
    max_hooks: usize,
}

/// How permanent hooks are made: a UUID v5 of their URL in the URL namespace, as the reference.
pub fn permanent_id(url: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, url.as_bytes()).to_string()
}

impl HookRegistry {
    /// Loads every stored hook, then reconciles them with `permanentURLs`: each configured URL
    /// gets a permanent hook (a stored one with that URL is promoted), and stored permanent hooks
    /// whose URL is no longer configured become ordinary ones, so they can be destroyed.
    pub async fn load(
        store: HookStore,
        permanent_urls: Vec<PermanentUrl>,
        max_hooks: usize,
    ) -> Result<HookRegistry, RegistryError> {
        let (stored, unreadable) = store.load_all().await?;
        for bad in &unreadable {
            tracing::warn!(hook = %bad.id, reason = %bad.reason, "a stored hook could not be read; left in Redis as is");
        }
        let mut hooks: Vec<Hook> = stored;
        for hook in hooks.iter_mut() {
            let configured = permanent_urls
                .iter()
                .find(|p| p.url.as_str() == hook.callback_url);
            let wanted = (
                configured.is_some(),
                configured.map_or(hook.get_raw, |p| p.get_raw),
            );
            if (hook.permanent, hook.get_raw) != wanted {
                if hook.permanent && configured.is_none() {
                    tracing::warn!(hook = %hook.id, "permanent hook no longer in permanentURLs: kept as an ordinary hook");
                }
                (hook.permanent, hook.get_raw) = wanted;
                store.save(hook).await?;
            }
        }
        for p in &permanent_urls {
            if hooks.iter().any(|h| h.callback_url == p.url.as_str()) {
                continue;
            }
            let hook = Hook {
                id: permanent_id(p.url.as_str()),
                callback_url: p.url.to_string(),
                meeting_id: None,
                event_ids: None,
                permanent: true,
                get_raw: p.get_raw,
                created_at: Some(crate::time::now_ms()),
                multi_event: None,
            };
            store.save(&hook).await?;
            hooks.push(hook);
        }
        tracing::info!(hooks = hooks.len(), "hooks loaded");
        Ok(HookRegistry {
            store,
            current: RwLock::new(Arc::new(HookSet::build(hooks.into_iter().map(Arc::new)))),
            writer: Mutex::new(()),
            version: watch::channel(0).0,
            permanent_urls,
            max_hooks,
        })
    }

    /// The current hooks. Cheap: a reference count.
    pub fn snapshot(&self) -> Arc<HookSet> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Changes whenever a hook is added or removed.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    pub async fn create(&self, new: NewHook) -> Result<CreateOutcome, RegistryError> {
        let _writer = self.writer.lock().await;
        let current = self.snapshot();
        if let Some(existing) = current.by_url(&new.callback_url) {
            return Ok(CreateOutcome::Duplicate(existing.clone()));
        }
        if current.len() >= self.max_hooks {
            return Err(RegistryError::Full(self.max_hooks));
        }
        let permanent = self
            .permanent_urls
            .iter()
            .find(|p| p.url.as_str() == new.callback_url);
        let hook = Hook {
            id: match permanent {
                Some(_) => permanent_id(&new.callback_url),
                None => uuid::Uuid::new_v4().to_string(),
            },
            callback_url: new.callback_url,
            meeting_id: new.meeting_id,
            event_ids: new.event_ids,
            permanent: permanent.is_some(),
            get_raw: new.get_raw,
            created_at: Some(crate::time::now_ms()),
            multi_event: new.multi_event,
        };
        self.store.save(&hook).await?;
        let hook = Arc::new(hook);
        self.replace(current.iter().cloned().chain([hook.clone()]));
        Ok(CreateOutcome::Created(hook))
    }

    /// Writes every hook held in memory to Redis again (after Redis lost its data).
    pub async fn rewrite(&self) -> Result<usize, RegistryError> {
        let _writer = self.writer.lock().await;
        let current = self.snapshot();
        for hook in current.iter() {
            self.store.save(hook).await?;
        }
        Ok(current.len())
    }

    /// Removes a hook unless it is permanent: from Redis first, then from memory.
    pub async fn remove(&self, id: &str) -> Result<RemoveOutcome, RegistryError> {
        let _writer = self.writer.lock().await;
        let current = self.snapshot();
        let Some(hook) = current.get(id).cloned() else {
            return Ok(RemoveOutcome::NotFound);
        };
        if hook.permanent {
            return Ok(RemoveOutcome::Permanent);
        }
        self.store.delete(id).await?;
        self.replace(current.iter().filter(|h| h.id != id).cloned());
        Ok(RemoveOutcome::Removed(hook))
    }

    fn replace(&self, hooks: impl IntoIterator<Item = Arc<Hook>>) {
        let set = Arc::new(HookSet::build(hooks));
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = set;
        self.version.send_modify(|v| *v += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(id: &str, meeting: Option<&str>) -> Arc<Hook> {
        Arc::new(Hook {
            id: id.into(),
            callback_url: format!("http://h/{id}"),
            meeting_id: meeting.map(String::from),
            event_ids: None,
            permanent: false,
            get_raw: false,
            created_at: None,
            multi_event: None,
        })
    }

    #[test]
    fn candidates_are_globals_plus_every_scoped_hook() {
        let set = HookSet::build([
            hook("g1", None),
            hook("m1", Some("m")),
            hook("g2", None),
            hook("m2", Some("m")),
            hook("o", Some("other")),
        ]);
        let ids: Vec<&str> = set.candidates(Some("m")).map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["g1", "g2", "m1", "m2"]);
        let ids: Vec<&str> = set.candidates(None).map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["g1", "g2"]);
        let listed: Vec<String> = set.listed(Some("m")).iter().map(|h| h.id.clone()).collect();
        assert_eq!(listed, ["g1", "m1", "g2", "m2"]);
        assert_eq!(set.listed(Some("none")).len(), 2);
        assert_eq!(set.listed(None).len(), 5);
    }

    #[test]
    fn permanent_ids_are_uuid_v5_of_the_url() {
        // The reference's own example.
        assert_eq!(
            permanent_id("https://app.example.com/hook"),
            "6a2c6225-0855-5c64-b7bc-9fed0fb2100b"
        );
    }
}
