//! The cluster's shared vocabulary: the keys on the cluster Redis and the format of an ingest
//! entry, which the forwarders (`bbb-webhooks forward`, one per BigBlueButton server) write and
//! the relays (`serve` with `input.mode: cluster`) read. It owns no connection and no task.
//!
//! | data | key | type |
//! | --- | --- | --- |
//! | the servers that forward (names) | `<clusterPrefix>:servers` | SET |
//! | one server's raw messages, in the order it received them | `<clusterPrefix>:ingest:<server>` | STREAM |
//! | a forwarder's buffer while the cluster Redis is unreachable (on the server's own Redis) | `<clusterPrefix>:buffer:<server>` | STREAM |
//! | how far each server's stream is mapped (entry id), written with the events it produced | `<clusterPrefix>:position` | HASH |
//! | who works on a unit (`ingest:<server>`, `hook:<hookId>`), with a time to live | `<clusterPrefix>:lease:<kind>:<name>` | STRING |
//! | the fencing token of a unit, incremented at each takeover | `<clusterPrefix>:fence:<kind>:<name>` | STRING |
//! | live relays (instance id scored by its last renewal, ms) | `<clusterPrefix>:relays` | ZSET |
//! | one server's meeting and user mappings (the 3.x layout, per server) | `<clusterPrefix>:state:<server>:mappings`, `…:mapping:<uuid>`, `…:userMaps`, `…:userMap:<uuid>` | SET, HASH |
//! | channel: a hook was created or destroyed (payload: its id) | `<clusterPrefix>:hooks` | PUB/SUB |
//! | channel: entries were appended to these hooks' queues (payload: ids, space-separated) | `<clusterPrefix>:appended` | PUB/SUB |
//!
//! `clusterPrefix` defaults to `bbb-webhooks:cluster`.
//!
//! An entry's **id** is chosen by the forwarder when the message arrives (`<ms>-<seq>`, strictly
//! increasing per server, also across forwarder restarts) and kept when the entry moves from the
//! buffer to the cluster: `XADD` with that explicit id refuses an id not above the stream's last
//! one, so a message sent twice (a crash between the cluster's answer and the buffer's trim) is
//! refused the second time instead of being relayed twice.
//!
//! Fields: `s` the server's name, `c` the channel, `t` the receipt time (ms since the epoch, as
//! the forwarder's clock saw it), `m` the message, byte for byte as it was published.

use redis::Value;

/// Default prefix of every cluster key.
pub const DEFAULT_PREFIX: &str = "bbb-webhooks:cluster";

/// The cluster's key names.
#[derive(Debug, Clone)]
pub struct ClusterKeys {
    prefix: String,
}

impl ClusterKeys {
    pub fn new(prefix: &str) -> Self {
        ClusterKeys {
            prefix: prefix.to_owned(),
        }
    }

    pub fn servers(&self) -> String {
        format!("{}:servers", self.prefix)
    }

    pub fn ingest(&self, server: &str) -> String {
        format!("{}:ingest:{server}", self.prefix)
    }

    pub fn buffer(&self, server: &str) -> String {
        format!("{}:buffer:{server}", self.prefix)
    }

    pub fn position(&self) -> String {
        format!("{}:position", self.prefix)
    }

    pub fn lease(&self, kind: &str, name: &str) -> String {
        format!("{}:lease:{kind}:{name}", self.prefix)
    }

    pub fn fence(&self, kind: &str, name: &str) -> String {
        format!("{}:fence:{kind}:{name}", self.prefix)
    }

    pub fn relays(&self) -> String {
        format!("{}:relays", self.prefix)
    }

    /// The prefix of one server's meeting and user mappings.
    pub fn state_scope(&self, server: &str) -> String {
        format!("{}:state:{server}", self.prefix)
    }

    pub fn hooks_channel(&self) -> String {
        format!("{}:hooks", self.prefix)
    }

    pub fn appended_channel(&self) -> String {
        format!("{}:appended", self.prefix)
    }
}

