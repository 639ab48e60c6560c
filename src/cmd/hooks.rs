//! `bbb-webhooks hooks list|create|destroy`: the hooks API of a running service, signed with the
//! configured secret; a table for people, `--json` for scripts.
//!
//! It owns the subcommand's arguments and [`AdminClient`], the client of the hooks API that
//! `demo` and `bench` use too. It does not know the registry: it only talks to the API
//! ([`bbb_webhooks::api`]) over HTTP.
//!
//! It reads the configuration `serve` reads (the same files and variables) for two things: the
//! API's address and the shared secret it signs with. When either does not match the running
//! service, the error says where the value came from; it never shows the signed URL, whose
//! `checksum` would let anyone repeat the call.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde::Serialize;

use bbb_webhooks::api::checksum;
use bbb_webhooks::config::{self, ChecksumAlgorithm, ConfigSources, LoadedConfig};

#[derive(clap::Args)]
pub struct Args {
    /// The service's address; default http://<api.bind>:<api.port> from the configuration.
    #[arg(long, global = true)]
    api_url: Option<String>,
    #[command(subcommand)]
    command: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// List the registered hooks.
    List {
        /// Only global hooks and those of this meeting (external id).
        #[arg(long)]
        meeting_id: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Register a hook.
    Create {
        /// The callback URL (absolute http or https).
        url: String,
        /// Only events of this meeting (external id).
        #[arg(long)]
        meeting_id: Option<String>,
        /// Only these event ids (comma list).
        #[arg(long)]
        events: Option<String>,
        /// Receive the raw BigBlueButton messages.
        #[arg(long)]
        raw: bool,
        /// Up to this many waiting events of one meeting per request (1-100); default: the
        /// service's hooks.multiEvent.
        #[arg(long)]
        multi_event: Option<usize>,
        /// Print {"hookID": …, "duplicate": …} instead of a sentence.
        #[arg(long)]
        json: bool,
    },
    /// Remove a hook.
    Destroy {
        /// The hook's id, as `list` shows it.
        id: String,
    },
}

pub async fn run(args: Args, config_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let loaded = config::load(&ConfigSources::from_process(config_file)).context(
        "the hooks commands sign their calls with the shared secret the service uses, and \
         read it from the same configuration",
    )?;
    let client = AdminClient::new(&loaded, args.api_url);
    match args.command {
        Action::List { meeting_id, json } => {
            let hooks = client.list(meeting_id.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&hooks)?);
            } else {
                print!("{}", table(&hooks));
            }
        }
        Action::Create {
            url,
            meeting_id,
            events,
            raw,
            multi_event,
            json,
        } => {
            let new = NewHook {
                url: &url,
                meeting_id: meeting_id.as_deref(),
                events: events.as_deref(),
                raw,
                multi_event,
            };
            let (id, existed) = client.create(&new).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"hookID": id, "duplicate": existed})
                );
            } else if existed {
                println!("already registered: {id}");
            } else {
                println!("created: {id}");
            }
        }
        Action::Destroy { id } => {
            client.destroy(&id).await?;
            println!("removed: {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A hook as `hooks/list` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct ListedHook {
    #[serde(rename = "hookID")]
    hook_id: String,
    #[serde(rename = "callbackURL")]
    callback_url: String,
    #[serde(rename = "meetingID", skip_serializing_if = "Option::is_none")]
    meeting_id: Option<String>,
    #[serde(rename = "eventID", skip_serializing_if = "Option::is_none")]
    event_ids: Option<String>,
    #[serde(rename = "permanentHook")]
    permanent: bool,
    #[serde(rename = "rawData")]
    raw: bool,
    /// The hook's own `multiEvent`, when it was created with one.
    #[serde(rename = "multiEvent", skip_serializing_if = "Option::is_none")]
    multi_event: Option<usize>,
}

/// What `hooks/create` is asked for.
#[derive(Debug, Default)]
pub struct NewHook<'a> {
    pub url: &'a str,
    pub meeting_id: Option<&'a str>,
    pub events: Option<&'a str>,
    pub raw: bool,
    pub multi_event: Option<usize>,
}

