//! Hooks in Redis, in the reference layout: a SET of ids and one HASH per hook.
//!
//! Written fields: `id`, `callbackURL`, `externalMeetingID` (scoped hooks only), `eventID` (a JSON
//! array string, as 3.x writes it; only when set), `permanent` and `getRaw` (`"true"`/`"false"`),
//! plus `createdAt` (ours, ms) and `multiEvent` (ours, only when the hook was created with one);
//! 3.x ignores both. Read: the same, and also what other versions
//! wrote: `eventID` as a comma list (2.x), the id in `hookID` (2.x), `getRaw` as `"1"`.
//! A hash and its set membership are written and removed in one MULTI, so a failure never leaves
//! half a hook behind. In a cluster, the same MULTI counts the change
//! (`<ownPrefix>:hooks:version`) and announces it on the cluster's hooks channel, so every relay
//! reloads its hooks at once, and only then ([`HookStore::announcing`]).

use std::collections::HashMap;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use super::{Hook, parse_event_ids};
use crate::config::parse_bool;
use crate::keys::Keys;

#[derive(Clone)]
pub struct HookStore {
    conn: ConnectionManager,
    keys: Keys,
    /// The channel a change is published on, in a cluster.
    announce: Option<String>,
}

/// A stored hook that could not be read; left in Redis untouched.
#[derive(Debug)]
pub struct UnreadableHook {
    pub id: String,
    pub reason: String,
}

impl HookStore {
    pub fn new(conn: ConnectionManager, keys: Keys) -> Self {
        HookStore {
            conn,
            keys,
            announce: None,
        }
    }

    /// Publishes the id of every hook saved or deleted on `channel`.
    pub fn announcing(mut self, channel: String) -> Self {
        self.announce = Some(channel);
        self
    }

    fn announce(&self, pipe: &mut redis::Pipeline, id: &str) {
        if let Some(channel) = &self.announce {
            pipe.incr(self.keys.hooks_version(), 1).ignore();
            pipe.publish(channel, id).ignore();
        }
    }

    /// How many times the stored hooks changed, in a cluster (`None` elsewhere: nothing counts
    /// the changes, every reload reads them all).
    pub async fn version(&self) -> redis::RedisResult<Option<u64>> {
        if self.announce.is_none() {
            return Ok(None);
        }
        let mut conn = self.conn.clone();
        let v: Option<u64> = conn.get(self.keys.hooks_version()).await?;
        Ok(Some(v.unwrap_or(0)))
    }

    /// Every stored hook, in creation order where known.
    pub async fn load_all(&self) -> redis::RedisResult<(Vec<Hook>, Vec<UnreadableHook>)> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = conn.smembers(self.keys.hooks()).await?;
        if ids.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(self.keys.hook(id));
        }
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        let mut hooks = Vec::new();
        let mut unreadable = Vec::new();
        for (id, fields) in ids.into_iter().zip(hashes) {
            match from_fields(&id, &fields) {
                Ok(hook) => hooks.push(hook),
                Err(reason) => unreadable.push(UnreadableHook { id, reason }),
            }
        }
        hooks.sort_by(|a, b| {
            (a.created_at.unwrap_or(0), &a.id).cmp(&(b.created_at.unwrap_or(0), &b.id))
        });
        Ok((hooks, unreadable))
    }

    /// Writes the hook's hash (replacing every field) and adds it to the set, atomically.
    pub async fn save(&self, hook: &Hook) -> redis::RedisResult<()> {
        let key = self.keys.hook(&hook.id);
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(&key)
            .ignore()
            .hset_multiple(&key, &to_fields(hook))
            .ignore()
            .sadd(self.keys.hooks(), &hook.id)
            .ignore();
        self.announce(&mut pipe, &hook.id);
        pipe.query_async::<()>(&mut conn).await
    }

    /// Removes the hook from the set and deletes its hash, atomically; then records that it was
    /// destroyed, the proof that lets a later start delete a queue the hook left behind. The
    /// record is a separate write: a Redis out of memory refuses it, but not the deletion, which
    /// frees memory (a queue without its record is kept, never deleted on a guess).
    pub async fn delete(&self, id: &str) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .srem(self.keys.hooks(), id)
            .ignore()
            .del(self.keys.hook(id))
            .ignore();
        self.announce(&mut pipe, id);
        pipe.query_async::<()>(&mut conn).await?;
        if let Err(e) = conn.sadd::<_, _, ()>(self.keys.destroyed(), id).await {
            tracing::warn!(hook = %id, error = %e, "cannot record the hook's removal; its queue is deleted now, or kept");
        }
        Ok(())
    }
}

