//! Chat of BigBlueButton 2.x–3.x: public group chat messages sent, and (3.0+) edited, deleted
//! and reacted to. Private chats produce nothing, as in the reference: an edit or a reaction
//! would otherwise tell what a private message said or that it exists.

use serde_json::{Map, Value};

use super::build::{EventBuilder, copy, person, user_ids};
use super::message::{Message, is_user_id, path};
use super::user::ts;
use super::{Cx, Handler, MapError};
use crate::event::Event;

pub const HANDLERS: &[(&str, Handler)] = &[
    ("GroupChatMessageBroadcastEvtMsg", group_message),
    ("GroupChatMessageEditedEvtMsg", changed),
    ("GroupChatMessageDeletedEvtMsg", changed),
    ("GroupChatMessageReactionSentEvtMsg", changed),
    ("GroupChatMessageReactionDeletedEvtMsg", changed),
];

/// The 3.0 changes to a message: (message, event).
const CHANGES: &[(&str, &str)] = &[
    ("GroupChatMessageEditedEvtMsg", "chat-group-message-edited"),
    (
        "GroupChatMessageDeletedEvtMsg",
        "chat-group-message-deleted",
    ),
    (
        "GroupChatMessageReactionSentEvtMsg",
        "chat-group-message-reaction-added",
    ),
    (
        "GroupChatMessageReactionDeletedEvtMsg",
        "chat-group-message-reaction-removed",
    ),
];

pub const PUBLIC_CHAT: &str = "MAIN-PUBLIC-GROUP-CHAT";

fn group_message(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let chat_id = msg.require_str("chatId")?;
    if chat_id != PUBLIC_CHAT {
        return Ok(Vec::new());
    }
    // Without `msg` the event still says who wrote in the public chat, and when.
    let body = msg.field("msg").unwrap_or(&Value::Null);
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

/// An edit, a deletion or a reaction (BigBlueButton 3.0+): the acting user (the header's),
/// the message (`messageId`, and the new text of an edit), the chat, the reaction's emoji. A
/// message without `chatId` is not known to be public, so it produces nothing.
fn changed(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let &(_, id) = CHANGES
        .iter()
        .find(|(name, _)| *name == msg.name)
        .ok_or_else(|| MapError::Unknown(msg.name.to_string()))?;
    let meeting = msg.require_meeting()?;
    if msg.str_field("chatId") != Some(PUBLIC_CHAT) {
        return Ok(Vec::new());
    }
    let user = person(
        cx,
        Some(meeting),
        msg.user_id().or_else(|| msg.user_field("userId")),
    );
    let mut message = Map::new();
    copy(&mut message, "id", msg.body(), "messageId");
    if id == "chat-group-message-edited" {
        copy(&mut message, "message", msg.body(), "message");
    }
    let mut builder = EventBuilder::for_message(id, msg, cx, ts(msg, cx))
        .attr_opt("user", user)
        .attr("chat-message", message)
        .attr("chat-id", PUBLIC_CHAT);
    if id.starts_with("chat-group-message-reaction") {
        let mut reaction = Map::new();
        copy(&mut reaction, "emoji", msg.body(), "reactionEmoji");
        copy(&mut reaction, "emoji-id", msg.body(), "reactionEmojiId");
        builder = builder.attr("reaction", reaction);
    }
    Ok(vec![builder.with_input(cx)])
}
