//! Meeting and user mappings in Redis, in the reference layout, so a restart (or a rollback to
//! bbb-webhooks 3.x) keeps them.
//!
//! * meeting: SET `mappings` of uuids; HASH `mapping:<uuid>` with `id`, `internalMeetingID`,
//!   `externalMeetingID`, `lastActivity`, plus `meetingMetadata` (ours, ignored by 3.x: the
//!   meeting's metadata as a JSON object, for `hooks.includeMeetingMetadata`).
//! * user: SET `userMaps`; HASH `userMap:<uuid>` with `id`, `internalUserID`, `externalUserID`,
//!   `meetingId`, `user` (the event's user object as JSON), plus `joinedAt` (ours: join order).
//!
//! The reference stores every leaf of `user` as a string (`"true"`); those are read back typed.

use std::collections::HashMap;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Pipeline};
use serde_json::{Map, Value};

use super::{Change, Flavor, Meeting, State, User};
use crate::keys::Keys;

/// Our field of a meeting's mapping hash that holds the meeting's metadata (JSON).
pub const METADATA_FIELD: &str = "meetingMetadata";
/// Ours too: what the meeting remembers to report each thing once ([`Meeting::recent`]).
pub const RECENT_FIELD: &str = "meetingRecent";

/// Keys of the stored user object that hold booleans.
const BOOLEAN_KEYS: [&str; 9] = [
    "presenter",
    "guest",
    "screenshare",
    "raiseHand",
    "raise-hand",
    "sharing-mic",
    "sharing-video",
    "listening-only",
    "muted",
];

#[derive(Clone)]
pub struct StateStore {
    conn: ConnectionManager,
    keys: Keys,
}

impl StateStore {
    pub fn new(conn: ConnectionManager, keys: Keys) -> Self {
        StateStore { conn, keys }
    }

    /// Reads every stored mapping. Hashes that cannot be read are removed, as 3.2 does.
    pub async fn load(&self) -> redis::RedisResult<State> {
        let mut conn = self.conn.clone();
        let now = crate::time::now_ms();
        let mut state = State::new();
        let mut broken: Vec<(String, String)> = Vec::new();

        let meetings = self
            .read_all(self.keys.meetings(), |id| self.keys.meeting(id))
            .await?;
        for (mapping_id, h) in meetings {
            let (Some(internal), Some(external)) =
                (h.get("internalMeetingID"), h.get("externalMeetingID"))
            else {
                broken.push((self.keys.meetings().to_string(), mapping_id));
                continue;
            };
            let last = h
                .get("lastActivity")
                .and_then(|s| s.parse().ok())
                .unwrap_or(now);
            // Mappings written by bbb-webhooks 3.x (or before this field) have no metadata: the
            // events then go without it, as they would for an unknown meeting.
            let metadata = h
                .get(METADATA_FIELD)
                .and_then(|s| serde_json::from_str::<Map<String, Value>>(s).ok());
            state.restore_meeting(
                internal.clone(),
                Meeting::restored(
                    mapping_id,
                    external.clone(),
                    metadata,
                    last,
                    h.get(RECENT_FIELD).map(String::as_str),
                ),
            );
        }

        let users = self
            .read_all(self.keys.users(), |id| self.keys.user(id))
            .await?;
        for (mapping_id, h) in users {
            let (Some(user_id), Some(meeting)) = (h.get("internalUserID"), h.get("meetingId"))
            else {
                broken.push((self.keys.users().to_string(), mapping_id));
                continue;
            };
            let record = h
                .get("user")
                .and_then(|s| serde_json::from_str::<Map<String, Value>>(s).ok())
                .map(typed)
                .unwrap_or_default();
            // Only a 1.x user-joined carries `sharing-video`.
            let flavor = if record.contains_key("sharing-video") {
                Flavor::V1
            } else {
                Flavor::V2
            };
            let user = User {
                mapping_id,
                external_id: h.get("externalUserID").cloned().unwrap_or_default(),
                flavor,
                record,
                joined_at: h.get("joinedAt").and_then(|s| s.parse().ok()).unwrap_or(0),
            };
            state.restore_user(meeting, user_id.clone(), user, now);
        }
        state.sort_users_by_join_time();

        if !broken.is_empty() {
            tracing::warn!(
                count = broken.len(),
                "removing stored mappings that cannot be read"
            );
            let mut pipe = redis::pipe();
            for (set, id) in &broken {
                pipe.srem(set, id).ignore();
                let key = if set == self.keys.meetings() {
                    self.keys.meeting(id)
                } else {
                    self.keys.user(id)
                };
                pipe.del(key).ignore();
            }
            pipe.query_async::<()>(&mut conn).await?;
        }
        let (m, u) = state.counts();
        tracing::info!(meetings = m, users = u, "meeting and user mappings loaded");
        Ok(state)
    }

