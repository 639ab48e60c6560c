//! xAPI: learning records for a Learning Record Store, as bbb-webhooks 3.x's xAPI module makes
//! them, but durable. A processing stage beside routing: the enqueuer hands every mapped event to
//! [`Xapi::process`], which keeps each running meeting's xAPI context ([`context`]) and turns the
//! event into a statement ([`statements`]) for the meeting's LRS ([`crate::lrs`]). The statements
//! leave as a batch ([`Xapi::take_batch`]) that the enqueuer writes in its own MULTI: each
//! statement appended to its LRS's queue (a [`crate::queue`] stream named `xapi:<lrsId>`), the
//! context changes and the LRS descriptors with them. Delivery (`delivery::xapi`) sends them.
//!
//! Why this way: a statement is in Redis before any attempt (the LRS may be down: it waits and is
//! retried, not lost); the state a later statement needs (registration, session id, names, polls)
//! is written in the same transaction as the statements it produced, so after `kill -9` the state
//! in Redis matches what was queued, and a restart in the middle of a meeting continues it.
//!
//! Which meetings send what, as in 3.x: only meetings whose `meeting-created` was seen (the
//! context comes from it); none with `meta_xapi-enabled=false`; a meeting with
//! `meta_secret-lrs-payload` sends to that LRS, and to none when the payload cannot be used
//! (logged once, at creation, without the payload); the others to the default LRS, if one is
//! configured. This module sends nothing and knows nothing of HTTP.

pub mod context;
pub mod statements;

use std::collections::HashMap;
use std::sync::Arc;

use redis::aio::ConnectionManager;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::config::{LrsSettings, Settings};
use crate::event::Event;
use crate::keys::{Keys, XAPI_QUEUE_PREFIX};
use crate::lrs::{self, Lrs, LrsPayload};
use crate::metrics::Metrics;
use context::{MeetingContext, Poll, Target, Write};
use statements::{Ids, Subject};

/// Why xAPI, although enabled, cannot run.
#[derive(Debug, thiserror::Error)]
pub enum XapiError {
    /// A setting no field type checks (the namespace, the endpoint): the message names it.
    #[error("{0}")]
    Settings(String),
    #[error(transparent)]
    Lrs(#[from] crate::lrs::LrsError),
}

/// One statement to queue.
#[derive(Debug, Clone)]
pub struct Statement {
    /// The queue ("hook id" for [`crate::queue`]): `xapi:<lrsId>`.
    pub queue: String,
    /// The meeting's internal id.
    pub lane: String,
    /// The event it came from.
    pub event: &'static str,
    pub json: String,
}

/// What one batch of messages produced: statements, context changes, the LRSes they go to.
#[derive(Debug, Default)]
pub struct Batch {
    pub statements: Vec<Statement>,
    writes: Vec<Write>,
    /// The LRS of each statement, once: their descriptors are written with the statements.
    lrs: Vec<(String, Lrs)>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty() && self.writes.is_empty()
    }
}

pub struct Xapi {
    ids: Ids,
    domain: String,
    secret: String,
    default_settings: LrsSettings,
    default_lrs: Option<Lrs>,
    keys: Keys,
    ttl_ms: u64,
    meetings: HashMap<String, MeetingContext>,
    batch: Batch,
    metrics: Arc<Metrics>,
    /// Tells delivery that an LRS it may not know has statements.
    lrs_added: Arc<Notify>,
}

impl Xapi {
    /// `Ok(None)` when xAPI is off; `Err` (why) when it is on but cannot run.
    pub fn new(
        settings: &Settings,
        keys: Keys,
        metrics: Arc<Metrics>,
        lrs_added: Arc<Notify>,
    ) -> Result<Option<Xapi>, XapiError> {
        let x = &settings.xapi;
        if !x.enabled {
            return Ok(None);
        }
        if let Some(problem) = x.problem() {
            return Err(XapiError::Settings(problem));
        }
        let ns = x.namespace().map_err(XapiError::Settings)?;
        let default_lrs = Lrs::from_settings(&x.lrs)?;
        Ok(Some(Xapi {
            ids: Ids(ns),
            domain: settings.bbb.server_domain.clone(),
            secret: settings.secret().to_string(),
            default_settings: x.lrs.clone(),
            default_lrs,
            keys,
            ttl_ms: settings.mappings.timeout.as_millis() as u64,
            meetings: HashMap::new(),
            batch: Batch::default(),
            metrics,
            lrs_added,
        }))
    }

    /// The default LRS, for the start-up line.
    pub fn default_lrs(&self) -> Option<&Lrs> {
        self.default_lrs.as_ref()
    }

    /// Reads the contexts of the meetings that were running ([`Xapi::resume`] takes them).
    pub async fn load(
        conn: ConnectionManager,
        keys: Keys,
    ) -> redis::RedisResult<HashMap<String, MeetingContext>> {
        context::load(&conn, &keys, crate::time::now_ms()).await
    }

