//! `bbb-webhooks simulate`: a realistic BigBlueButton meeting published on Redis, as a server of
//! the chosen generation would publish it: creation, joins (one guest), audio, mute, camera,
//! screen sharing, presenter, raised hand, public chat with unicode, a poll with answers, a user
//! leaving, the end, and the recording pipeline. 3.0 adds what only it says: the guest's
//! admission (to the guest and to each moderator), a promotion, away, chat edits, reactions and
//! deletions, a presentation upload and its file, an external video, the timer and a breakout
//! room. Fresh ids every run.
//!
//! It owns the subcommand's arguments, the message scripts (pure: [`script`]) and publishing
//! them at a pace ([`publish`], which `demo` uses too). It knows nothing of the service: what the
//! messages become is [`bbb_webhooks::mapping`]'s, checked by the tests below.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};

use super::ToolRedis;

#[derive(clap::Args)]
pub struct Args {
    /// Publish on this Redis (redis://[:password@]host:port[/db]) instead of the configured one
    /// (the Redis `serve` reads: --config or the bbb-webhooks 3.x files, REDIS_URL, REDIS_HOST,
    /// REDIS_PORT, REDIS_PASSWORD).
    #[arg(long)]
    redis_url: Option<String>,
    #[command(flatten)]
    plan: Plan,
}

pub async fn run(args: Args, config_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let redis = ToolRedis::resolve(args.redis_url, config_file)?;
    let mut conn = redis.connect("simulate").await?;
    eprintln!("publishing on {} ({})", redis.shown, redis.origin);
    let sent = publish(&mut conn, &args.plan, |line| eprintln!("{line}")).await?;
    eprintln!("published {sent} messages");
    Ok(ExitCode::SUCCESS)
}

/// The BigBlueButton generation whose message shapes are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generation {
    /// `header`/`payload` messages, as in the founding document.
    #[value(name = "1.x")]
    V1,
    /// `envelope`/`core` messages of the 2.2 era: raised hands as emoji, one poll answer.
    #[value(name = "2.x")]
    V2,
    /// reactions, native raised hands, user metadata, sharer in screen-share messages, and
    /// guests, roles, away, chat edits and reactions, presentations, external video, timer,
    /// breakout rooms.
    #[value(name = "3.0")]
    V3,
}

/// What to publish: the options of `simulate`, which `demo` fills in itself.
#[derive(clap::Args)]
pub struct Plan {
    /// Meetings to publish, one after the other.
    #[arg(long, default_value_t = 1)]
    pub meetings: usize,
    /// Users per meeting (at least 2: a moderator and a guest).
    #[arg(long, default_value_t = 3)]
    pub users: usize,
    /// Pause between messages, in ms.
    #[arg(long, default_value_t = 200)]
    pub pace_ms: u64,
    /// Message shapes of this BigBlueButton generation.
    #[arg(long, value_enum, default_value = "3.0")]
    pub shape: Generation,
    /// Publish everything on this channel instead of BigBlueButton's own channels.
    #[arg(long)]
    pub channel: Option<String>,
    /// Leave out the recording pipeline.
    #[arg(long)]
    pub no_recording: bool,
}

/// One message and the channel BigBlueButton publishes it on.
#[derive(Debug, Clone)]
pub struct Publication {
    pub channel: String,
    pub message: String,
}

const AKKA: &str = "from-akka-apps-redis-channel";
const PRES: &str = "from-akka-apps-pres-redis-channel";
const WEB: &str = "from-bbb-web-redis-channel";
const RAP: &str = "bigbluebutton:from-rap";
const V1_MEETING: &str = "bigbluebutton:from-bbb-apps:meeting";
/// 1.x chat travelled on `…:chat`, which the default channel list (the reference's) lacks; the
/// simulator sends it on `…:users` so a default installation sees it.
const V1_USERS: &str = "bigbluebutton:from-bbb-apps:users";

struct Person {
    id: String,
    ext: String,
    name: String,
    role: &'static str,
    guest: bool,
}

struct Meeting {
    internal: String,
    external: String,
    name: String,
    created: u64,
    people: Vec<Person>,
}

