//! Hooks: the registered callbacks, kept in memory for routing and persisted in Redis.
//!
//! [`Hook`] is the model, [`store`] its Redis layout (the reference's, read in every form a 3.x or
//! 2.x-era installation wrote), [`registry`] the in-memory set that the API changes and the
//! router reads. This module does not deliver anything: [`crate::delivery`] watches the registry.

pub mod registry;
pub mod store;

pub use registry::{CreateOutcome, HookRegistry, HookSet, NewHook, RemoveOutcome};
pub use store::HookStore;

use std::num::NonZeroUsize;

/// One registered callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub id: String,
    pub callback_url: String,
    /// External meeting id the hook is scoped to; `None` for a global hook.
    pub meeting_id: Option<String>,
    /// Lower-case event ids the hook wants; `None` for all.
    pub event_ids: Option<Vec<String>>,
    /// Configured in `hooks.permanentURLs`: cannot be destroyed, never removed for failures.
    pub permanent: bool,
    /// Receives the input message as published instead of the mapped event.
    pub get_raw: bool,
    /// Creation time (ms), for listing in creation order; `None` for hooks another
    /// implementation wrote.
    pub created_at: Option<u64>,
    /// Most events in one request (`multiEvent=N` at creation, 1–100); `None`: the global
    /// `hooks.multiEvent`.
    pub multi_event: Option<NonZeroUsize>,
}

/// The largest `multiEvent` a hook may ask for.
pub const MAX_MULTI_EVENT: usize = 100;

impl Hook {
    /// The hook's own `eventID` filter (the global include/exclude filters are the router's).
    pub fn wants(&self, event_id: &str) -> bool {
        match &self.event_ids {
            None => true,
            Some(ids) => ids.iter().any(|id| id.eq_ignore_ascii_case(event_id)),
        }
    }
}

/// `eventID` as an API parameter or a stored field: a comma list (or, stored by 3.x, a JSON
/// array), trimmed and lower-cased; empty items dropped. No items means no filter.
pub fn parse_event_ids(text: &str) -> Option<Vec<String>> {
    let ids: Vec<String> = if text.trim_start().starts_with('[') {
        serde_json::from_str::<Vec<String>>(text.trim()).unwrap_or_else(|_| {
            // Not valid JSON after all: read it as a comma list with brackets stripped.
            text.trim()
                .trim_matches(['[', ']'])
                .split(',')
                .map(|s| s.trim().trim_matches('"').to_string())
                .collect()
        })
    } else {
        text.split(',').map(String::from).collect()
    };
    let ids: Vec<String> = ids
        .into_iter()
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    (!ids.is_empty()).then_some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_in_every_stored_form() {
        let want = Some(vec![
            "meeting-created".to_string(),
            "user-joined".to_string(),
        ]);
        assert_eq!(
            parse_event_ids(r#"["meeting-created","user-joined"]"#),
            want
        );
        assert_eq!(parse_event_ids("meeting-created,user-joined"), want);
        assert_eq!(parse_event_ids(" Meeting-Created , USER-JOINED ,"), want);
        assert_eq!(parse_event_ids(""), None);
        assert_eq!(parse_event_ids("[]"), None);
    }
}
