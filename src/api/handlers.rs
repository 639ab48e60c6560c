//! `hooks/create`, `hooks/destroy`, `hooks/list` and `hooks/ping`.

use std::num::NonZeroUsize;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::Response;

use super::checksum;
use super::xml::{self, keys};
use super::{ApiContext, client_ip, is_get, xml_answer};
use crate::config::{InputMode, parse_bool};
use crate::hooks::registry::RegistryError;
use crate::hooks::{
    CreateOutcome, HookRegistry, MAX_MULTI_EVENT, NewHook, RemoveOutcome, parse_event_ids,
};

/// The checksum-protected calls.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Call {
    Create,
    Destroy,
    List,
}

enum Route {
    /// `hooks/ping`: no checksum, plain text.
    Ping,
    Call(Call),
}

/// Routes `/bigbluebutton/api/hooks/<call>` the way Express did: any case, optional trailing
/// slash.
fn route_of(path: &str) -> Option<Route> {
    let lower = path.to_ascii_lowercase();
    let call = lower
        .trim_end_matches('/')
        .strip_prefix("/bigbluebutton/api/hooks/")?;
    match call {
        "create" => Some(Route::Call(Call::Create)),
        "destroy" => Some(Route::Call(Call::Destroy)),
        "list" => Some(Route::Call(Call::List)),
        "ping" => Some(Route::Ping),
        _ => None,
    }
}

/// The answer of one call: the XML body and the `messageKey` for metrics (`None` on success).
struct Answer {
    body: String,
    message_key: Option<&'static str>,
}

impl Answer {
    fn ok(body: String) -> Self {
        Answer {
            body,
            message_key: None,
        }
    }
    fn failed(pair: (&'static str, &'static str)) -> Self {
        Answer {
            body: xml::failed(pair),
            message_key: Some(pair.0),
        }
    }
}

pub(super) async fn dispatch(State(ctx): State<Arc<ApiContext>>, req: Request<Body>) -> Response {
    let path = req.uri().path().to_string();
    let Some(route) = route_of(&path) else {
        return xml_answer(StatusCode::NOT_FOUND, xml::failed(keys::NOT_FOUND));
    };
    if !is_get(req.method()) {
        return xml_answer(StatusCode::METHOD_NOT_ALLOWED, xml::failed(keys::METHOD));
    }
    let call = match route {
        Route::Ping => return Response::new(Body::from("bbb-webhooks API up!")),
        Route::Call(call) => call,
    };
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let ip = client_ip(&req);
    let answer = answer(&ctx, call, &path, &raw_query).await;
    let returncode = if answer.body.starts_with("<response><returncode>SUCCESS") {
        "SUCCESS"
    } else {
        "FAILED"
    };
    tracing::info!(
        call = ?call,
        client = %ip,
        returncode,
        message_key = answer.message_key.unwrap_or(""),
        "hooks API call"
    );
    if answer.message_key != Some(keys::CHECKSUM.0) {
        ctx.metrics
            .api_requests
            .with_label_values(&[
                "GET",
                &path,
                "200",
                returncode,
                answer.message_key.unwrap_or("undefined"),
            ])
            .inc();
    }
    xml_answer(StatusCode::OK, answer.body)
}

async fn answer(ctx: &ApiContext, call: Call, path: &str, raw_query: &str) -> Answer {
    let settings = &ctx.settings;
    if raw_query.len() > settings.api.max_query_bytes {
        return Answer::failed(keys::QUERY_TOO_LONG);
    }
    if let Err(e) = checksum::verify(
        path,
        raw_query,
        settings.secret(),
        &settings.bbb.api_path,
        &settings.api.supported_checksum_algorithms,
    ) {
        ctx.metrics.api_checksum_failures.inc();
        tracing::warn!(reason = %e, "hooks API call refused: checksum");
        return Answer::failed(keys::CHECKSUM);
    }
    let params = match Params::parse(raw_query) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(reason = %e, "hooks API call refused");
            return Answer::failed(e.answer());
        }
    };
    // The registry is there once the hooks are loaded from Redis.
    let registry = ctx.registry.get().map(Arc::as_ref);
    // In a cluster another relay may have changed the hooks a moment ago: the answer is Redis's,
    // not this relay's memory a pub/sub message behind.
    if let Some(registry) = registry
        && settings.input.mode == InputMode::Cluster
        && let Err(e) = registry.reload().await
    {
        tracing::warn!(error = %e, "cannot reload the hooks from Redis; answering from memory");
    }
    match call {
        Call::Create => create(params, registry, settings.hooks.max_callback_url_bytes).await,
        Call::Destroy => destroy(params, registry).await,
        Call::List => list(params, registry),
    }
}