pub fn to_fields(hook: &Hook) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("id", hook.id.clone()),
        ("callbackURL", hook.callback_url.clone()),
    ];
    if let Some(meeting) = &hook.meeting_id {
        fields.push(("externalMeetingID", meeting.clone()));
    }
    if let Some(ids) = &hook.event_ids {
        fields.push((
            "eventID",
            serde_json::to_string(ids).unwrap_or_else(|_| ids.join(",")),
        ));
    }
    fields.push(("permanent", hook.permanent.to_string()));
    fields.push(("getRaw", hook.get_raw.to_string()));
    if let Some(at) = hook.created_at {
        fields.push(("createdAt", at.to_string()));
    }
    if let Some(n) = hook.multi_event {
        fields.push(("multiEvent", n.to_string()));
    }
    fields
}

/// Reads a stored hook; `member` is its id in the SET (used when the hash names none).
pub fn from_fields(member: &str, fields: &HashMap<String, String>) -> Result<Hook, String> {
    if fields.is_empty() {
        return Err("the hash is missing or empty".into());
    }
    let id = fields
        .get("id")
        .or_else(|| fields.get("hookID"))
        .filter(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| member.to_string());
    let callback_url = fields
        .get("callbackURL")
        .cloned()
        .ok_or("the hash has no callbackURL")?;
    let flag = |name: &str| {
        fields
            .get(name)
            .and_then(|v| parse_bool(v))
            .unwrap_or(false)
    };
    Ok(Hook {
        id,
        callback_url,
        meeting_id: fields.get("externalMeetingID").cloned(),
        event_ids: fields.get("eventID").and_then(|s| parse_event_ids(s)),
        permanent: flag("permanent"),
        get_raw: flag("getRaw"),
        created_at: fields.get("createdAt").and_then(|s| s.parse().ok()),
        // Out of range (written by hand): the global setting applies.
        multi_event: fields
            .get("multiEvent")
            .and_then(|s| s.parse().ok())
            .filter(|n: &std::num::NonZeroUsize| n.get() <= super::MAX_MULTI_EVENT),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_what_3x_writes() {
        let hook = from_fields(
            "8f0c",
            &fields(&[
                ("id", "8f0c"),
                ("callbackURL", "https://a/b"),
                ("externalMeetingID", "random-9019868"),
                ("eventID", r#"["meeting-created","user-joined"]"#),
                ("permanent", "false"),
                ("getRaw", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(hook.id, "8f0c");
        assert_eq!(hook.meeting_id.as_deref(), Some("random-9019868"));
        assert_eq!(
            hook.event_ids,
            Some(vec!["meeting-created".into(), "user-joined".into()])
        );
        assert!(hook.get_raw && !hook.permanent);
    }

    #[test]
    fn reads_what_2x_wrote() {
        let hook = from_fields(
            "3",
            &fields(&[
                ("hookID", "3"),
                ("callbackURL", "http://x/y"),
                ("eventID", "user-joined,user-left"),
                ("permanent", "false"),
                ("getRaw", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(hook.id, "3");
        assert_eq!(
            hook.event_ids,
            Some(vec!["user-joined".into(), "user-left".into()])
        );
        assert!(hook.get_raw);
        assert!(hook.meeting_id.is_none());
    }

    #[test]
    fn round_trip_keeps_everything() {
        let hook = Hook {
            id: "abc".into(),
            callback_url: "https://h/x?y=1".into(),
            meeting_id: Some("m".into()),
            event_ids: Some(vec!["user-left".into()]),
            permanent: true,
            get_raw: true,
            created_at: Some(12),
            multi_event: std::num::NonZeroUsize::new(20),
        };
        let stored: HashMap<String, String> = to_fields(&hook)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(stored["eventID"], r#"["user-left"]"#);
        assert_eq!(stored["multiEvent"], "20");
        assert_eq!(from_fields("abc", &stored).unwrap(), hook);
    }

    #[test]
    fn unreadable_hashes_are_reported() {
        assert!(from_fields("x", &HashMap::new()).is_err());
        assert!(from_fields("x", &fields(&[("id", "x")])).is_err());
    }
}
