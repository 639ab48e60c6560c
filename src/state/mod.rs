//! Meeting and user mappings: who is who, per meeting, in join order.
//!
//! The mapper changes [`State`] synchronously, so the message after `meeting-created` or
//! `user-joined` always sees the new external ids (the reference wrote Redis first and raced).
//! Every change is also recorded in a journal that the enqueuer writes to Redis ([`store`]) in
//! the same round trip as the deliveries it caused; meeting activity is kept in memory and
//! flushed now and then, not on every event. This module does no I/O itself except in `store`.

pub mod store;

use std::collections::HashMap;

use indexmap::IndexMap;
use serde_json::{Map, Value};

pub use store::StateStore;

/// Which BigBlueButton generation a user joined through: decides the shape of their spoofed
/// `user-left` (the same shape as a real one of that generation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    V1,
    V2,
}

#[derive(Debug, Clone)]
pub struct User {
    /// The id of the user's mapping hash in Redis.
    pub mapping_id: String,
    pub external_id: String,
    pub flavor: Flavor,
    /// The `user` object of the `user-joined` event, kept current (presenter, …). Persisted as
    /// the reference's `user` field.
    pub record: Map<String, Value>,
    pub joined_at: u64,
}

impl User {
    pub fn flag(&self, key: &str) -> bool {
        self.record
            .get(key)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

#[derive(Debug, Clone)]
pub struct Meeting {
    /// The id of the meeting's mapping hash; `None` while no `meeting-created` was seen (the
    /// meeting only holds users then).
    pub mapping_id: Option<String>,
    pub external_id: Option<String>,
    pub last_activity: u64,
    /// `last_activity` as last written to Redis.
    pub stored_activity: u64,
    pub users: IndexMap<String, User>,
}

impl Meeting {
    fn new(now: u64) -> Self {
        Meeting {
            mapping_id: None,
            external_id: None,
            last_activity: now,
            stored_activity: now,
            users: IndexMap::new(),
        }
    }
}

/// A change the store must write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Write the meeting's mapping hash (by internal id).
    MeetingSaved(String),
    /// Delete a meeting mapping and the listed user mappings.
    MeetingRemoved {
        mapping_id: Option<String>,
        user_mapping_ids: Vec<String>,
    },
    /// Write a user's mapping hash.
    UserSaved {
        meeting: String,
        user: String,
    },
    UserRemoved {
        mapping_id: String,
    },
}

#[derive(Debug, Default)]
pub struct State {
    meetings: HashMap<String, Meeting>,
    journal: Vec<Change>,
}

impl State {
    pub fn new() -> Self {
        State::default()
    }

    pub fn meeting(&self, internal_id: &str) -> Option<&Meeting> {
        self.meetings.get(internal_id)
    }

    pub fn external_meeting_id(&self, internal_id: &str) -> Option<&str> {
        self.meetings.get(internal_id)?.external_id.as_deref()
    }

    /// Counts for the mapping gauges: (mapped meetings, users).
    pub fn counts(&self) -> (usize, usize) {
        let mapped = self
            .meetings
            .values()
            .filter(|m| m.mapping_id.is_some())
            .count();
        let users = self.meetings.values().map(|m| m.users.len()).sum();
        (mapped, users)
    }

    pub fn meeting_created(&mut self, internal_id: &str, external_id: Option<&str>, now: u64) {
        let meeting = self
            .meetings
            .entry(internal_id.to_string())
            .or_insert_with(|| Meeting::new(now));
        meeting.external_id = external_id.map(String::from);
        meeting.mapping_id.get_or_insert_with(new_mapping_id);
        meeting.last_activity = now;
        meeting.stored_activity = now;
        self.journal
            .push(Change::MeetingSaved(internal_id.to_string()));
    }

    /// Notes activity; written to Redis later by [`State::activity_to_store`].
    pub fn touch(&mut self, internal_id: &str, now: u64) {
        if let Some(m) = self.meetings.get_mut(internal_id) {
            m.last_activity = m.last_activity.max(now);
        }
    }

    pub fn user(&self, meeting: &str, user_id: &str) -> Option<&User> {
        self.meetings.get(meeting)?.users.get(user_id)
    }

    pub fn external_user_id(&self, meeting: &str, user_id: &str) -> Option<&str> {
        self.user(meeting, user_id).map(|u| u.external_id.as_str())
    }

    /// Adds (or, on a re-join, replaces in place) a user.
    pub fn user_joined(
        &mut self,
        meeting: &str,
        user_id: &str,
        external_id: &str,
        flavor: Flavor,
        record: Map<String, Value>,
        now: u64,
    ) {
        let m = self
            .meetings
            .entry(meeting.to_string())
            .or_insert_with(|| Meeting::new(now));
        let mapping_id = m
            .users
            .get(user_id)
            .map(|u| u.mapping_id.clone())
            .unwrap_or_else(new_mapping_id);
        m.users.insert(
            user_id.to_string(),
            User {
                mapping_id,
                external_id: external_id.to_string(),
                flavor,
                record,
                joined_at: now,
            },
        );
        self.journal.push(Change::UserSaved {
            meeting: meeting.to_string(),
            user: user_id.to_string(),
        });
    }

    /// Sets a field of a user's record (presenter, screenshare, …), journaling real changes.
    pub fn set_user_field(&mut self, meeting: &str, user_id: &str, key: &str, value: Value) {
        let Some(user) = self
            .meetings
            .get_mut(meeting)
            .and_then(|m| m.users.get_mut(user_id))
        else {
            return;
        };
        if user.record.get(key) == Some(&value) {
            return;
        }
        user.record.insert(key.to_string(), value);
        self.journal.push(Change::UserSaved {
            meeting: meeting.to_string(),
            user: user_id.to_string(),
        });
    }