async fn create(params: Params, registry: Option<&HookRegistry>, max_url: usize) -> Answer {
    let Some(url) = params.get("callbackURL").filter(|u| !u.is_empty()) else {
        return Answer::failed(keys::MISSING_CALLBACK_URL);
    };
    let valid = url.len() <= max_url
        && url::Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
    if !valid {
        return Answer::failed(keys::INVALID_CALLBACK_URL);
    }
    let get_raw = match params.get("getRaw").filter(|v| !v.is_empty()) {
        None => false,
        Some(v) => match parse_bool(v) {
            Some(b) => b,
            None => return Answer::failed(keys::INVALID_GET_RAW),
        },
    };
    let multi_event = match params.get("multiEvent").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => match v.parse::<NonZeroUsize>() {
            Ok(n) if n.get() <= MAX_MULTI_EVENT => Some(n),
            _ => return Answer::failed(keys::INVALID_MULTI_EVENT),
        },
    };
    let event_ids = params.get("eventID").and_then(parse_event_ids);
    for id in event_ids.iter().flatten() {
        if !crate::mapping::catalog::is_known(id) {
            tracing::warn!(event = %id, "hooks/create: eventID names an event this version does not produce; kept");
        }
    }
    let Some(registry) = registry else {
        tracing::error!("hooks/create before the hooks were loaded from Redis");
        return Answer::failed(keys::CREATE_ERROR);
    };
    let new = NewHook {
        callback_url: url.to_string(),
        meeting_id: params
            .get("meetingID")
            .filter(|m| !m.is_empty())
            .map(String::from),
        event_ids,
        get_raw,
        multi_event,
    };
    match registry.create(new).await {
        Ok(CreateOutcome::Created(hook)) => {
            tracing::info!(hook = %hook.id, scoped = hook.meeting_id.is_some(), raw = hook.get_raw, "hook created");
            Answer::ok(xml::created(&hook))
        }
        Ok(CreateOutcome::Duplicate(existing)) => Answer {
            body: xml::duplicate(&existing.id),
            message_key: Some("duplicateWarning"),
        },
        Err(RegistryError::Full(max)) => {
            tracing::warn!(max, "hooks/create refused: too many hooks");
            Answer::failed(keys::TOO_MANY_HOOKS)
        }
        Err(e) => {
            tracing::error!(error = %e, "hooks/create failed");
            Answer::failed(keys::CREATE_ERROR)
        }
    }
}

async fn destroy(params: Params, registry: Option<&HookRegistry>) -> Answer {
    let Some(id) = params.get("hookID").filter(|v| !v.is_empty()) else {
        return Answer::failed(keys::MISSING_HOOK_ID);
    };
    let Some(registry) = registry else {
        tracing::error!("hooks/destroy before the hooks were loaded from Redis");
        return Answer::failed(keys::DESTROY_ERROR);
    };
    match registry.remove(id).await {
        Ok(RemoveOutcome::Removed(hook)) => {
            tracing::info!(hook = %hook.id, "hook destroyed");
            Answer::ok(xml::removed())
        }
        Ok(RemoveOutcome::NotFound) => Answer::failed(keys::DESTROY_MISSING),
        Ok(RemoveOutcome::Permanent) => {
            tracing::info!(hook = %id, "hooks/destroy refused: the hook is permanent");
            Answer::failed(keys::DESTROY_MISSING)
        }
        Err(e) => {
            tracing::error!(error = %e, "hooks/destroy failed");
            Answer::failed(keys::DESTROY_ERROR)
        }
    }
}

fn list(params: Params, registry: Option<&HookRegistry>) -> Answer {
    let Some(registry) = registry else {
        tracing::error!("hooks/list before the hooks were loaded from Redis");
        return Answer::failed(keys::LIST_ERROR);
    };
    let meeting = params.get("meetingID").filter(|m| !m.is_empty());
    let set = registry.snapshot();
    let hooks = set.listed(meeting);
    Answer::ok(xml::list(hooks.iter().map(|h| h.as_ref())))
}

