//! The xAPI state of running meetings: what later statements need from earlier events (the
//! meeting's ids, name, creation time and LRS; its users' names; its polls), in memory and in
//! Redis, so that a restart in the middle of a meeting changes nothing for its statements.
//!
//! One hash per meeting (`<ownPrefix>:xapi:meeting:<internalMeetingId>`, see
//! [`crate::keys`]): `m` holds the meeting (JSON), `u:<internalUserId>` a user's name,
//! `p:<pollObjectId>` a poll (JSON); a set lists the meetings. Each change is one `HSET` added to
//! the enqueuer's MULTI, the one that also queues the statements it produced, so the state in
//! Redis is never behind the statements queued. The hash expires after `mappings.timeout` without
//! a change (a meeting whose end was never seen does not stay forever) and is deleted when the
//! meeting ends. 3.x keeps all this too but never reloads it (running meetings send nothing
//! after a restart) and never deletes it.

use std::collections::HashMap;

use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::keys::Keys;
use crate::lrs::Lrs;

/// Where a meeting's statements go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// This LRS (its descriptor is kept here too: it goes with each batch of the meeting's
    /// statements, also after a restart and after an idle LRS's descriptor was deleted).
    Lrs { id: String, lrs: Lrs },
    /// `meta_xapi-enabled=false`.
    Off,
    /// No LRS: none configured, or the meeting's payload could not be used.
    Nowhere,
}

/// One meeting's xAPI context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeetingContext {
    pub internal_meeting_id: String,
    pub external_meeting_id: String,
    pub meeting_name: Option<String>,
    /// Minutes (0: none).
    pub planned_duration: i64,
    /// ms.
    pub create_time: i64,
    pub registration: String,
    pub session_id: String,
    /// The classroom activity's id.
    pub object_id: String,
    /// The actor of `initialized` and `terminated` (`meta_xapi-create-end-actor-name`).
    pub actor_name: String,
    pub target: Target,
    /// Users' names by internal user id.
    #[serde(skip)]
    pub users: HashMap<String, String>,
    /// Polls by object id.
    #[serde(skip)]
    pub polls: HashMap<String, Poll>,
    /// Last change (ms): meetings whose end was never seen are forgotten after a while.
    #[serde(skip)]
    pub touched: u64,
}

/// A poll, as `asked` described it: `answered` repeats it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Poll {
    pub object_id: String,
    pub question: Value,
    pub choices: Value,
}

/// A change to write.
#[derive(Debug, Clone)]
pub enum Write {
    Meeting(MeetingContext),
    User {
        meeting: String,
        user: String,
        name: String,
    },
    Poll {
        meeting: String,
        poll: Poll,
    },
    Forget(String),
}

/// Adds `writes` to `pipe` (every reply ignored); keys expire after `ttl_ms` without a change.
pub fn append(pipe: &mut redis::Pipeline, keys: &Keys, writes: &[Write], ttl_ms: u64) {
    for w in writes {
        let (meeting, field, value) = match w {
            Write::Meeting(m) => (
                &m.internal_meeting_id,
                "m".to_string(),
                serde_json::to_string(m).unwrap_or_default(),
            ),
            Write::User {
                meeting,
                user,
                name,
            } => (meeting, format!("u:{user}"), name.clone()),
            Write::Poll { meeting, poll } => (
                meeting,
                format!("p:{}", poll.object_id),
                serde_json::to_string(poll).unwrap_or_default(),
            ),
            Write::Forget(meeting) => {
                pipe.del(keys.xapi_meeting(meeting))
                    .ignore()
                    .srem(keys.xapi_meetings(), meeting)
                    .ignore();
                continue;
            }
        };
        let key = keys.xapi_meeting(meeting);
        pipe.hset(&key, field, value)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(ttl_ms)
            .ignore()
            .sadd(keys.xapi_meetings(), meeting)
            .ignore();
    }
}

/// Every stored meeting context. Entries of the set whose hash is gone (expired) are removed;
/// unreadable parts are skipped with a warning.
pub async fn load(
    conn: &ConnectionManager,
    keys: &Keys,
    now: u64,
) -> redis::RedisResult<HashMap<String, MeetingContext>> {
    use redis::AsyncCommands;
    let mut conn = conn.clone();
    let ids: Vec<String> = conn.smembers(keys.xapi_meetings()).await?;
    let mut out = HashMap::new();
    for id in ids {
        let fields: HashMap<String, String> = conn.hgetall(keys.xapi_meeting(&id)).await?;
        let Some(Ok(mut meeting)) = fields
            .get("m")
            .map(|m| serde_json::from_str::<MeetingContext>(m))
        else {
            if !fields.is_empty() {
                tracing::warn!(meeting = %id, "an unreadable xAPI meeting state in Redis: this meeting sends no more statements");
            }
            conn.srem::<_, _, ()>(keys.xapi_meetings(), &id).await?;
            continue;
        };
        for (field, value) in fields {
            if let Some(user) = field.strip_prefix("u:") {
                meeting.users.insert(user.to_string(), value);
            } else if let Some(poll) = field.strip_prefix("p:") {
                match serde_json::from_str::<Poll>(&value) {
                    Ok(p) => {
                        meeting.polls.insert(poll.to_string(), p);
                    }
                    Err(e) => {
                        tracing::warn!(meeting = %id, error = %e, "an unreadable xAPI poll in Redis: skipped")
                    }
                }
            }
        }
        meeting.touched = now;
        out.insert(id, meeting);
    }
    Ok(out)
}
