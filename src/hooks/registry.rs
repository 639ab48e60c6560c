//! The registry: every hook in memory, changed only after Redis accepted the change.
//!
//! Readers (the router, the API's `list`) take a cheap [`HookSet`] snapshot, waiting on a writer
//! for no longer than a pointer swap; a change builds the next set from the current one in
//! O(log n) (persistent maps, see [`HookSet`]). Writers are serialised, so two concurrent
//! creates of one URL cannot both succeed. Memory and Redis never disagree: a change that Redis refuses is not applied in memory, and one that Redis accepted
//! is applied before the caller hears back. Delivery learns of changes through [`HookRegistry::watch`].

use std::sync::{Arc, RwLock};

use rpds::{HashTrieMapSync, RedBlackTreeMapSync};
use tokio::sync::{Mutex, watch};

use super::{Hook, HookStore};
use crate::config::PermanentUrl;

/// Hooks by their place in creation order.
type Ordered = RedBlackTreeMapSync<u64, Arc<Hook>>;

/// An immutable view of all hooks, indexed for routing.
///
/// Every index is a persistent map: a set with one hook more or less is made in O(log n) and
/// shares everything else with the set it came from, so a create or a remove costs the same
/// with ten hooks or ten thousand, and a snapshot stays a reference count.
#[derive(Debug, Clone, Default)]
pub struct HookSet {
    /// Every hook, by its place in creation order.
    ordered: Ordered,
    /// Id → place and hook (the hook itself, so that a look-up by id is one look-up).
    by_id: HashTrieMapSync<String, (u64, Arc<Hook>)>,
    /// Callback URL → the hooks with it: one, unless something else wrote duplicates into
    /// Redis; the oldest is the one a create finds.
    by_url: HashTrieMapSync<String, Ordered>,
    global: Ordered,
    by_meeting: HashTrieMapSync<String, Ordered>,
    /// The place the next hook takes.
    next: u64,
}

impl HookSet {
    fn build(hooks: impl IntoIterator<Item = Arc<Hook>>) -> HookSet {
        let mut set = HookSet::default();
        for hook in hooks {
            set.insert(hook);
        }
        set
    }

    /// This set with `hook` added last (replacing a hook with its id).
    fn with(&self, hook: Arc<Hook>) -> HookSet {
        let mut set = self.clone();
        set.insert(hook);
        set
    }

    /// This set without the hook `id`.
    fn without(&self, id: &str) -> HookSet {
        let mut set = self.clone();
        set.remove(id);
        set
    }

    fn insert(&mut self, hook: Arc<Hook>) {
        self.remove(&hook.id);
        let place = self.next;
        self.next += 1;
        group_insert(&mut self.by_url, &hook.callback_url, place, &hook);
        match &hook.meeting_id {
            None => self.global.insert_mut(place, hook.clone()),
            Some(m) => group_insert(&mut self.by_meeting, m, place, &hook),
        }
        self.by_id
            .insert_mut(hook.id.clone(), (place, hook.clone()));
        self.ordered.insert_mut(place, hook);
    }

    fn remove(&mut self, id: &str) {
        let Some((place, hook)) = self.by_id.get(id).cloned() else {
            return;
        };
        group_remove(&mut self.by_url, &hook.callback_url, place);
        match &hook.meeting_id {
            None => {
                self.global.remove_mut(&place);
            }
            Some(m) => group_remove(&mut self.by_meeting, m, place),
        }
        self.by_id.remove_mut(id);
        self.ordered.remove_mut(&place);
    }

    pub fn len(&self) -> usize {
        self.ordered.size()
    }

    pub fn is_empty(&self) -> bool {
        self.ordered.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Hook>> {
        self.by_id.get(id).map(|(_, hook)| hook)
    }

    pub fn by_url(&self, url: &str) -> Option<&Arc<Hook>> {
        self.by_url
            .get(url)
            .and_then(|hooks| hooks.first())
            .map(|(_, hook)| hook)
    }

    /// All hooks, in creation order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Hook>> {
        self.ordered.values()
    }