    /// Continues the meetings that were running; call once, before any event.
    pub fn resume(&mut self, meetings: HashMap<String, MeetingContext>) -> usize {
        self.meetings = meetings;
        self.meetings.len()
    }

    /// Meetings with a context in memory.
    pub fn meetings(&self) -> usize {
        self.meetings.len()
    }

    /// Turns one mapped event into its statement, if any (added to the current batch).
    pub fn process(&mut self, event: &Event) {
        if !statements::EVENTS.contains(&event.id) {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(&event.json) else {
            return;
        };
        let attrs = &v["data"]["attributes"];
        let Some(internal) = attrs["meeting"]["internal-meeting-id"].as_str() else {
            return;
        };
        let ts = event.ts as i64;
        if event.id == "meeting-created" {
            self.meeting_created(internal, attrs, ts);
        }
        let Some(meeting) = self.meetings.get_mut(internal) else {
            self.skipped("unknown_meeting");
            return;
        };
        meeting.touched = crate::time::now_ms();
        let (lrs_id, lrs) = match &meeting.target {
            Target::Lrs { id, lrs } => (id.clone(), lrs.clone()),
            other => {
                let reason = if *other == Target::Off {
                    "disabled"
                } else {
                    "no_lrs"
                };
                if event.id == "meeting-ended" {
                    self.meetings.remove(internal);
                    self.batch.writes.push(Write::Forget(internal.to_string()));
                }
                return self.skipped(reason);
            }
        };
        let user_id = attrs["user"]["internal-user-id"].as_str();
        let mut actor: Option<String> = None;
        let mut poll: Option<Poll> = None;
        let mut writes = Vec::new();
        match event.id {
            "meeting-created" | "meeting-ended" => {}
            "user-joined" => {
                let name = attrs["user"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if let Some(user) = user_id {
                    meeting.users.insert(user.to_string(), name.clone());
                    writes.push(Write::User {
                        meeting: internal.to_string(),
                        user: user.to_string(),
                        name: name.clone(),
                    });
                }
                actor = Some(name);
            }
            "chat-group-message-sent" => {
                actor = attrs["chat-message"]["sender"]["name"]
                    .as_str()
                    .map(String::from);
            }
            "poll-started" => {
                actor = user_id.and_then(|u| meeting.users.get(u)).cloned();
                let p = &attrs["poll"];
                let choices: Vec<Value> = p["answers"]
                    .as_array()
                    .map(|answers| {
                        answers
                            .iter()
                            .map(|a| {
                                let id = match &a["id"] {
                                    Value::String(s) => s.clone(),
                                    other => other.to_string(),
                                };
                                json!({"id": id, "description": {"en": a["key"]}})
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let created = Poll {
                    object_id: self.ids.of(p["id"].as_str().unwrap_or("undefined")),
                    question: p["question"].clone(),
                    choices: Value::Array(choices),
                };
                meeting
                    .polls
                    .insert(created.object_id.clone(), created.clone());
                writes.push(Write::Poll {
                    meeting: internal.to_string(),
                    poll: created.clone(),
                });
                poll = Some(created);
            }
            "poll-responded" => {
                actor = user_id.and_then(|u| meeting.users.get(u)).cloned();
                let object_id = self
                    .ids
                    .of(attrs["poll"]["id"].as_str().unwrap_or("undefined"));
                match meeting.polls.get(&object_id) {
                    Some(p) => poll = Some(p.clone()),
                    None => return self.skipped("unknown_poll"),
                }
            }
            // user-left, raise hand, microphone, camera, screen: the user must be known.
            other => {
                let a = &attrs["user"];
                if other == "user-audio-voice-enabled"
                    && (a["listening-only"] == Value::Bool(true)
                        || a["muted"] == Value::Bool(true)
                        || a["sharing-mic"] == Value::Bool(false))
                {
                    return;
                }
                match user_id.and_then(|u| meeting.users.get(u)) {
                    Some(name) => actor = Some(name.clone()),
                    None => return self.skipped("unknown_user"),
                }
            }
        }
        let subject = Subject {
            actor: actor.as_deref(),
            poll: poll.as_ref(),
        };
        let statement = statements::statement(
            self.ids,
            &self.domain,
            event.id,
            attrs,
            ts,
            meeting,
            &subject,
        );
        if event.id == "meeting-ended" {
            self.meetings.remove(internal);
            writes.push(Write::Forget(internal.to_string()));
        }
        self.batch.writes.extend(writes);
        if let Some(s) = statement {
            self.metrics
                .xapi_statements_queued
                .with_label_values(&[&lrs_id])
                .inc();
            if !self.batch.lrs.iter().any(|(id, _)| *id == lrs_id) {
                self.batch.lrs.push((lrs_id.clone(), lrs));
            }
            self.batch.statements.push(Statement {
                queue: format!("{XAPI_QUEUE_PREFIX}{lrs_id}"),
                lane: internal.to_string(),
                event: event.id,
                json: s.to_string(),
            });
        }
    }

    /// Creates (or renews) a meeting's context from its `meeting-created`.
    fn meeting_created(&mut self, internal: &str, attrs: &Value, ts: i64) {
        let m = &attrs["meeting"];
        let metadata = &m["metadata"];
        let external = m["external-meeting-id"].as_str().unwrap_or("undefined");
        let create_time = m["create-time"].as_i64().unwrap_or(ts);
        let target = if metadata["xapi-enabled"].as_str() == Some("false") {
            Target::Off
        } else if let Some(payload) = metadata["secret-lrs-payload"].as_str() {
            let opened = LrsPayload::open(payload, &self.secret)
                .map_err(|e| e.to_string())
                .and_then(|p| {
                    Lrs::from_payload(&p, &self.default_settings).map_err(|e| e.to_string())
                });
            match opened {
                Ok(lrs) => self.use_lrs(lrs),
                Err(e) => {
                    // Once per meeting: only meeting-created carries the payload.
                    tracing::warn!(meeting = internal, external, error = %e, "the meeting's secret-lrs-payload cannot be used: it sends no xAPI statements");
                    self.skipped("bad_payload");
                    Target::Nowhere
                }
            }
        } else {
            match self.default_lrs.clone() {
                Some(lrs) => self.use_lrs(lrs),
                None => Target::Nowhere,
            }
        };
        let previous = self.meetings.remove(internal);
        let meeting = MeetingContext {
            internal_meeting_id: internal.to_string(),
            external_meeting_id: external.to_string(),
            meeting_name: m["name"].as_str().map(String::from),
            planned_duration: m["duration"].as_i64().unwrap_or(0),
            create_time,
            registration: self.ids.registration(external, create_time),
            session_id: self.ids.of(internal),
            object_id: self.ids.of(external),
            actor_name: metadata["xapi-create-end-actor-name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(statements::UNKNOWN_ACTOR)
                .to_string(),
            target,
            users: previous
                .as_ref()
                .map(|p| p.users.clone())
                .unwrap_or_default(),
            polls: previous.map(|p| p.polls).unwrap_or_default(),
            touched: crate::time::now_ms(),
        };
        self.batch.writes.push(Write::Meeting(meeting.clone()));
        self.meetings.insert(internal.to_string(), meeting);
    }

    fn use_lrs(&mut self, lrs: Lrs) -> Target {
        Target::Lrs { id: lrs.id(), lrs }
    }

    fn skipped(&self, reason: &str) {
        self.metrics
            .xapi_statements_skipped
            .with_label_values(&[reason])
            .inc();
    }

    /// What the events processed since the last call produced.
    pub fn take_batch(&mut self) -> Batch {
        std::mem::take(&mut self.batch)
    }

    /// Adds the batch's context changes and LRS descriptors to `pipe` (replies ignored). Each
    /// LRS's descriptor goes with every batch that queues for it (one `HSET`): Redis has it
    /// whenever a statement waits for it, also after an idle LRS's descriptor was deleted or
    /// Redis lost its data.
    pub fn append(&self, batch: &Batch, pipe: &mut redis::Pipeline) {
        for (_, l) in &batch.lrs {
            lrs::store(pipe, &self.keys, l);
        }
        context::append(pipe, &self.keys, &batch.writes, self.ttl_ms);
    }

    /// Redis took the batch: delivery looks for LRSes without a worker (new, or retired while
    /// idle). Coalesced on its side: many batches, one look.
    pub fn written(&self, batch: &Batch) {
        if !batch.statements.is_empty() {
            self.lrs_added.notify_one();
        }
    }

    /// After Redis lost its data: every running meeting's context, written again into `pipe`.
    pub fn rewrite(&self, pipe: &mut redis::Pipeline) -> usize {
        let mut writes = Vec::new();
        for m in self.meetings.values() {
            writes.push(Write::Meeting(m.clone()));
            for (user, name) in &m.users {
                writes.push(Write::User {
                    meeting: m.internal_meeting_id.clone(),
                    user: user.clone(),
                    name: name.clone(),
                });
            }
            for poll in m.polls.values() {
                writes.push(Write::Poll {
                    meeting: m.internal_meeting_id.clone(),
                    poll: poll.clone(),
                });
            }
        }
        context::append(pipe, &self.keys, &writes, self.ttl_ms);
        self.meetings.len()
    }

    /// Forgets, in memory, meetings without an event for `timeout_ms` (their hash expires on its
    /// own in Redis).
    pub fn expire(&mut self, now: u64, timeout_ms: u64) -> usize {
        let before = self.meetings.len();
        self.meetings
            .retain(|_, m| now.saturating_sub(m.touched) < timeout_ms);
        before - self.meetings.len()
    }
}

#[cfg(test)]
mod tests;
