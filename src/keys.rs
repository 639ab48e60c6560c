//! Every Redis key this service reads or writes, in one place.
//!
//! | data | key | type | shared with bbb-webhooks 3.x |
//! | --- | --- | --- | --- |
//! | hook ids | `redis.keys.hooks` (`bigbluebutton:webhooks:out:hooks`) | SET | yes |
//! | one hook | `redis.keys.hookPrefix:<id>` | HASH | yes |
//! | meeting mapping ids | `redis.keys.mappings` (`bigbluebutton:webhooks:proc:mappings`) | SET | yes |
//! | one meeting mapping | `redis.keys.mappingPrefix:<uuid>` | HASH | yes (its `meetingMetadata` and `meetingRecent` fields are ours; 3.x ignores them) |
//! | user mapping ids | `redis.keys.userMaps` (`bigbluebutton:webhooks:proc:userMaps`) | SET | yes |
//! | one user mapping | `redis.keys.userMapPrefix:<uuid>` | HASH | yes |
//! | a hook's pending deliveries | `<ownPrefix>:queue:<hookId>` | STREAM | no |
//! | a hook's retry state (failures, failed requests) | `<ownPrefix>:attempt:<hookId>` | HASH | no |
//! | hooks destroyed whose queue may still exist (proof for deleting it) | `<ownPrefix>:destroyed` | SET | no |
//! | in a cluster: how many times the stored hooks changed (relays reread them when it moved) | `<ownPrefix>:hooks:version` | STRING | no |
//! | this Redis's epoch: written at start, missing once Redis lost its data | `<ownPrefix>:epoch` | STRING | no |
//! | an LRS's pending xAPI statements (a queue like a hook's, "hook id" `xapi:<lrsId>`) | `<ownPrefix>:queue:xapi:<lrsId>` | STREAM | no |
//! | an LRS's retry state | `<ownPrefix>:attempt:xapi:<lrsId>` | HASH | no |
//! | every LRS statements were queued for: endpoint and credentials (JSON), by lrsId | `<ownPrefix>:xapi:lrs` | HASH | no |
//! | running meetings' xAPI state (ids, name, LRS, users, polls) | `<ownPrefix>:xapi:meeting:<internalMeetingId>` | HASH | no |
//! | the meetings that have such a state | `<ownPrefix>:xapi:meetings` | SET | no |
//!
//! In a cluster, the mappings are kept per server under the cluster's prefix
//! ([`Keys::with_state_scope`]); the cluster's own keys are listed in [`crate::cluster`].
//!
//! `ownPrefix` defaults to `bigbluebutton:webhooks:rs`; it never collides with the 2.x
//! `bigbluebutton:webhooks:events:<id>` lists. Tests give every key a prefix of their own.

use crate::config::RedisKeySettings;

/// The queue name ("hook id" for [`crate::queue`]) of an LRS is this followed by its lrsId:
/// hook ids are UUIDs or small numbers, so the two never meet.
pub const XAPI_QUEUE_PREFIX: &str = "xapi:";

#[derive(Debug, Clone)]
pub struct Keys {
    names: RedisKeySettings,
}

impl Keys {
    pub fn new(names: &RedisKeySettings) -> Self {
        Keys {
            names: names.clone(),
        }
    }

    /// The same keys, with the meeting and user mappings under `scope` (`<scope>:mappings`,
    /// `<scope>:mapping:<uuid>`, `<scope>:userMaps`, `<scope>:userMap:<uuid>`): in a cluster,
    /// each server's mappings are kept apart ([`crate::cluster::ClusterKeys::state_scope`]).
    pub fn with_state_scope(&self, scope: &str) -> Self {
        let mut names = self.names.clone();
        names.mappings = format!("{scope}:mappings");
        names.mapping_prefix = format!("{scope}:mapping");
        names.user_maps = format!("{scope}:userMaps");
        names.user_map_prefix = format!("{scope}:userMap");
        Keys { names }
    }

    pub fn hooks(&self) -> &str {
        &self.names.hooks
    }

    pub fn hook(&self, id: &str) -> String {
        format!("{}:{id}", self.names.hook_prefix)
    }

    pub fn meetings(&self) -> &str {
        &self.names.mappings
    }

    pub fn meeting(&self, mapping_id: &str) -> String {
        format!("{}:{mapping_id}", self.names.mapping_prefix)
    }

    pub fn users(&self) -> &str {
        &self.names.user_maps
    }

    pub fn user(&self, mapping_id: &str) -> String {
        format!("{}:{mapping_id}", self.names.user_map_prefix)
    }

    pub fn queue(&self, hook_id: &str) -> String {
        format!("{}:queue:{hook_id}", self.names.own_prefix)
    }

    /// `SCAN` pattern matching every queue, to find queues whose hook is gone.
    pub fn queue_pattern(&self) -> String {
        format!("{}:queue:*", self.names.own_prefix)
    }

    /// The hook id inside a queue key (`None` for an LRS's queue: it has no hook).
    pub fn hook_of_queue<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(&self.names.own_prefix)?
            .strip_prefix(":queue:")
            .filter(|id| !id.starts_with(XAPI_QUEUE_PREFIX))
    }

    /// Every LRS's endpoint and credentials, by lrsId.
    pub fn xapi_lrs(&self) -> String {
        format!("{}:xapi:lrs", self.names.own_prefix)
    }

    /// The meetings that have an xAPI state.
    pub fn xapi_meetings(&self) -> String {
        format!("{}:xapi:meetings", self.names.own_prefix)
    }

    /// One meeting's xAPI state.
    pub fn xapi_meeting(&self, internal_meeting_id: &str) -> String {
        format!(
            "{}:xapi:meeting:{internal_meeting_id}",
            self.names.own_prefix
        )
    }

    pub fn attempt(&self, hook_id: &str) -> String {
        format!("{}:attempt:{hook_id}", self.names.own_prefix)
    }

    pub fn destroyed(&self) -> String {
        format!("{}:destroyed", self.names.own_prefix)
    }

    /// In a cluster: counts the changes of the stored hooks, so a relay rereads them only when
    /// another changed them.
    pub fn hooks_version(&self) -> String {
        format!("{}:hooks:version", self.names.own_prefix)
    }

    pub fn epoch(&self) -> String {
        format!("{}:epoch", self.names.own_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_names_by_default() {
        let k = Keys::new(&RedisKeySettings::default());
        assert_eq!(k.hook("x"), "bigbluebutton:webhooks:out:hook:x");
        assert_eq!(k.meeting("m"), "bigbluebutton:webhooks:proc:mapping:m");
        assert_eq!(k.user("u"), "bigbluebutton:webhooks:proc:userMap:u");
        let q = k.queue("h1");
        assert_eq!(q, "bigbluebutton:webhooks:rs:queue:h1");
        assert_eq!(k.hook_of_queue(&q), Some("h1"));
        assert_eq!(k.hook_of_queue(&k.queue("xapi:0a1b")), None);
        assert_eq!(
            k.xapi_meeting("m-1"),
            "bigbluebutton:webhooks:rs:xapi:meeting:m-1"
        );
        let scoped = k.with_state_scope("c:state:bbb1");
        assert_eq!(scoped.meeting("m"), "c:state:bbb1:mapping:m");
        assert_eq!(scoped.users(), "c:state:bbb1:userMaps");
        assert_eq!(scoped.queue("h1"), q);
    }
}
