//! Meeting and user mappings: who is who, per meeting, in join order.
//!
//! The mapper changes [`State`] synchronously, so the message after `meeting-created` or
//! `user-joined` always sees the new external ids (the reference wrote Redis first and raced).
//! Every change is also recorded in a journal that the enqueuer writes to Redis ([`store`]) in
//! the same round trip as the deliveries it caused; meeting activity is kept in memory and
//! flushed now and then, not on every event. This module does no I/O itself except in `store`.
//!
//! Besides the mappings, a meeting holds a little short-lived memory: the guest decisions it has
//! just reported (BigBlueButton repeats each one to every moderator), the breakout rooms it
//! started and the external video it is playing, so that the events that end them can name
//! them. It is written with the meeting's mapping (field `meetingRecent`, [`Meeting::recent`]),
//! so a restart, or another relay taking the server over, goes on with it.

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
    /// The meeting's `metadata` as `meeting-created` carried it; persisted with the mapping (a
    /// field of ours that bbb-webhooks 3.x ignores) so that it survives a restart.
    pub metadata: Option<Map<String, Value>>,
    pub last_activity: u64,
    /// `last_activity` as last written to Redis.
    pub stored_activity: u64,
    pub users: IndexMap<String, User>,
    /// Guest decisions reported lately, to report each one once.
    guest_decisions: Vec<GuestDecision>,
    /// Breakout rooms started, by internal id, with what their end should say.
    breakouts: IndexMap<String, Map<String, Value>>,
    /// The URL of the external video playing.
    external_video: Option<String>,
}

impl Meeting {
    fn new(now: u64) -> Self {
        Meeting {
            mapping_id: None,
            external_id: None,
            metadata: None,
            last_activity: now,
            stored_activity: now,
            users: IndexMap::new(),
            guest_decisions: Vec::new(),
            breakouts: IndexMap::new(),
            external_video: None,
        }
    }

    /// A mapped meeting as read back from Redis; `recent` is what [`Meeting::recent`] wrote.
    pub(crate) fn restored(
        mapping_id: String,
        external_id: String,
        metadata: Option<Map<String, Value>>,
        last_activity: u64,
        recent: Option<&str>,
    ) -> Self {
        let mut m = Meeting {
            mapping_id: Some(mapping_id),
            external_id: Some(external_id),
            metadata,
            stored_activity: last_activity,
            ..Meeting::new(last_activity)
        };
        if let Some(Value::Object(r)) = recent.and_then(|r| serde_json::from_str(r).ok()) {
            for d in r
                .get("guestDecisions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let (Some(guest), Some(allowed), Some(at)) =
                    (d[0].as_str(), d[1].as_bool(), d[2].as_u64())
                {
                    m.guest_decisions.push(GuestDecision {
                        guest: guest.to_owned(),
                        allowed,
                        at,
                    });
                }
            }
            if let Some(Value::Object(b)) = r.get("breakouts") {
                for (id, info) in b {
                    if let Value::Object(info) = info {
                        m.breakouts.insert(id.clone(), info.clone());
                    }
                }
            }
            m.external_video = r
                .get("externalVideo")
                .and_then(Value::as_str)
                .map(String::from);
        }
        m
    }

    /// What the meeting remembers of its recent messages to report each thing once (guest
    /// decisions, started breakout rooms, the external video playing), as JSON; `None` when
    /// nothing. Persisted with the mapping so that a restart, or another relay taking the
    /// server over, neither repeats nor loses them.
    pub(crate) fn recent(&self) -> Option<String> {
        if self.guest_decisions.is_empty()
            && self.breakouts.is_empty()
            && self.external_video.is_none()
        {
            return None;
        }
        let decisions: Vec<Value> = self
            .guest_decisions
            .iter()
            .map(|d| serde_json::json!([d.guest, d.allowed, d.at]))
            .collect();
        let breakouts: Map<String, Value> = self
            .breakouts
            .iter()
            .map(|(k, v)| (k.clone(), Value::Object(v.clone())))
            .collect();
        Some(
            serde_json::json!({
                "guestDecisions": decisions,
                "breakouts": breakouts,
                "externalVideo": self.external_video,
            })
            .to_string(),
        )
    }
}

/// A guest decision already reported: (guest, allowed) at the message time `at`.
#[derive(Debug, Clone)]
struct GuestDecision {
    guest: String,
    allowed: bool,
    at: u64,
}

