//! Mapping: a BigBlueButton message (plus the meeting and user state it needs) becomes zero or
//! more webhook events. Pure: no I/O, no clock (the time of receipt is passed in).
//!
//! Each event family has its own module with a table of the message names it handles:
//! [`meeting`], [`user`], [`guest`] (approvals), [`audio`], [`chat`], [`poll`], [`content`]
//! (pads, transcripts), [`presentation`] (uploads, files), [`tools`] (external video, timer),
//! [`breakout`] (rooms) and [`rap`] (recordings) for BigBlueButton 2.x–3.x and
//! record-and-playback; [`v1`] for the
//! founding document's ten 1.x events and [`v1_candidates`] for its fifteen "future candidates".
//! [`catalog`] lists every event id with the messages that produce it.
//!
//! State changes (who joined, who is presenter) are applied synchronously, so the next message
//! sees them; spoofed events (a `user-left` for each user still present at `meeting-ended`) come
//! before the event that caused them, in join order.

mod audio;
mod breakout;
mod build;
pub mod catalog;
mod chat;
mod content;
mod guest;
mod meeting;
pub mod message;
mod poll;
mod presentation;
mod rap;
mod tools;
mod user;
mod v1;
mod v1_candidates;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use serde_json::Value;

use crate::event::Event;
use crate::state::State;
use message::{Message, Shape};

/// Raw messages larger than this are dropped unread.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Why a message produced no event.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MapError {
    #[error("the message is larger than 1 MiB")]
    TooLarge,
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("{0} is missing")]
    MissingField(&'static str),
    #[error("no event for messages named {0}")]
    Unknown(String),
}

impl MapError {
    /// The metric label: `unknown` messages are ignored, the rest are malformed.
    pub fn is_malformed(&self) -> bool {
        !matches!(self, MapError::Unknown(_))
    }

    pub fn reason(&self) -> &'static str {
        match self {
            MapError::TooLarge => "too_large",
            MapError::Malformed(_) => "invalid",
            MapError::MissingField(_) => "missing_field",
            MapError::Unknown(_) => "unknown_name",
        }
    }
}

/// What a family handler gets: the state to read and change, and the time of receipt.
pub struct Cx<'a> {
    pub state: &'a mut State,
    pub received_at: u64,
    /// The exact input, for raw hooks.
    pub raw: Arc<str>,
}

type Handler = fn(&Message, &mut Cx) -> Result<Vec<Event>, MapError>;
type HandlerIndex = HashMap<&'static str, Handler>;

