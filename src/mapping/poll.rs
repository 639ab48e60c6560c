//! Polls of BigBlueButton 2.x–3.x: started, answered, stopped, results shown.

use serde_json::{Map, Value};

use super::build::{EventBuilder, copy, copy_all, user_ids};
use super::message::{Message, is_user_id};
use super::user::ts;
use super::{Cx, Handler, MapError};
use crate::event::Event;

pub const HANDLERS: &[(&str, Handler)] = &[
    ("PollStartedEvtMsg", started),
    ("UserRespondedToPollRespMsg", responded),
    ("UserRespondedToTypedPollRespMsg", responded),
    ("PollStoppedEvtMsg", stopped),
    ("PollShowResultEvtMsg", results),
];

/// The results of `poll-ended`: (attribute, field of `core.body.poll`).
const RESULT_FIELDS: &[(&str, &str)] = &[
    ("id", "id"),
    ("question-type", "questionType"),
    ("question", "questionText"),
    ("answers", "answers"),
    ("num-respondents", "numRespondents"),
    ("num-responders", "numResponders"),
];

/// The user of a poll event: ids, external from the state, else `""`.
fn poll_user(msg: &Message, cx: &Cx, user_id: Option<&str>) -> Option<Map<String, Value>> {
    user_id.map(|u| user_ids(cx, msg.meeting_id(), u, Some("")))
}

fn poll_id<'a>(msg: &Message<'a>) -> Option<&'a Value> {
    msg.field("pollId").or_else(|| msg.at("/core/body/poll/id"))
}

fn started(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let mut poll = Map::new();
    if let Some(id) = poll_id(msg) {
        poll.insert("id".into(), id.clone());
    }
    copy(&mut poll, "question", msg.body(), "question");
    if let Some(answers) = msg.at("/core/body/poll/answers") {
        poll.insert("answers".into(), answers.clone());
    }
    let event = EventBuilder::for_message("poll-started", msg, cx, ts(msg, cx))
        .attr_opt("user", poll_user(msg, cx, msg.user_id()))
        .attr("poll", poll)
        .with_input(cx);
    Ok(vec![event])
}

/// `poll-responded` names the responder (`core.body.userId`); the message is addressed to the
/// presenter, whom the reference reported instead.
fn responded(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let responder = msg
        .str_field("userId")
        .filter(|s| is_user_id(s))
        .or_else(|| msg.user_id());
    let mut poll = Map::new();
    if let Some(id) = poll_id(msg) {
        poll.insert("id".into(), id.clone());
    }
    match (msg.field("answerIds"), msg.field("answerId")) {
        (Some(ids), _) => {
            poll.insert("answerIds".into(), ids.clone());
        }
        // BigBlueButton < 2.6 answered one id at a time.
        (None, Some(id)) => {
            poll.insert("answerIds".into(), Value::Array(vec![id.clone()]));
        }
        (None, None) => {}
    }
    copy(&mut poll, "answer", msg.body(), "answer");
    let event = EventBuilder::for_message("poll-responded", msg, cx, ts(msg, cx))
        .attr_opt("user", poll_user(msg, cx, responder))
        .attr("poll", poll)
        .with_input(cx);
    Ok(vec![event])
}

fn stopped(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let mut poll = Map::new();
    if let Some(id) = poll_id(msg) {
        poll.insert("id".into(), id.clone());
    }
    let event = EventBuilder::for_message("poll-stopped", msg, cx, ts(msg, cx))
        .attr_opt("user", poll_user(msg, cx, msg.user_id()))
        .attr("poll", poll)
        .with_input(cx);
    Ok(vec![event])
}

fn results(msg: &Message, cx: &mut Cx) -> Result<Vec<Event>, MapError> {
    let mut poll = Map::new();
    if let Some(result) = msg.field("poll") {
        copy_all(&mut poll, result, RESULT_FIELDS);
    }
    if !poll.contains_key("id")
        && let Some(id) = poll_id(msg)
    {
        poll.insert("id".into(), id.clone());
    }
    let event = EventBuilder::for_message("poll-ended", msg, cx, ts(msg, cx))
        .attr_opt("user", poll_user(msg, cx, msg.user_id()))
        .attr("poll", poll)
        .with_input(cx);
    Ok(vec![event])
}
