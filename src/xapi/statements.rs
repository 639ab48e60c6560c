//! Pure: one mapped event and its meeting's xAPI context → the statement bbb-webhooks 3.x's
//! xAPI module sends for it (virtual-classroom profile), or none.
//!
//! Verbs, activity types, extensions, the context and the key order of the JSON are those of
//! 3.x, so that an LRS fed by either sees the same records; the ids are UUID v5 in the configured
//! namespace ([`Ids`]). Two of 3.x's statements are fixed on purpose (docs/xapi.md): the chat
//! message's object id hashes the chat message's own id (3.x reads a field that does not exist
//! and hashes `undefined_<time>`, so two messages of one millisecond share an id; a message
//! without an id falls back to `<sender's internal user id>_<time>`, the key 3.x's code names);
//! and the poll `answered` statement names the responder, which
//! our `poll-responded` event carries (3.x's event names whoever the message header names).
//! Timestamps are the event's own time (3.x stamps most statements with its clock when it
//! handles them; both are volatile in the fixture).
//!
//! What this module does not do: decide whether a meeting sends statements at all, or to which
//! LRS, nor keep the context ([`super`] does both).

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::context::{MeetingContext, Poll};

const PROFILE: &str = "https://w3id.org/xapi/virtual-classroom";
const CLASSROOM: &str = "https://w3id.org/xapi/virtual-classroom/activity-types/virtual-classroom";
const SESSION_ID: &str = "https://w3id.org/xapi/cmi5/context/extensions/sessionid";
const PLANNED_DURATION: &str = "http://id.tincanapi.com/extension/planned-duration";
const EMOJI: &str = "https://w3id.org/xapi/virtual-classroom/extensions/emoji";
/// What 3.x names an actor it does not know.
pub const UNKNOWN_ACTOR: &str = "<unknown>";

/// The event ids that can become a statement.
pub const EVENTS: [&str; 16] = [
    "chat-group-message-sent",
    "meeting-created",
    "meeting-ended",
    "meeting-screenshare-started",
    "meeting-screenshare-stopped",
    "poll-started",
    "poll-responded",
    "user-audio-muted",
    "user-audio-unmuted",
    "user-audio-voice-disabled",
    "user-audio-voice-enabled",
    "user-joined",
    "user-left",
    "user-cam-broadcast-end",
    "user-cam-broadcast-start",
    "user-raise-hand-changed",
];

/// The UUID v5 ids of one namespace.
#[derive(Debug, Clone, Copy)]
pub struct Ids(pub Uuid);

impl Ids {
    pub fn of(&self, name: &str) -> String {
        Uuid::new_v5(&self.0, name.as_bytes()).to_string()
    }

    /// The registration: the external meeting id and the creation day, `yyyyMMdd`.
    pub fn registration(&self, external_meeting_id: &str, create_time_ms: i64) -> String {
        let (y, m, d, ..) = civil(create_time_ms);
        self.of(&format!("{external_meeting_id}_{y:04}{m:02}{d:02}"))
    }
}

/// The verb of an event (the raise-hand verb depends on the event's value).
fn verb(event_id: &str) -> Option<&'static str> {
    Some(match event_id {
        "meeting-created" => "http://adlnet.gov/expapi/verbs/initialized",
        "meeting-ended" => "http://adlnet.gov/expapi/verbs/terminated",
        "user-joined" => "http://activitystrea.ms/join",
        "user-left" => "http://activitystrea.ms/leave",
        "user-audio-voice-enabled" | "user-audio-unmuted" | "user-cam-broadcast-start" => {
            "http://activitystrea.ms/start"
        }
        "user-audio-voice-disabled" | "user-audio-muted" | "user-cam-broadcast-end" => {
            "https://w3id.org/xapi/virtual-classroom/verbs/stopped"
        }
        "meeting-screenshare-started" => "http://activitystrea.ms/share",
        "meeting-screenshare-stopped" => "http://activitystrea.ms/unshare",
        "chat-group-message-sent" => "https://w3id.org/xapi/acrossx/verbs/posted",
        "poll-started" => "http://adlnet.gov/expapi/verbs/asked",
        "poll-responded" => "http://adlnet.gov/expapi/verbs/answered",
        "user-raise-hand-changed" => "https://w3id.org/xapi/virtual-classroom/verbs/reacted",
        _ => return None,
    })
}

