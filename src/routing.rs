//! Routing: which hooks receive an event, and what they receive.
//!
//! The global filters first (`includeEvents`, `excludeEvents`), then every global hook and every
//! hook scoped to the event's external meeting id, then each hook's own `eventID` filter (raw
//! hooks are filtered by the mapped id too). Raw hooks receive the message as published.

use std::collections::HashSet;
use std::sync::Arc;

use crate::event::Event;
use crate::hooks::{Hook, HookSet};

#[derive(Debug, Default, Clone)]
pub struct Filters {
    include: HashSet<String>,
    exclude: HashSet<String>,
}

impl Filters {
    pub fn new(include: &[String], exclude: &[String]) -> Self {
        Filters {
            include: include.iter().cloned().collect(),
            exclude: exclude.iter().cloned().collect(),
        }
    }

    pub fn allows(&self, event_id: &str) -> bool {
        (self.include.is_empty() || self.include.contains(event_id))
            && !self.exclude.contains(event_id)
    }
}

/// The (hook, payload) pairs for one event.
pub fn route<'h, 'e>(
    event: &'e Event,
    hooks: &'h HookSet,
    filters: &Filters,
) -> impl Iterator<Item = (&'h Arc<Hook>, &'e str)> + use<'h, 'e> {
    let allowed = filters.allows(event.id);
    hooks
        .candidates(event.external_meeting_id.as_deref())
        .filter(move |h| allowed && h.wants(event.id))
        .map(move |h| (h, event.payload(h.get_raw)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_then_exclude() {
        let f = Filters::new(&["a".into(), "b".into()], &["b".into()]);
        assert!(f.allows("a"));
        assert!(!f.allows("b"));
        assert!(!f.allows("c"));
        let all = Filters::new(&[], &["x".into()]);
        assert!(all.allows("a") && !all.allows("x"));
    }
}
