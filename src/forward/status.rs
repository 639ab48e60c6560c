//! What the forwarder's `/ready` says: whether messages are moving, and where to.
//!
//! Ready means: subscribed to the local channels, and every received message has a Redis that
//! takes it: the cluster Redis (straight), or, while that one does not, the local buffer (then
//! `"buffering": true` and the buffer's depth). Not ready, with the reason: not subscribed, a
//! critical task failed, or neither Redis takes writes (messages then wait in memory, up to a
//! bound). This module holds the flags and turns them into the answer; the writer and the
//! supervisor set them.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::health::Readiness;

/// Where received messages go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Route {
    /// Before the first write: the Redis connections are being made.
    #[default]
    Starting,
    /// Straight to the cluster stream (the buffer is empty).
    Cluster,
    /// To the local buffer, which is drained to the cluster stream oldest first.
    Buffer,
}

#[derive(Debug, Clone, Default)]
pub struct State {
    pub route: Route,
    /// The last write to the cluster Redis worked.
    pub cluster_writable: bool,
    /// The last write to the local Redis worked.
    pub local_writable: bool,
    /// Why the cluster Redis does not take writes, while it does not.
    pub cluster_error: Option<String>,
    /// Why the local Redis does not take writes, while it does not.
    pub local_error: Option<String>,
    pub buffer_depth: u64,
    /// Messages held in memory, in neither Redis.
    pub backlog: usize,
    /// The first critical task that ended or panicked.
    pub failed: Option<&'static str>,
}

/// Shared by the writer, the supervisor and the HTTP server.
#[derive(Clone, Default)]
pub struct Status {
    state: Arc<Mutex<State>>,
    /// The subscriber's flag (it sets `subscribed` here, as it does for `serve`).
    pub input: Readiness,
}

impl Status {
    pub fn update(&self, f: impl FnOnce(&mut State)) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s);
    }

    pub fn get(&self) -> State {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records a critical task's failure; the first one is kept.
    pub fn set_failed(&self, task: &'static str) {
        self.update(|s| {
            s.failed.get_or_insert(task);
        });
    }

    /// `/ready`: (ready, body).
    pub fn ready(&self) -> (bool, Value) {
        answer(&self.get(), self.input.get().subscribed)
    }
}

fn answer(s: &State, subscribed: bool) -> (bool, Value) {
    let mut body = json!({
        "subscribed": subscribed,
        "buffering": s.route == Route::Buffer,
        "bufferDepth": s.buffer_depth,
        "backlog": s.backlog,
        "clusterWritable": s.cluster_writable,
        "localWritable": s.local_writable,
    });
    if let Some(e) = &s.cluster_error {
        body["clusterError"] = json!(e);
    }
    if let Some(e) = &s.local_error {
        body["localError"] = json!(e);
    }
    let moving = match s.route {
        Route::Starting => false,
        Route::Cluster => s.cluster_writable,
        Route::Buffer => s.local_writable,
    };
    let reason = if let Some(task) = s.failed {
        body["failed"] = json!(task);
        Some(format!("the {task} task failed"))
    } else if !subscribed {
        Some("not subscribed to the local Redis channels".to_string())
    } else if s.route == Route::Starting {
        Some("starting".to_string())
    } else if !moving {
        Some(
            "neither the cluster Redis nor the local Redis takes writes: messages wait in memory"
                .to_string(),
        )
    } else {
        None
    };
    let ready = reason.is_none();
    if let Some(reason) = reason {
        body["reason"] = json!(reason);
    }
    body["ready"] = json!(ready);
    (ready, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_while_messages_move() {
        let mut s = State {
            route: Route::Cluster,
            cluster_writable: true,
            local_writable: true,
            ..State::default()
        };
        assert!(answer(&s, true).0);
        assert!(!answer(&s, false).0, "not subscribed");
        s.route = Route::Buffer;
        s.cluster_writable = false;
        s.buffer_depth = 7;
        let (ready, body) = answer(&s, true);
        assert!(ready);
        assert_eq!(body["buffering"], true);
        assert_eq!(body["bufferDepth"], 7);
        s.local_writable = false;
        let (ready, body) = answer(&s, true);
        assert!(!ready);
        assert!(
            body["reason"].as_str().unwrap().contains("neither"),
            "{body}"
        );
        s.local_writable = true;
        s.failed = Some("writer");
        assert!(!answer(&s, true).0);
        assert!(!answer(&State::default(), true).0, "starting");
    }
}