const NAMES: [&str; 8] = [
    "Ada Lovelace",
    "Zoë Ünïcødé",
    "Jürgen Müller",
    "Ngozi Okafor",
    "李华",
    "Sofía Pérez",
    "Olivier Lefèvre",
    "Kwame Mensah",
];

fn random_hex(len: usize) -> String {
    let mut s = String::new();
    while s.len() < len {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(len);
    s
}

fn new_meeting(n: usize, users: usize, now: u64) -> Meeting {
    let tag = random_hex(6);
    let people = (0..users.max(2))
        .map(|i| Person {
            id: format!("w_{}", random_hex(12)),
            ext: format!("user-{tag}-{}", i + 1),
            name: NAMES[i % NAMES.len()].to_string(),
            role: if i == 0 { "MODERATOR" } else { "VIEWER" },
            guest: i + 1 == users.max(2),
        })
        .collect();
    Meeting {
        internal: format!("{}-{now}", random_hex(40)),
        external: format!("sim-{tag}-{}", n + 1),
        name: format!("Simulated class {} ({tag})", n + 1),
        created: now,
        people,
    }
}

/// Every message of one meeting, in order.
pub fn script(generation: Generation, users: usize, recording: bool, n: usize) -> Vec<Publication> {
    let now = bbb_webhooks::time::now_ms();
    let m = new_meeting(n, users, now);
    match generation {
        Generation::V1 => v1_script(&m, recording),
        Generation::V2 | Generation::V3 => v2_script(&m, generation, recording),
    }
}

/// Messages with timestamps `step` ms apart from the meeting's creation.
struct Script<'a> {
    m: &'a Meeting,
    out: Vec<Publication>,
    clock: u64,
}

impl Script<'_> {
    fn tick(&mut self) -> u64 {
        self.clock += 1500;
        self.clock
    }

    fn push(&mut self, channel: &str, message: Value) {
        self.out.push(Publication {
            channel: channel.to_string(),
            message: message.to_string(),
        });
    }

    fn env(&mut self, name: &str, user: &str, body: Value) {
        self.env_typed(name, user, "BROADCAST_TO_MEETING", body, AKKA);
    }

    fn env_typed(&mut self, name: &str, user: &str, kind: &str, body: Value, channel: &str) {
        let ts = self.tick();
        let m = self.m;
        self.push(
            channel,
            json!({"envelope": {"name": name, "routing": {"msgType": kind, "meetingId": m.internal, "userId": user}, "timestamp": ts},
                   "core": {"header": {"name": name, "meetingId": m.internal, "userId": user}, "body": body}}),
        );
    }

    /// A hand raised or lowered: natively in 3.0, as the `raiseHand` emoji before 2.7.
    fn hand(&mut self, user: &str, raised: bool, native: bool) {
        if native {
            self.env(
                "UserRaiseHandChangedEvtMsg",
                user,
                json!({"userId": user, "raiseHand": raised}),
            );
        } else {
            let emoji = if raised { "raiseHand" } else { "none" };
            self.env(
                "UserEmojiChangedEvtMsg",
                user,
                json!({"userId": user, "emoji": emoji}),
            );
        }
    }

    fn system(&mut self, name: &str, sender: &str, body: Value, channel: &str) {
        let ts = self.tick();
        self.push(
            channel,
            json!({"envelope": {"name": name, "routing": {"sender": sender}, "timestamp": ts},
                   "core": {"header": {"name": name}, "body": body}}),
        );
    }

    fn legacy(&mut self, channel: &str, name: &str, payload: Value, seconds: bool) {
        let ts = self.tick();
        let current = if seconds { ts / 1000 } else { ts };
        self.push(
            channel,
            json!({"header": {"name": name, "version": "0.0.1", "timestamp": ts % 100_000_000, "current_time": current}, "payload": payload}),
        );
    }
}