    async fn read_all(
        &self,
        set: &str,
        key: impl Fn(&str) -> String,
    ) -> redis::RedisResult<Vec<(String, HashMap<String, String>)>> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = conn.smembers(set).await?;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(1000) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.hgetall(key(id));
            }
            let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
            out.extend(chunk.iter().cloned().zip(hashes));
        }
        Ok(out)
    }

    /// Appends the writes for `changes` (read against the current `state`) to `pipe`.
    pub fn append_changes(&self, pipe: &mut Pipeline, state: &State, changes: &[Change]) {
        for change in changes {
            match change {
                Change::MeetingSaved(internal) => {
                    let Some(m) = state.meeting(internal) else {
                        continue;
                    };
                    let Some(mapping) = &m.mapping_id else {
                        continue;
                    };
                    let key = self.keys.meeting(mapping);
                    let mut fields = vec![
                        ("id", mapping.clone()),
                        ("internalMeetingID", internal.clone()),
                    ];
                    if let Some(ext) = &m.external_id {
                        fields.push(("externalMeetingID", ext.clone()));
                    }
                    fields.push(("lastActivity", m.last_activity.to_string()));
                    match &m.metadata {
                        Some(metadata) => fields
                            .push((METADATA_FIELD, Value::Object(metadata.clone()).to_string())),
                        // A meeting created again without metadata keeps none from before.
                        None => {
                            pipe.hdel(&key, METADATA_FIELD).ignore();
                        }
                    }
                    match m.recent() {
                        Some(recent) => fields.push((RECENT_FIELD, recent)),
                        None => {
                            pipe.hdel(&key, RECENT_FIELD).ignore();
                        }
                    }
                    pipe.hset_multiple(&key, &fields).ignore();
                    pipe.sadd(self.keys.meetings(), mapping).ignore();
                }
                Change::MeetingRemoved {
                    mapping_id,
                    user_mapping_ids,
                } => {
                    if let Some(mapping) = mapping_id {
                        pipe.srem(self.keys.meetings(), mapping).ignore();
                        pipe.del(self.keys.meeting(mapping)).ignore();
                    }
                    for u in user_mapping_ids {
                        pipe.srem(self.keys.users(), u).ignore();
                        pipe.del(self.keys.user(u)).ignore();
                    }
                }
                Change::UserSaved { meeting, user } => {
                    let Some(u) = state.user(meeting, user) else {
                        continue;
                    };
                    let key = self.keys.user(&u.mapping_id);
                    let record = Value::Object(u.record.clone()).to_string();
                    pipe.hset_multiple(
                        &key,
                        &[
                            ("id", u.mapping_id.as_str()),
                            ("internalUserID", user.as_str()),
                            ("externalUserID", u.external_id.as_str()),
                            ("meetingId", meeting.as_str()),
                            ("user", record.as_str()),
                            ("joinedAt", u.joined_at.to_string().as_str()),
                        ],
                    )
                    .ignore();
                    pipe.sadd(self.keys.users(), &u.mapping_id).ignore();
                }
                Change::UserRemoved { mapping_id } => {
                    pipe.srem(self.keys.users(), mapping_id).ignore();
                    pipe.del(self.keys.user(mapping_id)).ignore();
                }
            }
        }
    }

    /// Appends `lastActivity` updates.
    pub fn append_activity(&self, pipe: &mut Pipeline, activity: &[(String, u64)]) {
        for (mapping, at) in activity {
            pipe.hset(self.keys.meeting(mapping), "lastActivity", at.to_string())
                .ignore();
        }
    }
}

/// The reference's stringified leaves (`"true"`) back to booleans; JSON strings inside
/// (`userdata`) back to objects.
fn typed(mut record: Map<String, Value>) -> Map<String, Value> {
    for (key, value) in record.iter_mut() {
        if let Value::String(s) = value {
            if BOOLEAN_KEYS.contains(&key.as_str()) {
                match s.as_str() {
                    "true" => *value = Value::Bool(true),
                    "false" => *value = Value::Bool(false),
                    _ => {}
                }
            } else if key == "userdata"
                && let Ok(inner @ Value::Object(_)) = serde_json::from_str::<Value>(s)
            {
                *value = inner;
            }
        }
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_records_come_back_typed() {
        let stored: Map<String, Value> = serde_json::from_str(
            r#"{"internal-user-id":"w_1","presenter":"true","guest":"false","name":"A","userdata":"{\"bbb_x\":\"1\"}"}"#,
        )
        .unwrap();
        let t = typed(stored);
        assert_eq!(t["presenter"], Value::Bool(true));
        assert_eq!(t["guest"], Value::Bool(false));
        assert_eq!(t["name"], "A");
        assert_eq!(t["userdata"]["bbb_x"], "1");
    }
}