/// Message name → handler, for the envelope (2.x–3.x) and header/payload (1.x, rap) shapes.
static HANDLERS: LazyLock<(HandlerIndex, HandlerIndex)> = LazyLock::new(|| {
    let envelope = [
        meeting::HANDLERS,
        user::HANDLERS,
        guest::HANDLERS,
        audio::HANDLERS,
        chat::HANDLERS,
        poll::HANDLERS,
        content::HANDLERS,
        presentation::HANDLERS,
        tools::HANDLERS,
        breakout::HANDLERS,
        rap::SYSTEM_HANDLERS,
    ];
    let header_payload = [rap::STEP_HANDLERS, v1::HANDLERS, v1_candidates::HANDLERS];
    let index = |tables: &[&[(&'static str, Handler)]]| {
        tables.iter().flat_map(|t| t.iter().copied()).collect()
    };
    (index(&envelope), index(&header_payload))
});

/// The stateful mapper: one per service (or per `bbb-webhooks map` run).
#[derive(Default)]
pub struct Mapper {
    pub state: State,
    /// `hooks.includeMeetingMetadata`: every event of a meeting whose metadata is known carries
    /// it in `attributes.meeting.metadata`. Off by default: the reference's bytes.
    meeting_metadata: bool,
}

impl Mapper {
    pub fn new(state: State) -> Self {
        Mapper {
            state,
            meeting_metadata: false,
        }
    }

    /// Puts the meeting's metadata on every event (`hooks.includeMeetingMetadata`).
    pub fn with_meeting_metadata(mut self, on: bool) -> Self {
        self.meeting_metadata = on;
        self
    }

    /// Maps one raw message received at `received_at` (ms).
    pub fn map(&mut self, raw: &[u8], received_at: u64) -> Result<Vec<Event>, MapError> {
        self.map_parsed(&Parsed::new(raw)?, received_at)
    }

    /// Maps a message already parsed (the processing stage looks at its meeting first).
    pub fn map_parsed(
        &mut self,
        parsed: &Parsed,
        received_at: u64,
    ) -> Result<Vec<Event>, MapError> {
        let (root, text) = (&parsed.root, parsed.text);
        let msg = Message::classify(root, text)?;
        let mut cx = Cx {
            state: &mut self.state,
            received_at,
            raw: Arc::from(text),
        };
        let handler = match msg.shape {
            Shape::Envelope => HANDLERS.0.get(msg.name),
            Shape::HeaderPayload => HANDLERS.1.get(msg.name),
            Shape::Mapped => return passthrough(&msg, &mut cx),
        };
        let handler = handler.ok_or_else(|| MapError::Unknown(msg.name.to_string()))?;
        // Taken before the handler runs: the end of a meeting forgets it, yet its last events
        // (the spoofed user-left, meeting-ended) are still the meeting's.
        let metadata_before = match (self.meeting_metadata, msg.meeting_id()) {
            (true, Some(m)) => cx.state.meeting_metadata(m).cloned(),
            _ => None,
        };
        let mut events = handler(&msg, &mut cx)?;
        for e in &events {
            if e.id != "meeting-ended"
                && let Some(m) = &e.internal_meeting_id
            {
                cx.state.touch(m, received_at);
            }
        }
        if self.meeting_metadata {
            for e in &mut events {
                let Some(m) = e.internal_meeting_id.as_deref() else {
                    continue;
                };
                let metadata = self.state.meeting_metadata(m).or(metadata_before
                    .as_ref()
                    .filter(|_| msg.meeting_id() == Some(m)));
                if let Some(metadata) = metadata {
                    build::add_meeting_metadata(&mut e.json, metadata);
                }
            }
        }
        Ok(events)
    }
}

/// A raw message read as JSON, not mapped yet. What comes before mapping may ask it which
/// meeting it names ([`Parsed::meeting`]) and learn about that meeting first.
pub struct Parsed<'a> {
    text: &'a str,
    root: Value,
}

/// Messages that name a meeting the state need not know beforehand: those that create one, and
/// bbb-web's recording messages, which name meetings long gone.
const NO_LOOKUP: &[&str] = &[
    "MeetingCreatedEvtMsg",
    "PublishedRecordingSysMsg",
    "UnpublishedRecordingSysMsg",
    "DeletedRecordingSysMsg",
];

impl<'a> Parsed<'a> {
    /// Reads the bytes as JSON: too large, not UTF-8 or not JSON are the errors of [`Mapper::map`].
    pub fn new(raw: &'a [u8]) -> Result<Self, MapError> {
        if raw.len() > MAX_MESSAGE_BYTES {
            return Err(MapError::TooLarge);
        }
        let text = std::str::from_utf8(raw).map_err(|_| MapError::Malformed("not UTF-8".into()))?;
        let root: Value =
            serde_json::from_str(text).map_err(|e| MapError::Malformed(e.to_string()))?;
        Ok(Parsed { text, root })
    }

    /// What the message says of its meeting, read once.
    pub fn meeting(&self) -> MeetingRole<'_> {
        let Ok(msg) = Message::classify(&self.root, self.text) else {
            return MeetingRole::Neither;
        };
        let Some(id) = msg.meeting_id() else {
            return MeetingRole::Neither;
        };
        if matches!(msg.name, "MeetingCreatedEvtMsg" | "meeting_created_message") {
            MeetingRole::Creates(id)
        } else if msg.shape == Shape::Envelope
            && HANDLERS.0.contains_key(msg.name)
            && !NO_LOOKUP.contains(&msg.name)
        {
            MeetingRole::Names(id)
        } else {
            MeetingRole::Neither
        }
    }
}

/// The meeting a message is about (internal id), as far as looking it up goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeetingRole<'a> {
    /// The message creates this meeting.
    Creates(&'a str),
    /// A 2.x–3.x message that produces events about a meeting that should already be known (not
    /// its creation, not a recording's afterlife): the meeting to ask BigBlueButton about when
    /// the state does not know it.
    Names(&'a str),
    /// Neither: no meeting, or one that need not be known beforehand.
    Neither,
}

/// `{"data":{"id":X,…}}` with X one of our ids: delivered unchanged (exact bytes).
fn passthrough(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let id = catalog::canonical(msg.name).ok_or_else(|| MapError::Unknown(msg.name.to_string()))?;
    let meeting = msg.at("/data/attributes/meeting");
    let internal = meeting
        .and_then(|m| m.get("internal-meeting-id"))
        .and_then(Value::as_str);
    let external = meeting
        .and_then(|m| m.get("external-meeting-id"))
        .and_then(Value::as_str)
        .or_else(|| internal.and_then(|i| cx.state.external_meeting_id(i)));
    Ok(vec![Event {
        id,
        ts: msg.own_time(false).unwrap_or(cx.received_at),
        internal_meeting_id: internal.map(String::from),
        external_meeting_id: external.map(String::from),
        json: msg.text.to_string(),
        raw: crate::event::Raw::Input(cx.raw.clone()),
    }])
}

#[cfg(test)]
mod tests;
