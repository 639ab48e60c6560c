//! The XML answers of the hooks API, byte for byte as bbb-webhooks 3.x sends them (no
//! declaration, no whitespace between elements), with values escaped.
//!
//! Every answer is well-formed XML 1.0 whatever the values hold. The API refuses parameters
//! with control characters, but hooks are also read from Redis, where anything may have written
//! them. Values go out in two ways, as the reference sends them: callback URLs and meeting ids in
//! CDATA sections ([`cdata`]), ids and event lists as escaped text ([`escape`]). In both, a
//! character XML 1.0 cannot carry at all (the C0 controls other than tab, line feed and carriage
//! return, and U+FFFE/U+FFFF) is replaced by U+FFFD, the replacement character: not dropped,
//! so that a listed value never reads as another, valid one (`http://a\0b` does not become
//! `http://ab`), and a reader sees that something was there. Values without such characters,
//! that is every value the API accepts, go out unchanged.
//!
//! This module owns the bytes of the answers; which answer a call gets is [`super::handlers`]'.

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
    pub const CONTROL_CHARACTER: (&str, &str) = (
        "invalidParamCharacter",
        "Parameters must not contain control characters.",
    );
    pub const NOT_FOUND: (&str, &str) = ("notFound", "This API call does not exist.");
    // Ours, for requests the HTTP layer cannot read (hyper answers them before any route).
    pub const BAD_REQUEST: (&str, &str) = ("badRequest", "The request could not be read.");
    pub const URI_TOO_LONG: (&str, &str) = ("uriTooLong", "The request URI is too long.");
    pub const HEADERS_TOO_LARGE: (&str, &str) =
        ("headersTooLarge", "The request headers are too large.");
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

/// What stands in for a character that XML 1.0 cannot carry.
pub const REPLACEMENT: char = '\u{FFFD}';

/// XML 1.0's `Char` production. Rust strings hold no surrogates, so what it leaves out is the C0
/// controls other than tab, line feed and carriage return, and U+FFFE and U+FFFF.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// `<![CDATA[…]]>`, with any `]]>` inside split across two sections so it cannot close early,
/// and characters XML cannot carry replaced.
pub fn cdata(value: &str) -> String {
    let carried: String = value
        .chars()
        .map(|c| if is_xml_char(c) { c } else { REPLACEMENT })
        .collect();
    format!("<![CDATA[{}]]>", carried.replace("]]>", "]]]]><![CDATA[>"))
}

/// Text with the five markup characters escaped and characters XML cannot carry replaced.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            c if !is_xml_char(c) => out.push(REPLACEMENT),
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

    #[test]
    fn characters_xml_cannot_carry_are_replaced_in_both_forms() {
        assert_eq!(
            cdata("a\u{0}b\u{1b}c\td"),
            "<![CDATA[a\u{FFFD}b\u{FFFD}c\td]]>"
        );
        assert_eq!(escape("a\u{0}<\u{FFFF}\n"), "a\u{FFFD}&lt;\u{FFFD}\n");
        assert_eq!(
            escape("\u{7f}\u{85}é"),
            "\u{7f}\u{85}é",
            "allowed in XML 1.0: kept"
        );
    }

    /// Text made of what breaks XML writers: controls, markup, CDATA ends, non-characters,
    /// and any other character.
    pub(crate) fn hostile_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            any::<char>().prop_map(String::from),
            prop::sample::select(vec![
                "\u{0}",
                "\u{8}",
                "\u{b}",
                "\u{1b}",
                "\u{1f}",
                "\u{7f}",
                "\r",
                "\t",
                "\u{FFFE}",
                "\u{FFFF}",
                "<",
                ">",
                "&",
                "&amp;",
                "\"",
                "'",
                "]]>",
                "]]",
                "]",
                "<![CDATA[",
                "</hook>",
                "&#0;",
                "\u{D7FF}",
                "\u{E000}",
                "\u{10FFFF}",
            ])
            .prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }

    fn hostile_hook() -> impl Strategy<Value = Hook> {
        (
            hostile_text(),
            hostile_text(),
            prop::option::of(hostile_text()),
            prop::option::of(prop::collection::vec(hostile_text(), 0..4)),
            any::<bool>(),
            any::<bool>(),
            prop::option::of(1usize..=100),
        )
            .prop_map(
                |(id, callback_url, meeting_id, event_ids, permanent, get_raw, multi)| Hook {
                    id,
                    callback_url,
                    meeting_id,
                    event_ids,
                    permanent,
                    get_raw,
                    created_at: None,
                    multi_event: multi.and_then(std::num::NonZeroUsize::new),
                },
            )
    }

    use proptest::prelude::*;

    proptest! {
        /// Whatever a stored hook holds, every answer is well-formed XML.
        #[test]
        fn every_answer_is_well_formed(hooks in prop::collection::vec(hostile_hook(), 0..4)) {
            let check = crate::api::wellformed::check;
            prop_assert_eq!(check(&list(&hooks)), Ok(()), "{}", list(&hooks));
            for hook in &hooks {
                prop_assert_eq!(check(&created(hook)), Ok(()));
                prop_assert_eq!(check(&duplicate(&hook.id)), Ok(()));
            }
            prop_assert_eq!(check(&removed()), Ok(()));
        }

        /// Values XML can carry go out as they are: the CDATA sections, joined, give the value
        /// back.
        #[test]
        fn carried_values_are_unchanged(value in hostile_text()) {
            prop_assume!(value.chars().all(is_xml_char));
            let written = cdata(&value);
            let inner = &written["<![CDATA[".len()..written.len() - "]]>".len()];
            prop_assert_eq!(inner.replace("]]]]><![CDATA[>", "]]>"), value);
        }
    }
}