/// One forwarded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestEntry {
    /// The stream id (`<ms>-<seq>`).
    pub id: String,
    pub server: String,
    pub channel: String,
    /// When the forwarder received it (ms).
    pub received_at: u64,
    /// The message, as published.
    pub message: Vec<u8>,
}

/// Why a stream entry is not an ingest entry.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("ingest entry {id}: {what}")]
pub struct BadEntry {
    pub id: String,
    pub what: &'static str,
}

impl IngestEntry {
    /// The fields as `XADD` takes them, after the id.
    pub fn fields(&self) -> [(&'static str, Vec<u8>); 4] {
        [
            ("s", self.server.as_bytes().to_vec()),
            ("c", self.channel.as_bytes().to_vec()),
            ("t", self.received_at.to_string().into_bytes()),
            ("m", self.message.clone()),
        ]
    }

    /// Reads one entry of an `XRANGE`/`XREAD` answer.
    pub fn from_stream(id: String, fields: &[(String, Value)]) -> Result<Self, BadEntry> {
        let bad = |what| BadEntry {
            id: id.clone(),
            what,
        };
        let field = |name: &str| {
            fields.iter().find_map(|(k, v)| match v {
                Value::BulkString(b) if k == name => Some(b.as_slice()),
                _ => None,
            })
        };
        let text = |name, what| {
            field(name)
                .and_then(|b| std::str::from_utf8(b).ok())
                .map(str::to_owned)
                .ok_or_else(|| bad(what))
        };
        let server = text("s", "no server name")?;
        let channel = text("c", "no channel")?;
        let received_at = text("t", "no receipt time")?
            .parse()
            .map_err(|_| bad("receipt time not a number"))?;
        let message = field("m").ok_or_else(|| bad("no message"))?.to_vec();
        Ok(IngestEntry {
            id,
            server,
            channel,
            received_at,
            message,
        })
    }
}

/// A stream id as a comparable pair; `None` if it is not `<ms>-<seq>`.
pub fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Hands out entry ids: strictly increasing, from the clock when it moves forward, from the
/// sequence when it does not (several messages in one millisecond, or a clock set back).
#[derive(Debug, Default)]
pub struct IdClock {
    last: (u64, u64),
}

impl IdClock {
    /// Starts above `floor` (the last id already used, in the cluster or in the buffer).
    pub fn above(floor: (u64, u64)) -> Self {
        IdClock { last: floor }
    }

    /// Keeps the next ids above `floor` too (an id found in use after the start, such as the
    /// cluster stream's last one once it answers again).
    pub fn raise_to(&mut self, floor: (u64, u64)) {
        self.last = self.last.max(floor);
    }

    pub fn next(&mut self, now_ms: u64) -> String {
        self.last = if now_ms > self.last.0 {
            (now_ms, 0)
        } else {
            (self.last.0, self.last.1 + 1)
        };
        format!("{}-{}", self.last.0, self.last.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_even_when_the_clock_does_not() {
        let mut c = IdClock::above((1000, 4));
        assert_eq!(c.next(999), "1000-5");
        assert_eq!(c.next(1000), "1000-6");
        assert_eq!(c.next(1001), "1001-0");
        assert_eq!(c.next(5), "1001-1");
        c.raise_to((1000, 9));
        assert_eq!(c.next(5), "1001-2", "a lower floor changes nothing");
        c.raise_to((2000, 3));
        assert_eq!(c.next(5), "2000-4");
    }

    #[test]
    fn entries_round_trip_through_their_fields() {
        let e = IngestEntry {
            id: "5-1".into(),
            server: "bbb1.example.com".into(),
            channel: "from-akka-apps-redis-channel".into(),
            received_at: 1_700_000_000_123,
            message: b"{\"x\":1}".to_vec(),
        };
        let fields: Vec<(String, Value)> = e
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::BulkString(v)))
            .collect();
        assert_eq!(IngestEntry::from_stream("5-1".into(), &fields), Ok(e));
        let missing = &fields[..3];
        assert_eq!(
            IngestEntry::from_stream("5-1".into(), missing)
                .unwrap_err()
                .what,
            "no message"
        );
        assert_eq!(parse_id("12-3"), Some((12, 3)));
        assert_eq!(parse_id("x"), None);
    }
}