/// Talks to one service.
pub struct AdminClient {
    base: String,
    secret: String,
    http: reqwest::Client,
    /// Where the address and the secret came from, for the errors.
    address_origin: String,
    secret_origin: String,
}

impl AdminClient {
    /// `api_url` overrides the address from the settings (`http://<api.bind>:<api.port>`).
    fn new(loaded: &LoadedConfig, api_url: Option<String>) -> Self {
        let settings = &loaded.settings;
        let bind = match settings.api.bind.as_str() {
            "0.0.0.0" | "::" | "" => "127.0.0.1".to_string(),
            b if b.contains(':') => format!("[{b}]"),
            b => b.to_string(),
        };
        let (base, address_origin) = match api_url {
            Some(url) => (url, "--api-url".to_string()),
            None => (
                format!("http://{bind}:{}", settings.api.port),
                format!(
                    "api.bind from {}, api.port from {}",
                    loaded.source_of("api.bind"),
                    loaded.source_of("api.port")
                ),
            ),
        };
        AdminClient {
            address_origin,
            secret_origin: format!(
                "bbb.sharedSecret from {}",
                loaded.source_of("bbb.sharedSecret")
            ),
            ..AdminClient::at(&base, settings.secret())
        }
    }

    /// The API at `base` (`http://host:port`), signed with `secret`.
    pub fn at(base: &str, secret: &str) -> Self {
        bbb_webhooks::tls::install_crypto_provider();
        AdminClient {
            base: base.trim_end_matches('/').to_string(),
            secret: secret.to_string(),
            http: reqwest::Client::new(),
            address_origin: "given".into(),
            secret_origin: "given".into(),
        }
    }

    async fn call(&self, name: &str, params: &[(&str, &str)]) -> anyhow::Result<String> {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            q.append_pair(k, v);
        }
        let query = q.finish();
        let c = checksum::sign(
            &format!("hooks/{name}"),
            &query,
            &self.secret,
            ChecksumAlgorithm::Sha1,
        );
        let sep = if query.is_empty() { "" } else { "&" };
        let url = format!(
            "{}/bigbluebutton/api/hooks/{name}?{query}{sep}checksum={c}",
            self.base
        );
        // reqwest's errors quote the URL, checksum included: they are shown without it.
        let response = self.http.get(&url).send().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the hooks API at {} ({}): {}. Is the service running there? \
                 --api-url names another address.",
                self.base,
                self.address_origin,
                error_chain(&e.without_url())
            )
        })?;
        let status = response.status();
        let answer = response.text().await.map_err(|e| {
            anyhow::anyhow!(
                "the hooks API at {} sent no readable answer: {}",
                self.base,
                error_chain(&e.without_url())
            )
        })?;
        if tag(&answer, "returncode").as_deref() != Some("SUCCESS") {
            let key = tag(&answer, "messageKey");
            let Some(key) = key else {
                bail!(
                    "{} answered HTTP {status} without a hooks API answer: is it bbb-webhooks? \
                     ({})",
                    self.base,
                    self.address_origin
                );
            };
            let message = tag(&answer, "message").unwrap_or_default();
            if key == "checksumError" {
                bail!(
                    "{key}: {message}. The service at {} uses another shared secret than this \
                     command ({}): run it as the service's user with the service's environment \
                     (e.g. sudo, or SHARED_SECRET=… as in /etc/default/bbb-webhooks).",
                    self.base,
                    self.secret_origin
                );
            }
            bail!("{key}: {message}");
        }
        Ok(answer)
    }

    async fn list(&self, meeting_id: Option<&str>) -> anyhow::Result<Vec<ListedHook>> {
        let params: Vec<(&str, &str)> = meeting_id
            .map(|m| vec![("meetingID", m)])
            .unwrap_or_default();
        let answer = self.call("list", &params).await?;
        Ok(parse_list(&answer))
    }

    /// Returns the hook id and whether it already existed.
    pub async fn create(&self, new: &NewHook<'_>) -> anyhow::Result<(String, bool)> {
        let mut params = vec![("callbackURL", new.url)];
        if let Some(m) = new.meeting_id {
            params.push(("meetingID", m));
        }
        if let Some(e) = new.events {
            params.push(("eventID", e));
        }
        if new.raw {
            params.push(("getRaw", "true"));
        }
        let multi_event = new.multi_event.map(|n| n.to_string());
        if let Some(n) = &multi_event {
            params.push(("multiEvent", n));
        }
        let answer = self.call("create", &params).await?;
        let id = tag(&answer, "hookID").context("the answer has no hookID")?;
        Ok((id, answer.contains("duplicateWarning")))
    }

    async fn destroy(&self, id: &str) -> anyhow::Result<()> {
        self.call("destroy", &[("hookID", id)]).await.map(|_| ())
    }
}

