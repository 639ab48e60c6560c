//! The XML answers of the hooks API, byte for byte as bbb-webhooks 3.x sends them (no
//! declaration, no whitespace between elements), with values escaped.

use crate::hooks::Hook;

/// `(messageKey, message)` pairs of the reference, plus ours for inputs it did not check.
pub mod keys {
    pub const CHECKSUM: (&str, &str) = (
        "checksumError",
        "You did not pass the checksum security check.",
    );
    pub const MISSING_CALLBACK_URL: (&str, &str) = (
        "missingParamCallbackURL",
        "You must specify a callbackURL in the parameters.",
    );
    pub const CREATE_ERROR: (&str, &str) = (
        "createHookError",
        "An error happened while creating your hook. Check the logs.",
    );
    pub const MISSING_HOOK_ID: (&str, &str) = (
        "missingParamHookID",
        "You must specify a hookID in the parameters.",
    );
    pub const DESTROY_MISSING: (&str, &str) =
        ("destroyMissingHook", "The hook informed was not found.");
    pub const DESTROY_ERROR: (&str, &str) = (
        "destroyHookError",
        "An error happened while removing your hook. Check the logs.",
    );
    pub const LIST_ERROR: (&str, &str) = (
        "listHookError",
        "An error happened while listing registered hooks. Check the logs.",
    );
    // Ours.
    pub const INVALID_CALLBACK_URL: (&str, &str) = (
        "invalidCallbackURL",
        "The callbackURL must be an absolute http or https URL.",
    );
    pub const INVALID_GET_RAW: (&str, &str) = (
        "invalidParamGetRaw",
        "The getRaw parameter must be true or false.",
    );
    pub const INVALID_MULTI_EVENT: (&str, &str) = (
        "invalidParamMultiEvent",
        "The multiEvent parameter must be a whole number from 1 to 100.",
    );
    pub const TOO_MANY_HOOKS: (&str, &str) =
        ("tooManyHooks", "The maximum number of hooks is registered.");
    pub const REPEATED_PARAM: (&str, &str) =
        ("repeatedParam", "A parameter was given more than once.");
    pub const QUERY_TOO_LONG: (&str, &str) = ("queryTooLong", "The query string is too long.");
    pub const NOT_FOUND: (&str, &str) = ("notFound", "This API call does not exist.");
    pub const METHOD: (&str, &str) = (
        "unsupportedRequest",
        "This API call only answers GET requests.",
    );
}

pub fn failed((key, message): (&str, &str)) -> String {
    format!(
        "<response><returncode>FAILED</returncode><messageKey>{}</messageKey><message>{}</message></response>",
        escape(key),
        escape(message)
    )
}

pub fn created(hook: &Hook) -> String {
    format!(
        "<response><returncode>SUCCESS</returncode><hookID>{}</hookID><permanentHook>{}</permanentHook><rawData>{}</rawData></response>",
        escape(&hook.id),
        hook.permanent,
        hook.get_raw
    )
}

pub fn duplicate(existing_id: &str) -> String {
    format!(
        "<response><returncode>SUCCESS</returncode><hookID>{}</hookID><messageKey>duplicateWarning</messageKey><message>There is already a hook for this callback URL.</message></response>",
        escape(existing_id)
    )
}

pub fn removed() -> String {
    "<response><returncode>SUCCESS</returncode><removed>true</removed></response>".to_string()
}

pub fn list<'a>(hooks: impl IntoIterator<Item = &'a Hook>) -> String {
    let mut out = String::from("<response><returncode>SUCCESS</returncode><hooks>");
    for hook in hooks {
        out.push_str("<hook><hookID>");
        out.push_str(&escape(&hook.id));
        out.push_str("</hookID><callbackURL>");
        out.push_str(&cdata(&hook.callback_url));
        out.push_str("</callbackURL>");
        if let Some(meeting) = &hook.meeting_id {
            out.push_str("<meetingID>");
            out.push_str(&cdata(meeting));
            out.push_str("</meetingID>");
        }
        if let Some(ids) = &hook.event_ids {
            out.push_str("<eventID>");
            out.push_str(&escape(&ids.join(",")));
            out.push_str("</eventID>");
        }
        out.push_str(&format!(
            "<permanentHook>{}</permanentHook><rawData>{}</rawData>",
            hook.permanent, hook.get_raw
        ));
        // Ours, only for hooks created with it: the others keep the reference's bytes.
        if let Some(n) = hook.multi_event {
            out.push_str(&format!("<multiEvent>{n}</multiEvent>"));
        }
        out.push_str("</hook>");
    }
    out.push_str("</hooks></response>");
    out
}

/// `<![CDATA[…]]>`, with any `]]>` inside split across two sections so it cannot close early.
pub fn cdata(value: &str) -> String {
    format!("<![CDATA[{}]]>", value.replace("]]>", "]]]]><![CDATA[>"))
}

pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_bytes() {
        assert_eq!(
            failed(keys::CHECKSUM),
            "<response><returncode>FAILED</returncode><messageKey>checksumError</messageKey><message>You did not pass the checksum security check.</message></response>"
        );
        assert_eq!(
            list([]),
            "<response><returncode>SUCCESS</returncode><hooks></hooks></response>"
        );
    }

    #[test]
    fn cdata_cannot_be_broken_out_of() {
        assert_eq!(
            cdata("http://x/a]]><injected/>"),
            "<![CDATA[http://x/a]]]]><![CDATA[><injected/>]]>"
        );
        assert_eq!(escape("<x>&\"'"), "&lt;x&gt;&amp;&quot;&apos;");
    }
}