/// How long a guest decision is remembered. BigBlueButton sends one decision as one message to
/// the guest plus one per moderator, all built in the same instant (their `envelope.timestamp`s
/// are milliseconds apart); a minute covers them with room for clocks, yet forgets soon enough
/// that a later, deliberate repeat of the same decision is reported again.
pub const GUEST_DECISION_WINDOW_MS: u64 = 60_000;

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

    /// The metadata of a mapped meeting, when known.
    pub fn meeting_metadata(&self, internal_id: &str) -> Option<&Map<String, Value>> {
        self.meetings.get(internal_id)?.metadata.as_ref()
    }

    pub fn meeting_created(
        &mut self,
        internal_id: &str,
        external_id: Option<&str>,
        metadata: Option<Map<String, Value>>,
        now: u64,
    ) {
        let meeting = self
            .meetings
            .entry(internal_id.to_string())
            .or_insert_with(|| Meeting::new(now));
        meeting.external_id = external_id.map(String::from);
        meeting.metadata = metadata;
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

    /// The meeting's in-memory record, created when the service had none (like a join does).
    fn meeting_entry(&mut self, internal_id: &str, now: u64) -> &mut Meeting {
        self.meetings
            .entry(internal_id.to_string())
            .or_insert_with(|| Meeting::new(now))
    }

    /// Notes a guest decision made at `at` (the message's time); false when the same decision
    /// about the same guest was already noted within [`GUEST_DECISION_WINDOW_MS`] (a copy).
    pub fn guest_decided(&mut self, meeting: &str, guest: &str, allowed: bool, at: u64) -> bool {
        let m = self.meeting_entry(meeting, at);
        // Forget what is out of the window on either side: messages may arrive out of order.
        m.guest_decisions
            .retain(|d| d.at.abs_diff(at) <= GUEST_DECISION_WINDOW_MS);
        if m.guest_decisions
            .iter()
            .any(|d| d.guest == guest && d.allowed == allowed)
        {
            return false;
        }
        m.guest_decisions.push(GuestDecision {
            guest: guest.to_string(),
            allowed,
            at,
        });
        self.journal.push(Change::MeetingSaved(meeting.to_string()));
        true
    }

    /// Remembers a started breakout room (what its end should say), under its parent meeting.
    pub fn breakout_started(
        &mut self,
        parent: &str,
        breakout: &str,
        info: Map<String, Value>,
        now: u64,
    ) {
        self.meeting_entry(parent, now)
            .breakouts
            .insert(breakout.to_string(), info);
        self.journal.push(Change::MeetingSaved(parent.to_string()));
    }

    /// Forgets an ended breakout room; returns what was remembered of it.
    pub fn breakout_ended(&mut self, parent: &str, breakout: &str) -> Option<Map<String, Value>> {
        let ended = self
            .meetings
            .get_mut(parent)?
            .breakouts
            .shift_remove(breakout);
        if ended.is_some() {
            self.journal.push(Change::MeetingSaved(parent.to_string()));
        }
        ended
    }

    /// Remembers the external video a meeting plays (`None`: it stopped); returns the previous.
    pub fn set_external_video(
        &mut self,
        meeting: &str,
        url: Option<String>,
        now: u64,
    ) -> Option<String> {
        let m = self.meeting_entry(meeting, now);
        let before = std::mem::replace(&mut m.external_video, url);
        if before != m.external_video {
            self.journal.push(Change::MeetingSaved(meeting.to_string()));
        }
        before
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
        let m = self.meeting_entry(meeting, now);
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
        self.meeting_entry(meeting, now).users.insert(user_id, user);
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
        s.meeting_created("m", Some("ext"), None, 1);
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
        s.meeting_created("old", Some("o"), None, 1_000);
        s.meeting_created("new", Some("n"), None, 1_000);
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

    #[test]
    fn what_a_meeting_remembers_survives_being_written_and_read_back() {
        let mut s = State::new();
        s.meeting_created("m", Some("ext"), None, 1_000);
        assert!(s.guest_decided("m", "g", true, 1_000));
        let mut info = Map::new();
        info.insert("name".into(), Value::from("Room 1"));
        s.breakout_started("m", "b1", info.clone(), 1_000);
        s.set_external_video("m", Some("https://v".into()), 1_000);
        let journal = s.take_journal();
        assert!(
            journal.contains(&Change::MeetingSaved("m".into())),
            "{journal:?}"
        );
        let written = s
            .meeting("m")
            .and_then(Meeting::recent)
            .expect("something to keep");

        let mut back = State::new();
        back.restore_meeting(
            "m".into(),
            Meeting::restored("map".into(), "ext".into(), None, 1_000, Some(&written)),
        );
        assert!(
            !back.guest_decided("m", "g", true, 1_002),
            "a copy after a restart"
        );
        assert_eq!(back.breakout_ended("m", "b1"), Some(info));
        assert_eq!(
            back.set_external_video("m", None, 1_003).as_deref(),
            Some("https://v")
        );
        // What ended is forgotten; the decision stays within its window.
        let left = back
            .meeting("m")
            .and_then(Meeting::recent)
            .unwrap_or_default();
        assert!(
            !left.contains("Room 1") && left.contains("\"externalVideo\":null"),
            "{left}"
        );
    }

    #[test]
    fn a_guest_decision_counts_once_within_the_window() {
        let mut s = State::new();
        assert!(s.guest_decided("m", "g", true, 1_000));
        // The copies sent to each moderator, milliseconds later.
        assert!(!s.guest_decided("m", "g", true, 1_003));
        assert!(!s.guest_decided("m", "g", true, 1_001));
        // Another guest, another decision, another meeting: each its own.
        assert!(s.guest_decided("m", "h", true, 1_004));
        assert!(s.guest_decided("m", "g", false, 1_005));
        assert!(s.guest_decided("other", "g", true, 1_005));
        // Long after, the same decision again is news.
        assert!(s.guest_decided("m", "g", true, 1_000 + GUEST_DECISION_WINDOW_MS + 10));
        // The memory goes with the meeting.
        s.meeting_ended("m");
        assert!(s.guest_decided("m", "h", true, 1_004));
    }
}