    /// Sets `key` to `value` for one user and to its negation for every other user of the
    /// meeting that has it set (one presenter, one screen sharer).
    pub fn set_exclusive_flag(&mut self, meeting: &str, user_id: &str, key: &str) {
        let others: Vec<String> = self
            .meetings
            .get(meeting)
            .map(|m| {
                m.users
                    .iter()
                    .filter(|(id, u)| id.as_str() != user_id && u.flag(key))
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default();
        for other in others {
            self.set_user_field(meeting, &other, key, Value::Bool(false));
        }
        self.set_user_field(meeting, user_id, key, Value::Bool(true));
    }

    /// The first user of the meeting with `key` set (presenter, screen sharer).
    pub fn user_with_flag(&self, meeting: &str, key: &str) -> Option<(&str, &User)> {
        self.meetings
            .get(meeting)?
            .users
            .iter()
            .find(|(_, u)| u.flag(key))
            .map(|(id, u)| (id.as_str(), u))
    }

    pub fn user_left(&mut self, meeting: &str, user_id: &str) -> Option<User> {
        let user = self
            .meetings
            .get_mut(meeting)?
            .users
            .shift_remove(user_id)?;
        self.journal.push(Change::UserRemoved {
            mapping_id: user.mapping_id.clone(),
        });
        Some(user)
    }

    /// Forgets a meeting and its users; returns it (users in join order).
    pub fn meeting_ended(&mut self, internal_id: &str) -> Option<Meeting> {
        let meeting = self.meetings.remove(internal_id)?;
        self.journal.push(Change::MeetingRemoved {
            mapping_id: meeting.mapping_id.clone(),
            user_mapping_ids: meeting
                .users
                .values()
                .map(|u| u.mapping_id.clone())
                .collect(),
        });
        Some(meeting)
    }

    /// Forgets meetings inactive for longer than `timeout`; returns how many.
    pub fn expire(&mut self, now: u64, timeout: std::time::Duration) -> usize {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let expired: Vec<String> = self
            .meetings
            .iter()
            .filter(|(_, m)| m.last_activity.saturating_add(timeout_ms) < now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.meeting_ended(id);
        }
        expired.len()
    }

    /// Mapped meetings whose activity moved by more than `min_step_ms` since it was last stored;
    /// marks them stored.
    pub fn activity_to_store(&mut self, min_step_ms: u64) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for m in self.meetings.values_mut() {
            if let Some(mapping) = &m.mapping_id
                && m.last_activity >= m.stored_activity.saturating_add(min_step_ms)
            {
                m.stored_activity = m.last_activity;
                out.push((mapping.clone(), m.last_activity));
            }
        }
        out
    }

    /// Changes that write every mapping held in memory: what to replay into a Redis that lost
    /// its data.
    pub fn everything(&self) -> Vec<Change> {
        let mut out = Vec::new();
        for (internal, m) in &self.meetings {
            out.push(Change::MeetingSaved(internal.clone()));
            for user in m.users.keys() {
                out.push(Change::UserSaved {
                    meeting: internal.clone(),
                    user: user.clone(),
                });
            }
        }
        out
    }

    /// The changes since the last call, oldest first.
    pub fn take_journal(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.journal)
    }

    /// Puts a meeting loaded from Redis in place (no journal: it is already stored).
    pub(crate) fn restore_meeting(&mut self, internal_id: String, meeting: Meeting) {
        self.meetings.insert(internal_id, meeting);
    }

    pub(crate) fn restore_user(&mut self, meeting: &str, user_id: String, user: User, now: u64) {
        self.meetings
            .entry(meeting.to_string())
            .or_insert_with(|| Meeting::new(now))
            .users
            .insert(user_id, user);
    }

    pub(crate) fn sort_users_by_join_time(&mut self) {
        for m in self.meetings.values_mut() {
            m.users.sort_by(|_, a, _, b| a.joined_at.cmp(&b.joined_at));
        }
    }
}

fn new_mapping_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_leave_in_join_order_when_the_meeting_ends() {
        let mut s = State::new();
        s.meeting_created("m", Some("ext"), 1);
        for u in ["a", "b", "c"] {
            s.user_joined("m", u, &format!("x{u}"), Flavor::V2, Map::new(), 2);
        }
        s.user_left("m", "b");
        let ended = s.meeting_ended("m").unwrap();
        let order: Vec<&String> = ended.users.keys().collect();
        assert_eq!(order, ["a", "c"]);
        assert!(s.meeting("m").is_none());
    }

    #[test]
    fn one_presenter_at_a_time() {
        let mut s = State::new();
        s.user_joined("m", "a", "", Flavor::V2, Map::new(), 1);
        s.user_joined("m", "b", "", Flavor::V2, Map::new(), 1);
        s.set_exclusive_flag("m", "a", "presenter");
        s.set_exclusive_flag("m", "b", "presenter");
        assert_eq!(s.user_with_flag("m", "presenter").unwrap().0, "b");
        assert!(!s.user("m", "a").unwrap().flag("presenter"));
    }

    #[test]
    fn inactive_meetings_expire_and_activity_is_stored_in_steps() {
        let mut s = State::new();
        s.meeting_created("old", Some("o"), 1_000);
        s.meeting_created("new", Some("n"), 1_000);
        s.take_journal();
        s.touch("new", 50_000);
        assert_eq!(s.activity_to_store(60_000), vec![]);
        s.touch("new", 70_000);
        assert_eq!(s.activity_to_store(60_000).len(), 1);
        assert_eq!(
            s.expire(80_000, std::time::Duration::from_millis(30_000)),
            1
        );
        assert!(s.meeting("old").is_none() && s.meeting("new").is_some());
        assert!(matches!(s.take_journal()[0], Change::MeetingRemoved { .. }));
    }
}
