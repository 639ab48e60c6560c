//! What bbb-web says of meetings the service missed: a meeting created while no bbb-webhooks ran
//! has no mapping, so its events would carry no external id and reach no hook scoped to it.
//! This module asks bbb-web (`getMeetings`, signed with the shared secret) and hands back what
//! it lists: the external id, the name, the metadata.
//!
//! It owns the request, the reading of the answer and the bounds on both: one call answers every
//! meeting it lists, a meeting is asked about at most once per [`ASK_AGAIN_AFTER`], one call
//! takes at most [`TIMEOUT`], and after a failed call none is made for [`DOWN_FOR`]. Whatever
//! it cannot answer is counted (`bbb_webhooks_meeting_lookups_total`), and the events then go
//! out as before, without the external id. It does not decide which messages need a lookup or
//! what the state makes of the answer: that is the enqueuer's, which alone talks to it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::checksum::{ChecksumAlgorithm, api_checksum};
use crate::logging::RateLimit;
use crate::metrics::Metrics;

/// Longest wait for one answer, connecting included. The enqueuer waits for it before it maps
/// the batch (in order), so it is short; bbb-web on the same machine answers in milliseconds.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// A meeting that bbb-web did not list is not asked about again for this long.
pub const ASK_AGAIN_AFTER: Duration = Duration::from_secs(600);
/// An answer is reused for other unknown meetings for this long instead of asking again.
pub const LISTING_FRESH_FOR: Duration = Duration::from_secs(5);
/// After a failed call, no call for this long: bbb-web down costs one timeout per period, not
/// one per message.
pub const DOWN_FOR: Duration = Duration::from_secs(30);
/// Largest answer read: a busy server's list, attendees included, is far below.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// Most meetings remembered as asked; beyond it the memory starts over (a flood of made-up ids).
const MAX_ASKED: usize = 100_000;

static FAILURE_LOG: RateLimit = RateLimit::new(Duration::from_secs(60));

/// What bbb-web lists of one meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingInfo {
    pub external_id: String,
    pub name: Option<String>,
    pub metadata: Map<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("bbb-web did not answer: {0}")]
    Request(#[from] reqwest::Error),
    #[error("bbb-web answered HTTP {0}")]
    Status(u16),
    #[error("bbb-web's answer is larger than {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
    #[error("bbb-web's answer is not UTF-8")]
    NotText,
    #[error("bbb-web refused: {0}")]
    Refused(String),
}

pub struct MeetingLookup {
    client: reqwest::Client,
    /// `getMeetings` with its checksum: the same every time.
    url: String,
    metrics: Arc<Metrics>,
    /// Meetings asked about, and when.
    asked: HashMap<String, Instant>,
    /// The last answer and when it came; listed meetings not handed out yet.
    listing: Option<(Instant, HashMap<String, MeetingInfo>)>,
    /// When the last call failed, while calls are held back.
    down_since: Option<Instant>,
    /// Looked-up meetings waiting for [`MeetingLookup::take`].
    found: HashMap<String, MeetingInfo>,
}