/// Why a query's parameters are refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum ParamError {
    #[error("the parameter {0:?} is repeated")]
    Repeated(String),
    /// C0 controls (NUL included) and DEL have no place in a URL, a meeting id or an event id,
    /// and most of them cannot be written in XML 1.0 at all.
    #[error("the parameter {0:?} holds a control character")]
    ControlCharacter(String),
}

impl ParamError {
    fn answer(&self) -> (&'static str, &'static str) {
        match self {
            ParamError::Repeated(_) => keys::REPEATED_PARAM,
            ParamError::ControlCharacter(_) => keys::CONTROL_CHARACTER,
        }
    }
}

/// A C0 control character (U+0000–U+001F) or DEL (U+007F).
fn is_control(c: char) -> bool {
    c.is_ascii_control()
}

/// Decoded query parameters (`+` is a space); each name at most once, and neither names nor
/// values with a control character.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw_query: &str) -> Result<Params, ParamError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(raw_query.as_bytes()) {
            if k == "checksum" {
                continue;
            }
            if k.chars().chain(v.chars()).any(is_control) {
                return Err(ParamError::ControlCharacter(k.escape_default().to_string()));
            }
            if pairs.iter().any(|(name, _)| *name == k) {
                return Err(ParamError::Repeated(k.into_owned()));
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(Params(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::Hook;
    use proptest::prelude::*;

    #[test]
    fn control_characters_are_refused_wherever_they_are() {
        for query in [
            "callbackURL=http%3A%2F%2Fh%2F%00",
            "callbackURL=http://h/&meetingID=a%0Ab",
            "eventID=user-joined%09",
            "hookID=%7F",
            "na%01me=x",
            "meetingID=\u{1}",
        ] {
            assert!(
                matches!(Params::parse(query), Err(ParamError::ControlCharacter(_))),
                "{query}"
            );
        }
        let ok = Params::parse("callbackURL=http%3A%2F%2Fh%2F%C3%A9&meetingID=a+b").unwrap();
        assert_eq!(ok.get("callbackURL"), Some("http://h/é"));
        assert_eq!(ok.get("meetingID"), Some("a b"));
        assert_eq!(
            Params::parse("a=1&a=2").err(),
            Some(ParamError::Repeated("a".into()))
        );
    }

    /// A query string as a client might send it: the API's parameter names, separators,
    /// percent-encoded bytes (controls, invalid UTF-8, markup) and any other character.
    fn query() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            prop::sample::select(vec![
                "callbackURL=",
                "meetingID=",
                "eventID=",
                "hookID=",
                "getRaw=",
                "checksum=",
                "&",
                "=",
                "+",
                "%",
                "]]>",
                "<",
                "&amp;",
            ])
            .prop_map(String::from),
            any::<u8>().prop_map(|b| format!("%{b:02X}")),
            any::<char>().prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..32).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        /// Whatever the query, the parser either refuses it or yields parameters without control
        /// characters, and a hook made of them lists as well-formed XML.
        #[test]
        fn parsed_parameters_always_make_well_formed_xml(raw in query()) {
            let decoded: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes())
                .filter(|(k, _)| k != "checksum")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let has_control = decoded
                .iter()
                .any(|(k, v)| k.chars().chain(v.chars()).any(is_control));
            match Params::parse(&raw) {
                Err(ParamError::ControlCharacter(_)) => prop_assert!(has_control),
                Err(ParamError::Repeated(_)) => {}
                Ok(params) => {
                    prop_assert!(!has_control);
                    let hook = Hook {
                        id: params.get("hookID").unwrap_or("id").to_string(),
                        callback_url: params.get("callbackURL").unwrap_or("").to_string(),
                        meeting_id: params.get("meetingID").map(String::from),
                        event_ids: params.get("eventID").and_then(crate::hooks::parse_event_ids),
                        permanent: false,
                        get_raw: false,
                        created_at: None,
                        multi_event: None,
                    };
                    let check = crate::api::wellformed::check;
                    prop_assert_eq!(check(&xml::list([&hook])), Ok(()));
                    prop_assert_eq!(check(&xml::created(&hook)), Ok(()));
                }
            }
        }
    }
}