    /// The hooks that may receive an event of this meeting: every global hook, then every hook
    /// scoped to it (the reference served only the first scoped one).
    pub fn candidates<'a>(
        &'a self,
        external_meeting_id: Option<&str>,
    ) -> impl Iterator<Item = &'a Arc<Hook>> {
        let scoped = external_meeting_id.and_then(|m| self.by_meeting.get(m));
        self.global
            .values()
            .chain(scoped.into_iter().flat_map(|hooks| hooks.values()))
    }

    /// What `hooks/list` shows: all hooks, or with `meetingID` the global ones plus every hook
    /// scoped to that meeting; in creation order either way.
    pub fn listed(&self, meeting_id: Option<&str>) -> Vec<Arc<Hook>> {
        self.ordered
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

/// Adds a hook to the group `key` of an index.
fn group_insert(
    groups: &mut HashTrieMapSync<String, Ordered>,
    key: &str,
    place: u64,
    hook: &Arc<Hook>,
) {
    let members = groups
        .get(key)
        .cloned()
        .unwrap_or_default()
        .insert(place, hook.clone());
    groups.insert_mut(key.to_string(), members);
}

/// Takes a hook out of the group `key` of an index; an empty group goes.
fn group_remove(groups: &mut HashTrieMapSync<String, Ordered>, key: &str, place: u64) {
    let Some(members) = groups.get(key) else {
        return;
    };
    let rest = members.remove(&place);
    if rest.is_empty() {
        groups.remove_mut(key);
    } else {
        groups.insert_mut(key.to_string(), rest);
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
    /// The stored hooks' change count when they were last read (see [`HookStore::version`]).
    loaded: std::sync::Mutex<Option<u64>>,
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
        let loaded = store.version().await?;
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
            loaded: std::sync::Mutex::new(loaded),
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
        self.replace(current.with(hook.clone()));
        Ok(CreateOutcome::Created(hook))
    }

    /// Reads the stored hooks again and takes them as the current set: in a cluster, after
    /// another relay created or destroyed one. Returns whether anything changed. One `GET` when
    /// the stored hooks' change count did not move since they were last read. Configured
    /// permanent hooks are reconciled by [`HookRegistry::load`] only (every relay has the same
    /// configuration, and each saved its own at start).
    pub async fn reload(&self) -> Result<bool, RegistryError> {
        let _writer = self.writer.lock().await;
        let version = self.store.version().await?;
        let last = *self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if version.is_some() && version == last {
            return Ok(false);
        }
        let (stored, _unreadable) = self.store.load_all().await?;
        // Only once read: a failed read is tried again next time.
        *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) = version;
        let current = self.snapshot();
        let same = stored.len() == current.len()
            && stored
                .iter()
                .all(|h| current.get(&h.id).is_some_and(|c| **c == *h));
        if !same {
            self.replace(HookSet::build(stored.into_iter().map(Arc::new)));
        }
        Ok(!same)
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
        self.replace(current.without(id));
        Ok(RemoveOutcome::Removed(hook))
    }

    fn replace(&self, set: HookSet) {
        let set = Arc::new(set);
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
    fn changes_keep_every_index_and_leave_the_old_set_as_it_was() {
        let base = HookSet::build([hook("g1", None), hook("m1", Some("m"))]);
        let grown = base.with(hook("m2", Some("m"))).with(hook("g2", None));
        let ids = |set: &HookSet, meeting| -> Vec<String> {
            set.candidates(meeting).map(|h| h.id.clone()).collect()
        };
        assert_eq!(ids(&grown, Some("m")), ["g1", "g2", "m1", "m2"]);
        assert_eq!(
            ids(&base, Some("m")),
            ["g1", "m1"],
            "a snapshot never changes"
        );
        let shrunk = grown.without("m1").without("g1").without("nope");
        assert_eq!(ids(&shrunk, Some("m")), ["g2", "m2"]);
        assert!(shrunk.get("m1").is_none() && shrunk.by_url("http://h/m1").is_none());
        assert_eq!(
            shrunk.by_url("http://h/m2").map(|h| h.id.as_str()),
            Some("m2")
        );
        assert_eq!(shrunk.len(), 2);
        let emptied = shrunk.without("m2");
        assert!(emptied.by_meeting.get("m").is_none(), "an empty group goes");
        // Re-adding an id moves it last, as one hook.
        let again = grown.with(hook("g1", None));
        let order: Vec<&str> = again.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(order, ["m1", "m2", "g2", "g1"]);
    }

    #[test]
    fn duplicate_urls_written_by_others_resolve_to_the_oldest() {
        let twin = |id: &str| {
            Arc::new(Hook {
                callback_url: "http://h/same".into(),
                ..(*hook(id, None)).clone()
            })
        };
        let set = HookSet::build([twin("a"), twin("b")]);
        assert_eq!(
            set.by_url("http://h/same").map(|h| h.id.as_str()),
            Some("a")
        );
        let set = set.without("a");
        assert_eq!(
            set.by_url("http://h/same").map(|h| h.id.as_str()),
            Some("b")
        );
        assert!(set.without("b").by_url("http://h/same").is_none());
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