/// The medium of the events about a user's microphone, camera or screen.
pub fn medium(event_id: &str) -> Option<&'static str> {
    Some(match event_id {
        "user-audio-voice-enabled"
        | "user-audio-voice-disabled"
        | "user-audio-muted"
        | "user-audio-unmuted" => "micro",
        "user-cam-broadcast-start" | "user-cam-broadcast-end" => "camera",
        "meeting-screenshare-started" | "meeting-screenshare-stopped" => "screen",
        _ => return None,
    })
}

/// What a statement needs beyond the event and the meeting.
#[derive(Debug, Default)]
pub struct Subject<'a> {
    /// The actor's name (`<unknown>` when none).
    pub actor: Option<&'a str>,
    pub poll: Option<&'a Poll>,
}

/// The statement for `event_id` with attributes `attrs` (the event's `data.attributes`) and
/// time `ts` (ms), in `meeting`'s context; `None` for an event that has none.
pub fn statement(
    ids: Ids,
    domain: &str,
    event_id: &str,
    attrs: &Value,
    ts: i64,
    meeting: &MeetingContext,
    subject: &Subject,
) -> Option<Value> {
    let mut verb_id = verb(event_id)?;
    let activity = |id: &str| format!("https://{domain}/xapi/activities/{id}");
    let classroom_id = activity(&meeting.object_id);
    let mut name = Map::new();
    if let Some(n) = &meeting.meeting_name {
        name.insert("en".into(), Value::String(n.clone()));
    }
    let mut object = json!({
        "id": classroom_id,
        "definition": {"type": CLASSROOM, "name": name},
    });
    let mut actor = subject.actor.unwrap_or(UNKNOWN_ACTOR).to_string();
    let mut timestamp = iso_time(ts);
    let mut extensions = Map::new();
    extensions.insert(SESSION_ID.into(), Value::String(meeting.session_id.clone()));
    let mut parent = false;
    let mut result: Option<Value> = None;

    match event_id {
        "meeting-created" | "meeting-ended" => {
            actor = meeting.actor_name.clone();
            extensions.insert(
                PLANNED_DURATION.into(),
                Value::String(iso_minutes(meeting.planned_duration)),
            );
            if event_id == "meeting-created" {
                timestamp = iso_time(meeting.create_time);
            } else {
                result = Some(json!({"duration": iso_millis(ts - meeting.create_time)}));
            }
        }
        "user-raise-hand-changed" => {
            if attrs["user"]["raise-hand"] != Value::Bool(true) {
                verb_id = "https://w3id.org/xapi/virtual-classroom/verbs/unreacted";
            }
            result = Some(json!({"extensions": {EMOJI: "U+1F590"}}));
        }
        "chat-group-message-sent" => {
            let sender = &attrs["chat-message"]["sender"];
            let time = sender["time"].as_i64();
            let key = match attrs["chat-message"]["id"].as_str() {
                Some(id) if !id.is_empty() => id.to_owned(),
                _ => format!(
                    "{}_{}",
                    text_of(&sender["internal-user-id"]),
                    time.map_or("undefined".to_string(), |t| t.to_string())
                ),
            };
            object = json!({
                "id": activity(&ids.of(&key)),
                "definition": {"type": "https://w3id.org/xapi/acrossx/activities/message"},
            });
            parent = true;
            if let Some(t) = time {
                timestamp = iso_time(t);
            }
        }
        "poll-started" | "poll-responded" => {
            let poll = subject.poll?;
            object = json!({
                "id": activity(&poll.object_id),
                "definition": {
                    "description": {"en": poll.question},
                    "type": "http://adlnet.gov/expapi/activities/cmi.interaction",
                    "interactionType": "choice",
                    "choices": poll.choices,
                },
            });
            parent = true;
            if event_id == "poll-responded" {
                let answers: Vec<String> = attrs["poll"]["answerIds"]
                    .as_array()
                    .map(|a| a.iter().map(text_of).collect())
                    .unwrap_or_default();
                result = Some(json!({"response": answers.join(",")}));
            }
        }
        other => {
            if let Some(medium) = medium(other) {
                let user = text_of(&attrs["user"]["internal-user-id"]);
                object = json!({
                    "id": activity(&ids.of(&format!("{user}_{medium}"))),
                    "definition": {
                        "type": format!("https://w3id.org/xapi/virtual-classroom/activity-types/{medium}"),
                        "name": {"en": format!("{actor}'s {medium}")},
                    },
                });
                parent = true;
            }
        }
    }

    let mut activities = Map::new();
    activities.insert(
        "category".into(),
        json!([{"id": PROFILE, "definition": {"type": "http://adlnet.gov/expapi/activities/profile"}}]),
    );
    if parent {
        activities.insert(
            "parent".into(),
            json!([{"id": classroom_id, "definition": {"type": CLASSROOM}}]),
        );
    }
    let mut s = json!({
        "actor": {"account": {"name": actor, "homePage": format!("https://{domain}")}},
        "verb": {"id": verb_id},
        "object": object,
        "context": {
            "registration": meeting.registration,
            "contextActivities": activities,
            "extensions": extensions,
        },
        "timestamp": timestamp,
    });
    if let (Some(result), Value::Object(map)) = (result, &mut s) {
        map.insert("result".into(), result);
    }
    Some(s)
}

