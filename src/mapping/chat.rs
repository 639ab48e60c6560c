//! Chat of BigBlueButton 2.x–3.x: public group chat messages. Private chats produce nothing, as
//! in the reference.

use serde_json::{Map, Value};

use super::build::{EventBuilder, copy, user_ids};
use super::message::{Message, is_user_id, path};
use super::user::ts;
use super::{Cx, Handler, MapError};
use crate::event::Event;

pub const HANDLERS: &[(&str, Handler)] = &[("GroupChatMessageBroadcastEvtMsg", group_message)];

pub const PUBLIC_CHAT: &str = "MAIN-PUBLIC-GROUP-CHAT";

fn group_message(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let chat_id = msg.require_str("chatId")?;
    if chat_id != PUBLIC_CHAT {
        return Ok(Vec::new());
    }
    let body = msg
        .field("msg")
        .ok_or(MapError::MissingField("core.body.msg"))?;
    let meeting = msg.meeting_id();
    let sender_id = msg.user_id().or_else(|| {
        path(body, "/sender/id")
            .and_then(Value::as_str)
            .filter(|s| is_user_id(s))
    });
    let mut sender = sender_id
        .map(|id| user_ids(cx, meeting, id, None))
        .unwrap_or_default();
    if let Some(name) = path(body, "/sender/name").filter(|v| !v.is_null()) {
        sender.insert("name".into(), name.clone());
    }
    copy(&mut sender, "time", body, "timestamp");
    let mut chat = Map::new();
    copy(&mut chat, "id", body, "id");
    copy(&mut chat, "message", body, "message");
    chat.insert("sender".into(), sender.into());
    let event = EventBuilder::for_message("chat-group-message-sent", msg, cx, ts(msg, cx))
        .attr("chat-message", chat)
        .attr("chat-id", chat_id)
        .with_input(cx);
    Ok(vec![event])
}