fn v2_script(m: &Meeting, generation: Generation, recording: bool) -> Vec<Publication> {
    let v3 = generation == Generation::V3;
    let mut s = Script {
        m,
        out: Vec::new(),
        clock: m.created,
    };
    let host = &m.people[0];
    let first_viewer = &m.people[1];
    let props = json!({
        "meetingProp": {"name": m.name, "extId": m.external, "intId": m.internal, "isBreakout": false, "disabledFeatures": []},
        "breakoutProps": {"parentId": "bbb-none", "sequence": 0, "freeJoin": false, "breakoutRooms": [], "record": false, "privateChatEnabled": true},
        "durationProps": {"duration": 0, "createdTime": m.created, "createdDate": "simulated", "meetingExpireIfNoUserJoinedInMinutes": 5, "meetingExpireWhenLastUserLeftInMinutes": 1},
        "password": {"moderatorPass": "mp", "viewerPass": "ap"},
        "recordProp": {"record": recording, "autoStartRecording": false, "allowStartStopRecording": true},
        "welcomeProp": {"welcomeMsg": "Welcome!"},
        "voiceProp": {"telVoice": "72013", "voiceConf": "72013", "dialNumber": "613-555-1234", "muteOnStart": false},
        "usersProp": {"maxUsers": 0, "webcamsOnlyForModerator": false, "guestPolicy": "ASK_MODERATOR"},
        "metadataProp": {"metadata": {"bbb-origin": "bbb-webhooks simulate"}}
    });
    s.system(
        "MeetingCreatedEvtMsg",
        "bbb-apps-akka",
        json!({"props": props}),
        AKKA,
    );
    for p in &m.people {
        if v3 && p.guest {
            admit(&mut s, p);
        }
        let mut body = json!({"intId": p.id, "extId": p.ext, "name": p.name, "role": p.role, "guest": p.guest,
            "authed": !p.guest, "guestStatus": "ALLOW", "presenter": false, "locked": p.role != "MODERATOR", "avatar": "", "clientType": "HTML5"});
        if v3 {
            body["reactionEmoji"] = json!("none");
            body["raiseHand"] = json!(false);
            body["userMetadata"] = json!({"simulated": "true"});
        } else {
            body["emoji"] = json!("none");
        }
        s.env("UserJoinedMeetingEvtMsg", &p.id, body);
    }
    s.env(
        "PresenterAssignedEvtMsg",
        &host.id,
        json!({"presenterId": host.id, "presenterName": host.name, "assignedBy": host.id}),
    );
    if v3 {
        // The header names who changed the role; the body, whose it is.
        s.env(
            "UserRoleChangedEvtMsg",
            &host.id,
            json!({"userId": first_viewer.id, "role": "MODERATOR", "changedBy": host.id}),
        );
        for away in [true, false] {
            s.env(
                "UserAwayChangedEvtMsg",
                &first_viewer.id,
                json!({"userId": first_viewer.id, "away": away}),
            );
        }
    }
    if recording {
        s.env(
            "RecordingStatusChangedEvtMsg",
            &host.id,
            json!({"recording": true, "setBy": host.id}),
        );
    }
    let listen_only = m.people.last().map(|p| p.id.clone()).unwrap_or_default();
    for (i, p) in m.people.iter().enumerate() {
        s.env("UserJoinedVoiceConfToClientEvtMsg", &p.id, json!({"voiceConf": "72013", "intId": p.id, "voiceUserId": (i + 1).to_string(),
            "callerName": p.name, "callerNum": format!("{}_1-bbbID-{}", p.id, p.name), "muted": p.id == listen_only, "talking": false,
            "callingWith": "webrtc", "listenOnly": p.id == listen_only}));
    }
    s.env(
        "UserTalkingVoiceEvtMsg",
        &host.id,
        json!({"voiceConf": "72013", "intId": host.id, "voiceUserId": "1", "talking": true}),
    );
    s.env(
        "UserMutedVoiceEvtMsg",
        &first_viewer.id,
        json!({"voiceConf": "72013", "intId": first_viewer.id, "voiceUserId": "2", "muted": true}),
    );
    s.env(
        "UserMutedVoiceEvtMsg",
        &first_viewer.id,
        json!({"voiceConf": "72013", "intId": first_viewer.id, "voiceUserId": "2", "muted": false}),
    );
    let cam = format!("{}_{}", host.id, random_hex(32));
    s.env(
        "UserBroadcastCamStartedEvtMsg",
        &host.id,
        json!({"userId": host.id, "stream": cam}),
    );
    let presentation = format!("{}-{}", random_hex(40), m.created);
    if v3 {
        upload(&mut s, &presentation);
    }
    s.env_typed(
        "SetCurrentPresentationEvtMsg",
        &host.id,
        "BROADCAST_TO_MEETING",
        json!({"podId": "DEFAULT_PRESENTATION_POD", "presentationId": presentation}),
        PRES,
    );
    let mut share = json!({"voiceConf": "72013", "screenshareConf": "72013", "stream": uuid::Uuid::new_v4().to_string(), "vidWidth": 1280, "vidHeight": 720, "timestamp": m.created.to_string(), "hasAudio": false, "contentType": "screenshare"});
    if v3 {
        share["userId"] = json!(host.id);
    }
    s.env(
        "ScreenshareRtmpBroadcastStartedEvtMsg",
        "not-used",
        share.clone(),
    );
    s.env("ScreenshareRtmpBroadcastStoppedEvtMsg", "not-used", share);
    s.hand(&first_viewer.id, true, v3);
    let mut chat_ids = Vec::new();
    for (i, (who, text)) in [
        (host, "Welcome, everyone! Bienvenue, 欢迎 👋"),
        (first_viewer, "Thanks — ¿podemos empezar? 🙂"),
    ]
    .iter()
    .enumerate()
    {
        let id = format!("{}-{}", m.created + i as u64, random_hex(8));
        chat_ids.push(id.clone());
        let mut msg = json!({"id": id, "timestamp": m.created + i as u64,
            "correlationId": format!("{}-{}", who.id, i), "sender": {"id": who.id, "name": who.name, "role": who.role}, "message": text});
        if v3 {
            msg["chatEmphasizedText"] = json!(false);
            msg["replyToMessageId"] = json!("");
        } else {
            msg["color"] = json!("0");
        }
        s.env(
            "GroupChatMessageBroadcastEvtMsg",
            &who.id,
            json!({"chatId": "MAIN-PUBLIC-GROUP-CHAT", "msg": msg}),
        );
    }
    if v3 {
        s.env(
            "UserReactionEmojiChangedEvtMsg",
            &first_viewer.id,
            json!({"userId": first_viewer.id, "reactionEmoji": "👍"}),
        );
        chat_changes(&mut s, host, first_viewer, &chat_ids[1]);
        tools(&mut s, host);
    }
    s.hand(&first_viewer.id, false, v3);
    let poll_id = format!("{}/1/{}", random_hex(40), m.created);
    let answers = json!([{"id": 0, "key": "A"}, {"id": 1, "key": "B"}, {"id": 2, "key": "C"}]);
    let mut poll =
        json!({"userId": host.id, "pollId": poll_id, "poll": {"id": poll_id, "answers": answers}});
    if v3 {
        poll["pollType"] = json!("A-3");
        poll["secretPoll"] = json!(false);
        poll["question"] = json!("Which chapter next?");
        poll["poll"]["isMultipleResponse"] = json!(false);
    }
    s.env("PollStartedEvtMsg", &host.id, poll);
    for (i, p) in m.people.iter().enumerate().skip(1) {
        let answer = (i % 3) as u64;
        let body = if v3 {
            json!({"pollId": poll_id, "userId": p.id, "answerIds": [answer]})
        } else {
            json!({"pollId": poll_id, "userId": p.id, "answerId": answer})
        };
        s.env_typed("UserRespondedToPollRespMsg", &host.id, "DIRECT", body, AKKA);
    }
    s.env(
        "PollStoppedEvtMsg",
        &host.id,
        json!({"userId": host.id, "pollId": poll_id}),
    );
    let votes: Vec<Value> = (0..3)
        .map(|k| {
            let n = m
                .people
                .iter()
                .enumerate()
                .skip(1)
                .filter(|(i, _)| i % 3 == k)
                .count();
            json!({"id": k, "key": (["A", "B", "C"])[k], "numVotes": n})
        })
        .collect();
    let mut result = json!({"id": poll_id, "answers": votes, "numRespondents": m.people.len() - 1, "numResponders": m.people.len() - 1});
    if v3 {
        result["questionType"] = json!("A-3");
        result["questionText"] = json!("Which chapter next?");
    }
    s.env(
        "PollShowResultEvtMsg",
        &host.id,
        json!({"userId": host.id, "pollId": poll_id, "poll": result}),
    );
    s.env(
        "UserBroadcastCamStoppedEvtMsg",
        &host.id,
        json!({"userId": host.id, "stream": cam}),
    );
    if v3 {
        breakout(&mut s);
    }
    let mut left = json!({"intId": first_viewer.id});
    if v3 {
        left = json!({"intId": first_viewer.id, "eject": false, "ejectedBy": "", "reason": "", "reasonCode": ""});
    }
    s.env("UserLeftMeetingEvtMsg", &first_viewer.id, left);
    if recording {
        s.env(
            "RecordingStatusChangedEvtMsg",
            &host.id,
            json!({"recording": false, "setBy": host.id}),
        );
    }
    s.system(
        "MeetingDestroyedEvtMsg",
        "bbb-apps-akka",
        json!({"meetingId": m.internal}),
        AKKA,
    );
    if recording {
        recording_pipeline(&mut s);
        s.system(
            "PublishedRecordingSysMsg",
            "bbb-web",
            json!({"recordId": m.internal}),
            WEB,
        );
    }
    s.out
}