/// A value as JavaScript's template strings show it (strings bare, `undefined` when missing).
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "undefined".into(),
        other => other.to_string(),
    }
}

/// ISO 8601 UTC with milliseconds, as 3.x writes times: `2023-10-31T16:52:37.700Z`.
pub fn iso_time(ms: i64) -> String {
    let (y, mo, d, h, mi, s, milli) = civil(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// A planned duration in minutes, as 3.x writes it (`PT0S` for none, else `PT<n>M`).
pub fn iso_minutes(minutes: i64) -> String {
    if minutes == 0 {
        "PT0S".into()
    } else {
        format!("PT{minutes}M")
    }
}

/// A duration in milliseconds, as 3.x writes it: seconds with up to three decimals.
pub fn iso_millis(ms: i64) -> String {
    if ms == 0 {
        return "PT0S".into();
    }
    let sign = if ms < 0 { "-" } else { "" };
    let (whole, frac) = (ms.unsigned_abs() / 1000, ms.unsigned_abs() % 1000);
    if frac == 0 {
        format!("PT{sign}{whole}S")
    } else {
        let digits = format!("{frac:03}");
        format!("PT{sign}{whole}.{}S", digits.trim_end_matches('0'))
    }
}

/// (year, month, day, hour, minute, second, millisecond) in UTC of a Unix time in ms.
fn civil(ms: i64) -> (i64, u32, u32, u32, u32, u32, u32) {
    let days = ms.div_euclid(86_400_000);
    let rest = ms.rem_euclid(86_400_000);
    // Days to a civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    let secs = rest / 1000;
    (
        y,
        m,
        d,
        (secs / 3600) as u32,
        (secs / 60 % 60) as u32,
        (secs % 60) as u32,
        (rest % 1000) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_as_3x_writes_them() {
        assert_eq!(iso_time(1698771157700), "2023-10-31T16:52:37.700Z");
        assert_eq!(iso_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_time(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso_minutes(0), "PT0S");
        assert_eq!(iso_minutes(90), "PT90M");
        assert_eq!(iso_millis(97432637974), "PT97432637.974S");
        assert_eq!(iso_millis(1500), "PT1.5S");
        assert_eq!(iso_millis(2000), "PT2S");
        assert_eq!(iso_millis(0), "PT0S");
        assert_eq!(iso_millis(-1500), "PT-1.5S");
    }

    #[test]
    fn ids_are_uuid_v5_in_the_namespace() {
        let ids = Ids("6f1c7a9e-3b52-4d0e-9a8c-2f5e1b7d4c63".parse().unwrap());
        assert_eq!(
            ids.registration("random-9019868", 1698771157700),
            "0481f1d5-d8e6-5cdf-a388-f67b98f2d9b7"
        );
        assert_eq!(
            ids.of("w_xfsb9gxtlfom_micro"),
            "0bea8c5b-2781-5bd0-9728-ba8788e35b2c"
        );
    }
}