impl MeetingLookup {
    /// `api_url` is bbb-web's API base (`…/bigbluebutton/api`). The call is signed with SHA-1,
    /// which every bbb-web accepts unless its operator turned it off.
    pub fn new(api_url: &str, secret: &str, metrics: Arc<Metrics>) -> Result<Self, LookupError> {
        let checksum = api_checksum(ChecksumAlgorithm::Sha1, "getMeetings", "", secret);
        crate::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .user_agent(concat!("bbb-webhooks/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(TIMEOUT)
            .timeout(TIMEOUT)
            // bbb-web is the local server: a proxy from the environment must not see the signed
            // URL (the callback client ignores them too).
            .no_proxy()
            .build()?;
        Ok(MeetingLookup {
            client,
            url: format!(
                "{}/getMeetings?checksum={checksum}",
                api_url.trim_end_matches('/')
            ),
            metrics,
            asked: HashMap::new(),
            listing: None,
            down_since: None,
            found: HashMap::new(),
        })
    }

    /// Finds out what bbb-web knows of these meetings (unknown to the state), with at most one
    /// call; afterwards [`MeetingLookup::take`] hands out what it found.
    pub async fn resolve(&mut self, unknown: &[&str]) {
        let now = Instant::now();
        self.asked
            .retain(|_, at| now.duration_since(*at) < ASK_AGAIN_AFTER);
        if self.asked.len() > MAX_ASKED {
            self.asked.clear();
        }
        let wanted: Vec<&str> = unknown
            .iter()
            .copied()
            .filter(|m| !self.asked.contains_key(*m) && !self.found.contains_key(*m))
            .collect();
        if wanted.is_empty() {
            return;
        }
        let fresh = self
            .listing
            .as_ref()
            .is_some_and(|(at, _)| now.duration_since(*at) < LISTING_FRESH_FOR);
        if !fresh {
            if self
                .down_since
                .is_some_and(|since| now.duration_since(since) < DOWN_FOR)
            {
                self.count("skipped", wanted.len());
                return;
            }
            match self.fetch().await {
                Ok(listing) => {
                    self.down_since = None;
                    self.listing = Some((Instant::now(), listing));
                }
                Err(e) => {
                    self.down_since = Some(Instant::now());
                    self.count("failed", wanted.len());
                    if let Some(held_back) = FAILURE_LOG.check() {
                        tracing::warn!(error = %e, meetings = wanted.len(), similar_held_back = held_back, "cannot ask bbb-web about meetings the service missed; their events go without external ids");
                    }
                    return;
                }
            }
        }
        let Some((_, listing)) = self.listing.as_mut() else {
            return;
        };
        let mut found = 0;
        for m in &wanted {
            self.asked.insert(m.to_string(), now);
            if let Some(info) = listing.remove(*m) {
                self.found.insert(m.to_string(), info);
                found += 1;
            }
        }
        self.count("found", found);
        self.count("not_found", wanted.len() - found);
    }

    /// Whether anything found is still to be handed out (a cheap test before asking [`take`]).
    ///
    /// [`take`]: MeetingLookup::take
    pub fn has_found(&self) -> bool {
        !self.found.is_empty()
    }

    /// What bbb-web listed of this meeting, once.
    pub fn take(&mut self, internal: &str) -> Option<MeetingInfo> {
        self.found.remove(internal)
    }

    fn count(&self, result: &str, n: usize) {
        if n == 0 {
            return;
        }
        self.metrics
            .meeting_lookups
            .with_label_values(&[result])
            .inc_by(n as u64);
    }

    async fn fetch(&self) -> Result<HashMap<String, MeetingInfo>, LookupError> {
        let mut response = self.client.get(&self.url).send().await?;
        if !response.status().is_success() {
            return Err(LookupError::Status(response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(LookupError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(body).map_err(|_| LookupError::NotText)?;
        parse_meetings(&text)
    }
}

/// The meetings of a `getMeetings` answer, by internal id.
pub fn parse_meetings(xml: &str) -> Result<HashMap<String, MeetingInfo>, LookupError> {
    if element(xml, "returncode").as_deref() != Some("SUCCESS") {
        let why = element(xml, "messageKey")
            .or_else(|| element(xml, "returncode"))
            .unwrap_or_else(|| "no returncode".into());
        return Err(LookupError::Refused(why));
    }
    let mut out = HashMap::new();
    for block in blocks(xml, "meeting") {
        let (Some(internal), Some(external)) = (
            element(block, "internalMeetingID"),
            element(block, "meetingID"),
        ) else {
            continue;
        };
        let metadata = blocks(block, "metadata")
            .next()
            .map(children)
            .unwrap_or_default();
        out.insert(
            internal,
            MeetingInfo {
                external_id: external,
                name: element(block, "meetingName"),
                metadata,
            },
        );
    }
    Ok(out)
}

/// The inside of every `<tag>…</tag>` (not nested in one another), in order.
fn blocks<'a>(xml: &'a str, tag: &str) -> impl Iterator<Item = &'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let end = rest[start..].find(&close)? + start;
        let inside = &rest[start..end];
        rest = &rest[end + close.len()..];
        Some(inside)
    })
}

/// The decoded text of the first `<tag>…</tag>`; `<tag/>` is the empty text.
fn element(xml: &str, tag: &str) -> Option<String> {
    if let Some(inside) = blocks(xml, tag).next() {
        return Some(decode(inside));
    }
    xml.contains(&format!("<{tag}/>")).then(String::new)
}

/// The child elements of a flat element (`<metadata><a>x</a><b/></metadata>`) as strings.
fn children(xml: &str) -> Map<String, Value> {
    let mut out = Map::new();
    let mut rest = xml;
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        let Some(end) = rest.find('>') else {
            break;
        };
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_suffix('/') {
            out.insert(name.trim().to_string(), Value::String(String::new()));
            continue;
        }
        if tag.starts_with('/') || tag.starts_with('!') || tag.starts_with('?') {
            continue;
        }
        let close = format!("</{tag}>");
        let Some(stop) = rest.find(&close) else {
            break;
        };
        out.insert(tag.to_string(), Value::String(decode(&rest[..stop])));
        rest = &rest[stop + close.len()..];
    }
    out
}

/// XML text: CDATA as is, the five entities and character references decoded.
fn decode(text: &str) -> String {
    let text = text.trim();
    if let Some(inner) = text
        .strip_prefix("<![CDATA[")
        .and_then(|t| t.strip_suffix("]]>"))
    {
        return inner.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';') else {
            break;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            // Not an entity after all: keep the ampersand.
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_get_meetings_answer_becomes_meetings_by_internal_id() {
        let xml = r#"<response><returncode>SUCCESS</returncode><meetings>
<meeting><meetingName>Caf&#233; &amp; co</meetingName><meetingID>ext-1</meetingID>
<internalMeetingID>int-1</internalMeetingID><createTime>1</createTime>
<attendees><attendee><userID>w_1</userID></attendee></attendees>
<metadata><bbb-origin>Moodle</bbb-origin><empty/><note><![CDATA[a <b> c]]></note></metadata>
<isBreakout>false</isBreakout></meeting>
<meeting><meetingName>Second</meetingName><meetingID>ext-2</meetingID><internalMeetingID>int-2</internalMeetingID><metadata/></meeting>
</meetings></response>"#;
        let m = parse_meetings(xml).unwrap();
        assert_eq!(m.len(), 2);
        let one = &m["int-1"];
        assert_eq!(one.external_id, "ext-1");
        assert_eq!(one.name.as_deref(), Some("Café & co"));
        assert_eq!(
            Value::Object(one.metadata.clone()),
            serde_json::json!({"bbb-origin": "Moodle", "empty": "", "note": "a <b> c"})
        );
        assert!(m["int-2"].metadata.is_empty());
    }

    #[test]
    fn no_meetings_and_refusals() {
        let none = "<response><returncode>SUCCESS</returncode><meetings/><messageKey>noMeetings</messageKey></response>";
        assert!(parse_meetings(none).unwrap().is_empty());
        let refused = "<response><returncode>FAILED</returncode><messageKey>checksumError</messageKey></response>";
        let err = parse_meetings(refused).unwrap_err().to_string();
        assert!(err.contains("checksumError"), "{err}");
        assert!(parse_meetings("<html>bad gateway</html>").is_err());
    }
}