/// 3.0: a guest admitted (and another, who never joins, denied) by the moderators present. Like
/// BigBlueButton, the decision goes to the guest and to each moderator: one event comes of it.
fn admit(s: &mut Script, guest: &Person) {
    let m = s.m;
    let refused = format!("w_{}", random_hex(12));
    let host = &m.people[0];
    let guests =
        json!([{"guest": guest.id, "status": "ALLOW"}, {"guest": refused, "status": "DENY"}]);
    for moderator in m.people.iter().filter(|p| p.role == "MODERATOR") {
        s.env_typed(
            "GuestsWaitingApprovedEvtMsg",
            &moderator.id,
            "DIRECT",
            json!({"guests": guests, "approvedBy": host.id}),
            AKKA,
        );
    }
    for (id, status) in [(&guest.id, "ALLOW"), (&refused, "DENY")] {
        s.env_typed(
            "GuestApprovedEvtMsg",
            id,
            "DIRECT",
            json!({"status": status, "approvedBy": host.id}),
            AKKA,
        );
    }
}

/// 3.0: the host uploads a presentation; once converted, its original file can be downloaded.
fn upload(s: &mut Script, presentation: &str) {
    let m = s.m;
    let host = &m.people[0];
    let download = format!(
        "https://bbb.example.org/bigbluebutton/presentation/download/{}/{presentation}?presFilename={presentation}.pdf&filename=chapter-2.pdf",
        m.internal
    );
    let pages: Vec<Value> = (1..=3)
        .map(|n| json!({"id": format!("{presentation}/{n}"), "num": n, "current": n == 1}))
        .collect();
    s.env_typed(
        "PresentationConversionCompletedEvtMsg",
        &host.id,
        "BROADCAST_TO_MEETING",
        json!({"podId": "DEFAULT_PRESENTATION_POD", "messageKey": "CONVERSION_COMPLETED", "code": "CONVERSION_COMPLETED",
               "presentation": {"id": presentation, "name": "chapter-2.pdf", "current": false, "pages": pages,
                                "downloadable": true, "removable": true, "uploadCompleted": true, "numPages": 3}}),
        PRES,
    );
    s.env_typed(
        "NewPresFileAvailableEvtMsg",
        &host.id,
        "BROADCAST_TO_MEETING",
        json!({"annotatedFileURI": "", "originalFileURI": download, "convertedFileURI": "", "presId": presentation, "fileStateType": "Original"}),
        PRES,
    );
}

