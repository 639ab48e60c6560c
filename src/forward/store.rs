//! The forwarder's Redis commands: appending entries to a stream (the cluster's ingest stream or
//! the local buffer) with their own ids, reading and trimming the buffer, finding the last id.
//!
//! Appending is one script per batch: it stops at the first refusal that is not "id not above
//! the stream's top" (so nothing after a failed entry is written before it, and a retry keeps
//! the order), counts those refusals as duplicates (an entry sent again after a crash), and says
//! how many entries the stream's cap trimmed. It owns no connection and no policy: the
//! [`super::writer`] decides where entries go.

use redis::aio::MultiplexedConnection;
use redis::{RedisResult, Value};

use crate::cluster::{IngestEntry, parse_id};

/// KEYS[1] the stream; ARGV[1] its cap; ARGV[2] `~` (about) or `=` (exactly); then id, s, c, t,
/// m of each entry. Returns {added, duplicates, length after, trimmed, error or nil}.
const APPEND: &str = r#"
local before = redis.call('XLEN', KEYS[1])
local added, dup, err = 0, 0, false
for i = 3, #ARGV, 5 do
  local r = redis.pcall('XADD', KEYS[1], 'MAXLEN', ARGV[2], ARGV[1], ARGV[i],
    's', ARGV[i + 1], 'c', ARGV[i + 2], 't', ARGV[i + 3], 'm', ARGV[i + 4])
  if type(r) == 'table' and r.err then
    if string.find(r.err, 'equal or smaller', 1, true) then
      dup = dup + 1
    else
      err = r.err
      break
    end
  else
    added = added + 1
  end
end
local after = redis.call('XLEN', KEYS[1])
return {added, dup, after, before + added - after, err}
"#;

/// How a stream's cap is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// `MAXLEN ~ n`: cheap, trims whole nodes (the cluster's ingest streams).
    About(usize),
    /// `MAXLEN = n`: exact, so that the count of dropped entries is exact (the local buffer).
    Exactly(usize),
}

/// What one append did. `handled` (added + duplicates) entries from the start of the batch are
/// in the stream; the rest are not, and `error` says why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Appended {
    pub added: u64,
    pub duplicates: u64,
    /// The stream's length after.
    pub length: u64,
    /// Entries the cap removed.
    pub trimmed: u64,
    pub error: Option<String>,
}

impl Appended {
    pub fn handled(&self) -> usize {
        (self.added + self.duplicates) as usize
    }
}

/// Appends `entries` (in order, each with its id) to `key`.
pub async fn append(
    conn: &mut MultiplexedConnection,
    key: &str,
    cap: Cap,
    entries: &[IngestEntry],
) -> RedisResult<Appended> {
    let script = redis::Script::new(APPEND);
    let mut call = script.key(key);
    let (n, how) = match cap {
        Cap::About(n) => (n, "~"),
        Cap::Exactly(n) => (n, "="),
    };
    call.arg(n).arg(how);
    for e in entries {
        call.arg(&e.id);
        for (_, value) in e.fields() {
            call.arg(value);
        }
    }
    let reply: Vec<Value> = call.invoke_async(conn).await?;
    let number = |i: usize| match reply.get(i) {
        Some(Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
        _ => 0,
    };
    let error = match reply.get(4) {
        Some(Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        Some(Value::SimpleString(s)) => Some(s.clone()),
        _ => None,
    };
    Ok(Appended {
        added: number(0),
        duplicates: number(1),
        length: number(2),
        trimmed: number(3),
        error,
    })
}

/// Entries as `XRANGE`/`XREVRANGE` answer them.
pub type StreamReply = Vec<(String, Vec<(String, Value)>)>;

/// The last id a stream ever took (`(0, 0)` when it does not exist): kept by the stream even
/// after its entries were deleted (a drained buffer) or trimmed, so new ids stay above it.
pub async fn last_id(conn: &mut MultiplexedConnection, key: &str) -> RedisResult<(u64, u64)> {
    let info: RedisResult<Value> = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(key)
        .query_async(conn)
        .await;
    let info = match info {
        Ok(info) => info,
        Err(e) if e.to_string().contains("no such key") => return Ok((0, 0)),
        Err(e) => return Err(e),
    };
    let pairs: Vec<(Value, Value)> = match info {
        Value::Map(pairs) => pairs,
        Value::Array(flat) => {
            let mut it = flat.into_iter();
            std::iter::from_fn(|| Some((it.next()?, it.next()?))).collect()
        }
        _ => Vec::new(),
    };
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    Ok(pairs
        .iter()
        .find(|(k, _)| text(k).as_deref() == Some("last-generated-id"))
        .and_then(|(_, v)| text(v))
        .and_then(|id| parse_id(&id))
        .unwrap_or((0, 0)))
}

pub async fn length(conn: &mut MultiplexedConnection, key: &str) -> RedisResult<u64> {
    redis::cmd("XLEN").arg(key).query_async(conn).await
}

/// One entry of the buffer as read: an ingest entry, or an id whose fields are unusable.
pub type Read = Result<IngestEntry, crate::cluster::BadEntry>;

/// The oldest `count` entries of the buffer.
pub async fn oldest(
    conn: &mut MultiplexedConnection,
    key: &str,
    count: usize,
) -> RedisResult<Vec<Read>> {
    let reply: StreamReply = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await?;
    Ok(reply
        .into_iter()
        .map(|(id, fields)| IngestEntry::from_stream(id, &fields))
        .collect())
}

/// Removes `ids` from the buffer; returns its length after.
pub async fn remove(conn: &mut MultiplexedConnection, key: &str, ids: &[&str]) -> RedisResult<u64> {
    if ids.is_empty() {
        return length(conn, key).await;
    }
    let (_, len): (u64, u64) = redis::pipe()
        .cmd("XDEL")
        .arg(key)
        .arg(ids)
        .cmd("XLEN")
        .arg(key)
        .query_async(conn)
        .await?;
    Ok(len)
}