/// An error and its causes, one after the other (reqwest's own text says little alone).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The text of the first `<name>` element, CDATA and entities undone.
fn tag(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(unescape(&xml[start..end]))
}

fn unescape(text: &str) -> String {
    if let Some(inner) = text
        .strip_prefix("<![CDATA[")
        .and_then(|t| t.strip_suffix("]]>"))
    {
        return inner.replace("]]]]><![CDATA[>", "]]>");
    }
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn parse_list(xml: &str) -> Vec<ListedHook> {
    xml.split("<hook>")
        .skip(1)
        .filter_map(|h| {
            let h = h.split("</hook>").next()?;
            Some(ListedHook {
                hook_id: tag(h, "hookID")?,
                callback_url: tag(h, "callbackURL")?,
                meeting_id: tag(h, "meetingID"),
                event_ids: tag(h, "eventID"),
                permanent: tag(h, "permanentHook").as_deref() == Some("true"),
                raw: tag(h, "rawData").as_deref() == Some("true"),
                multi_event: tag(h, "multiEvent").and_then(|n| n.parse().ok()),
            })
        })
        .collect()
}

/// A plain table, one hook per line.
fn table(hooks: &[ListedHook]) -> String {
    let rows: Vec<[String; 7]> = hooks
        .iter()
        .map(|h| {
            [
                h.hook_id.clone(),
                h.callback_url.clone(),
                h.meeting_id.clone().unwrap_or_else(|| "(all)".into()),
                h.event_ids.clone().unwrap_or_else(|| "(all)".into()),
                if h.permanent { "yes" } else { "no" }.into(),
                if h.raw { "yes" } else { "no" }.into(),
                h.multi_event
                    .map_or_else(|| "(global)".into(), |n| n.to_string()),
            ]
        })
        .collect();
    let head = [
        "ID",
        "CALLBACK URL",
        "MEETING",
        "EVENTS",
        "PERMANENT",
        "RAW",
        "MULTI-EVENT",
    ];
    let mut width: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        let text: Vec<String> = cells
            .iter()
            .zip(&width)
            .map(|(c, w)| format!("{c:<w$}", w = *w))
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(&mut out, &head.map(String::from));
    for r in &rows {
        line(&mut out, r);
    }
    if rows.is_empty() {
        out.push_str("(no hooks)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_answers_parse_back() {
        let hooks = [bbb_webhooks::hooks::Hook {
            id: "1".into(),
            callback_url: "http://x/a]]>b&c".into(),
            meeting_id: Some("m<1>".into()),
            event_ids: Some(vec!["user-joined".into(), "user-left".into()]),
            permanent: true,
            get_raw: false,
            created_at: None,
            multi_event: std::num::NonZeroUsize::new(20),
        }];
        let xml = bbb_webhooks::api::xml::list(hooks.iter());
        let parsed = parse_list(&xml);
        assert_eq!(
            parsed,
            vec![ListedHook {
                hook_id: "1".into(),
                callback_url: "http://x/a]]>b&c".into(),
                meeting_id: Some("m<1>".into()),
                event_ids: Some("user-joined,user-left".into()),
                permanent: true,
                raw: false,
                multi_event: Some(20),
            }]
        );
        assert!(table(&parsed).contains("user-joined,user-left"));
        assert!(table(&parsed).contains("MULTI-EVENT"));
    }
}