/// 3.0: a chat message edited by its author, reacted to by the host (and the reaction taken
/// back), then deleted.
fn chat_changes(s: &mut Script, host: &Person, author: &Person, message: &str) {
    let chat = "MAIN-PUBLIC-GROUP-CHAT";
    s.env(
        "GroupChatMessageEditedEvtMsg",
        &author.id,
        json!({"chatId": chat, "messageId": message, "message": "Thanks — ¿empezamos ya? 🙂"}),
    );
    for name in [
        "GroupChatMessageReactionSentEvtMsg",
        "GroupChatMessageReactionDeletedEvtMsg",
    ] {
        s.env(
            name,
            &host.id,
            json!({"chatId": chat, "messageId": message, "reactionEmoji": "🎉", "reactionEmojiId": "tada"}),
        );
    }
    s.env(
        "GroupChatMessageDeletedEvtMsg",
        &author.id,
        json!({"chatId": chat, "messageId": message}),
    );
}

/// 3.0: the host shares an external video and stops it, then runs the timer until it ends.
fn tools(s: &mut Script, host: &Person) {
    s.env(
        "StartExternalVideoEvtMsg",
        &host.id,
        json!({"externalVideoUrl": "https://www.youtube.com/watch?v=dQw4w9WgXcQ"}),
    );
    s.env("StopExternalVideoEvtMsg", &host.id, json!({}));
    s.env("StartTimerRespMsg", &host.id, json!({"userId": host.id}));
    s.env(
        "StopTimerRespMsg",
        &host.id,
        json!({"userId": host.id, "accumulated": 30_000}),
    );
    s.env("StartTimerRespMsg", &host.id, json!({"userId": host.id}));
    s.env("TimerEndedEvtMsg", "not-used", json!({}));
}

/// 3.0: one breakout room started and ended, as events of this meeting. Its description
/// carries join URLs with checksums, as BigBlueButton's does: they must not reach any event.
fn breakout(s: &mut Script) {
    let m = s.m;
    let room = format!("{}-{}", random_hex(40), s.clock);
    let external = format!("{}-1", m.external);
    let joins: serde_json::Map<String, Value> = m
        .people
        .iter()
        .map(|p| {
            let url = format!(
                "https://bbb.example.org/bigbluebutton/api/join?meetingID={external}&fullName=x&checksum={}",
                random_hex(40)
            );
            (p.id.clone(), Value::String(url))
        })
        .collect();
    s.env(
        "BreakoutRoomStartedEvtMsg",
        "not-used",
        json!({"parentMeetingId": m.internal, "breakout": {"name": format!("{} (Room 1)", m.name), "externalId": external,
               "breakoutId": room, "sequence": 1, "shortName": "Room 1", "isDefaultName": true, "freeJoin": false,
               "html5JoinUrls": joins, "captureNotes": false, "captureSlides": false}}),
    );
    s.env(
        "BreakoutRoomEndedEvtMsg",
        "not-used",
        json!({"parentId": m.internal, "breakoutId": room}),
    );
}

/// The record-and-playback scripts after the meeting (seconds in `current_time`).
fn recording_pipeline(s: &mut Script) {
    let m = s.m;
    let base = json!({"meeting_id": m.internal, "record_id": m.internal, "external_meeting_id": m.external});
    let with = |extra: Value| {
        let mut p = base.clone();
        if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        p
    };
    s.legacy(RAP, "archive_started", with(json!({})), true);
    s.legacy(
        RAP,
        "archive_ended",
        with(json!({"success": true, "step_time": 1840})),
        true,
    );
    s.legacy(RAP, "sanity_started", with(json!({})), true);
    s.legacy(
        RAP,
        "sanity_ended",
        with(json!({"success": true, "step_time": 610})),
        true,
    );
    s.legacy(
        RAP,
        "process_started",
        with(json!({"workflow": "presentation"})),
        true,
    );
    s.legacy(
        RAP,
        "process_ended",
        with(json!({"success": true, "step_time": 42000, "workflow": "presentation"})),
        true,
    );
    s.legacy(
        RAP,
        "publish_started",
        with(json!({"workflow": "presentation"})),
        true,
    );
    s.legacy(
        RAP,
        "publish_ended",
        with(json!({"success": true, "step_time": 2100, "workflow": "presentation",
            "playback": {"format": "presentation", "link": format!("https://bbb.example.com/playback/presentation/2.3/{}", m.internal), "processing_time": "42000", "duration": "600000", "size": "1048576"},
            "metadata": {"meetingName": m.name, "meetingId": m.external, "isBreakout": "false", "bbb-origin": "bbb-webhooks simulate"},
            "download": {}, "raw_size": "5242880", "start_time": m.created.to_string(), "end_time": (m.created + 600_000).to_string()})),
        true,
    );
}

fn v1_script(m: &Meeting, recording: bool) -> Vec<Publication> {
    let mut s = Script {
        m,
        out: Vec::new(),
        clock: m.created,
    };
    let user = |p: &Person, presenter: bool, joined: bool| {
        json!({"userid": p.id, "extern_userid": p.ext, "name": p.name, "role": p.role, "presenter": presenter, "locked": false,
            "phone_user": false, "webcam_stream": [], "emoji_status": "none", "voiceUser": {"joined": joined},
            "listenOnly": false, "avatarURL": "", "has_stream": false})
    };
    s.legacy(V1_MEETING, "meeting_created_message", json!({"meeting_id": m.internal, "external_meeting_id": m.external,
        "name": m.name, "is_breakout": false, "duration": 0, "create_time": m.created, "create_date": "simulated",
        "moderator_pass": "mp", "viewer_pass": "ap", "recorded": recording, "voice_conf": "72013"}), false);
    for p in &m.people {
        s.legacy(
            V1_USERS,
            "user_joined_message",
            json!({"meeting_id": m.internal, "user": user(p, false, false)}),
            false,
        );
    }
    let host = &m.people[0];
    let viewer = &m.people[1];
    s.legacy(
        V1_USERS,
        "presenter_assigned_message",
        json!({"meeting_id": m.internal, "new_presenter_id": host.id,
        "new_presenter_name": host.name, "assigned_by": host.id, "recorded": recording}),
        false,
    );
    s.legacy(V1_USERS, "user_joined_voice_message", json!({"meeting_id": m.internal, "voice_conf": "72013", "recorded": recording, "user": user(host, true, true)}), false);
    s.legacy(
        V1_USERS,
        "user_listening_only",
        json!({"meeting_id": m.internal, "userid": viewer.id, "listen_only": true}),
        false,
    );
    s.legacy(V1_USERS, "user_shared_webcam_message", json!({"meeting_id": m.internal, "userid": host.id, "recorded": recording, "stream": format!("640x480{}-{}", host.id, m.created)}), false);
    s.legacy(V1_USERS, "send_public_chat_message", json!({"meeting_id": m.internal, "message": {"chatType": "PUBLIC_CHAT",
        "fromUserID": host.id, "fromUsername": host.name, "fromTimezoneOffset": "0", "fromTime": format!("{}", m.created as f64),
        "fromColor": "0", "toUserID": "public_chat_userid", "toUsername": "public_chat_username", "message": "Hello from 1.x — ¡hola! 👋"}}), false);
    s.legacy(V1_USERS, "send_private_chat_message", json!({"meeting_id": m.internal, "message": {"chatType": "PRIVATE_CHAT",
        "fromUserID": viewer.id, "fromUsername": viewer.name, "fromTimezoneOffset": "60", "fromTime": format!("{}", m.created as f64),
        "fromColor": "0", "toUserID": host.id, "toUsername": host.name, "message": "A private question"}}), false);
    let poll_id = format!("{}/1/{}", random_hex(40), m.created);
    s.legacy(
        V1_USERS,
        "poll_started_message",
        json!({"meeting_id": m.internal, "requester_id": host.id,
        "poll": {"id": poll_id, "answers": [{"id": 0, "key": "Yes"}, {"id": 1, "key": "No"}]}}),
        false,
    );
    s.legacy(
        V1_USERS,
        "poll_stopped_message",
        json!({"meeting_id": m.internal, "requester_id": host.id, "poll_id": poll_id}),
        false,
    );
    s.legacy(V1_USERS, "user_voice_talking_message", json!({"meeting_id": m.internal, "voice_conf": "72013", "recorded": recording,
        "user": {"userid": host.id, "extern_userid": host.ext, "voiceUser": {"talking": true, "joined": true, "muted": false}}}), false);
    s.legacy(V1_USERS, "user_left_voice_message", json!({"meeting_id": m.internal, "voice_conf": "72013", "recorded": recording, "user": user(host, true, false)}), false);
    s.legacy(
        V1_USERS,
        "user_left_message",
        json!({"meeting_id": m.internal, "user": user(viewer, false, false)}),
        false,
    );
    s.legacy(
        V1_MEETING,
        "meeting_destroyed_event",
        json!({"meeting_id": m.internal}),
        false,
    );
    if recording {
        recording_pipeline(&mut s);
    }
    s.out
}

/// Publishes `plan.meetings` meetings, one after the other; returns how many messages went out.
/// `progress` hears about each meeting.
pub async fn publish(
    conn: &mut redis::aio::MultiplexedConnection,
    plan: &Plan,
    mut progress: impl FnMut(&str),
) -> redis::RedisResult<usize> {
    let pace = Duration::from_millis(plan.pace_ms);
    let mut sent = 0;
    for n in 0..plan.meetings.max(1) {
        let messages = script(plan.shape, plan.users, !plan.no_recording, n);
        progress(&format!(
            "meeting {} of {}: {} messages",
            n + 1,
            plan.meetings.max(1),
            messages.len()
        ));
        for p in messages {
            let channel = plan.channel.as_deref().unwrap_or(&p.channel);
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(&p.message)
                .query_async::<i64>(conn)
                .await?;
            sent += 1;
            if !pace.is_zero() {
                tokio::time::sleep(pace).await;
            }
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bbb_webhooks::mapping::Mapper;
    use std::collections::BTreeSet;

    /// What a real server would publish: every message maps (none unknown or malformed), and
    /// every family of events shows up, whatever the number of users. A message may produce
    /// nothing only when it repeats a guest decision (BigBlueButton tells each moderator).
    #[test]
    fn every_simulated_message_maps_to_its_event() {
        for (generation, users) in [Generation::V1, Generation::V2, Generation::V3]
            .into_iter()
            .flat_map(|g| [(g, 4), (g, 5)])
        {
            let mut mapper = Mapper::default();
            let mut ids = BTreeSet::new();
            let mut guests = 0;
            let script = script(generation, users, true, 0);
            assert!(
                script.len() > 20,
                "{generation:?}: {} messages",
                script.len()
            );
            for p in script {
                let events = mapper
                    .map(p.message.as_bytes(), 1)
                    .unwrap_or_else(|e| panic!("{generation:?}: {e}: {}", p.message));
                let copy = p.message.contains("\"name\":\"Guest");
                assert!(
                    !events.is_empty() || copy,
                    "{generation:?}: no event for {}",
                    p.message
                );
                for e in &events {
                    assert!(!e.payload(true).contains("checksum="), "{}", e.json);
                }
                ids.extend(events.iter().map(|e| e.id));
                guests += events.iter().filter(|e| e.id.starts_with("guest-")).count();
            }
            for wanted in [
                "meeting-created",
                "user-joined",
                "user-audio-voice-enabled",
                "poll-started",
                "user-left",
                "meeting-ended",
                "rap-publish-ended",
            ] {
                assert!(
                    ids.contains(wanted),
                    "{generation:?} lacks {wanted}: {ids:?}"
                );
            }
            if generation != Generation::V1 {
                for wanted in [
                    "chat-group-message-sent",
                    "user-raise-hand-changed",
                    "meeting-screenshare-started",
                    "poll-responded",
                    "poll-ended",
                    "user-audio-muted",
                    "rap-published",
                ] {
                    assert!(ids.contains(wanted), "{generation:?} lacks {wanted}");
                }
            } else {
                assert!(
                    ids.contains("chat-public-message-sent")
                        && ids.contains("chat-private-message-sent")
                );
            }
            if generation == Generation::V3 {
                for wanted in [
                    "user-role-changed",
                    "user-away-changed",
                    "guest-approved",
                    "guest-denied",
                    "chat-group-message-edited",
                    "chat-group-message-deleted",
                    "chat-group-message-reaction-added",
                    "chat-group-message-reaction-removed",
                    "meeting-presentation-uploaded",
                    "meeting-presentation-file-available",
                    "meeting-external-video-started",
                    "meeting-external-video-stopped",
                    "meeting-timer-started",
                    "meeting-timer-stopped",
                    "meeting-timer-ended",
                    "meeting-breakout-started",
                    "meeting-breakout-ended",
                ] {
                    assert!(ids.contains(wanted), "{generation:?} lacks {wanted}");
                }
                assert_eq!(guests, 2, "one event per guest decision: {ids:?}");
            }
        }
    }

    #[test]
    fn fresh_ids_each_run() {
        let a = script(Generation::V3, 3, false, 0);
        let b = script(Generation::V3, 3, false, 0);
        assert_ne!(a[0].message, b[0].message);
        assert!(
            a.iter().all(|p| p.channel != RAP),
            "no recording messages without recording"
        );
    }
}
