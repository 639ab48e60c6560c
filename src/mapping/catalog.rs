//! Every event id this service produces and the messages that produce it. The event reference
//! (`docs/events.md`) is checked against this table by a test, so the two cannot drift.

pub struct EventInfo {
    pub id: &'static str,
    /// Message names (2.x–3.x envelope names, 1.x and record-and-playback header names).
    pub sources: &'static [&'static str],
}

const fn e(id: &'static str, sources: &'static [&'static str]) -> EventInfo {
    EventInfo { id, sources }
}

pub const EVENTS: &[EventInfo] = &[
    // Meetings.
    e(
        "meeting-created",
        &["MeetingCreatedEvtMsg", "meeting_created_message"],
    ),
    e(
        "meeting-ended",
        &["MeetingDestroyedEvtMsg", "meeting_destroyed_event"],
    ),
    e(
        "meeting-recording-started",
        &["RecordingStatusChangedEvtMsg"],
    ),
    e(
        "meeting-recording-stopped",
        &["RecordingStatusChangedEvtMsg"],
    ),
    e(
        "meeting-recording-unhandled",
        &["RecordingStatusChangedEvtMsg"],
    ),
    e(
        "meeting-presentation-changed",
        &["SetCurrentPresentationEvtMsg"],
    ),
    e(
        "meeting-presentation-uploaded",
        &["PresentationConversionCompletedEvtMsg"],
    ),
    e(
        "meeting-presentation-file-available",
        &["NewPresFileAvailableEvtMsg"],
    ),
    e(
        "meeting-screenshare-started",
        &["ScreenshareRtmpBroadcastStartedEvtMsg"],
    ),
    e(
        "meeting-screenshare-stopped",
        &["ScreenshareRtmpBroadcastStoppedEvtMsg"],
    ),
    e(
        "meeting-external-video-started",
        &["StartExternalVideoEvtMsg"],
    ),
    e(
        "meeting-external-video-stopped",
        &["StopExternalVideoEvtMsg"],
    ),
    e("meeting-timer-started", &["StartTimerRespMsg"]),
    e("meeting-timer-stopped", &["StopTimerRespMsg"]),
    e("meeting-timer-ended", &["TimerEndedEvtMsg"]),
    e("meeting-breakout-started", &["BreakoutRoomStartedEvtMsg"]),
    e("meeting-breakout-ended", &["BreakoutRoomEndedEvtMsg"]),
    e(
        "layout-changed",
        &["BroadcastLayoutEvtMsg", "broadcast_layout_message"],
    ),
    e("layout-locked", &["lock_layout_message"]),
    e(
        "lock-settings-changed",
        &[
            "LockSettingsInMeetingChangedEvtMsg",
            "send_lock_settings",
            "new_permission_settings",
        ],
    ),
    e(
        "audio-all-muted",
        &["MeetingMutedEvtMsg", "meeting_muted_message"],
    ),
    // Users.
    e(
        "user-joined",
        &["UserJoinedMeetingEvtMsg", "user_joined_message"],
    ),
    e(
        "user-left",
        &[
            "UserLeftMeetingEvtMsg",
            "user_left_message",
            "MeetingDestroyedEvtMsg",
            "meeting_destroyed_event",
        ],
    ),
    e(
        "user-kicked",
        &[
            "UserEjectedFromMeetingEvtMsg",
            "UserLeftMeetingEvtMsg",
            "user_eject_from_meeting",
        ],
    ),
    e("user-presenter-assigned", &["PresenterAssignedEvtMsg"]),
    e("user-presenter-unassigned", &["PresenterUnassignedEvtMsg"]),
    e("presenter-changed", &["presenter_assigned_message"]),
    e("user-status-changed", &["user_status_changed_message"]),
    e(
        "user-emoji-changed",
        &["UserEmojiChangedEvtMsg", "UserReactionEmojiChangedEvtMsg"],
    ),
    e(
        "user-raise-hand-changed",
        &["UserRaiseHandChangedEvtMsg", "UserEmojiChangedEvtMsg"],
    ),
    e(
        "user-cam-broadcast-start",
        &["UserBroadcastCamStartedEvtMsg"],
    ),
    e("user-cam-broadcast-end", &["UserBroadcastCamStoppedEvtMsg"]),
    e("user-cam-enabled", &["user_shared_webcam_message"]),
    e("user-cam-disabled", &["user_unshared_webcam_message"]),
    e("user-role-changed", &["UserRoleChangedEvtMsg"]),
    e("user-away-changed", &["UserAwayChangedEvtMsg"]),
    e(
        "guest-approved",
        &["GuestApprovedEvtMsg", "GuestsWaitingApprovedEvtMsg"],
    ),
    e(
        "guest-denied",
        &["GuestApprovedEvtMsg", "GuestsWaitingApprovedEvtMsg"],
    ),
    // Audio.
    e(
        "user-audio-voice-enabled",
        &[
            "UserJoinedVoiceConfToClientEvtMsg",
            "user_joined_voice_message",
        ],
    ),
    e(
        "user-audio-voice-disabled",
        &["UserLeftVoiceConfToClientEvtMsg", "user_left_voice_message"],
    ),
    e("user-audio-listen-only-enabled", &["user_listening_only"]),
    e("user-audio-listen-only-disabled", &["user_listening_only"]),
    e(
        "user-audio-muted",
        &["UserMutedVoiceEvtMsg", "user_voice_muted_message"],
    ),
    e("user-audio-unmuted", &["UserMutedVoiceEvtMsg"]),
    e("user-audio-unhandled", &["UserMutedVoiceEvtMsg"]),
    e(
        "user-audio-talking",
        &["UserTalkingVoiceEvtMsg", "user_voice_talking_message"],
    ),
    // Chat.
    e(
        "chat-group-message-sent",
        &["GroupChatMessageBroadcastEvtMsg"],
    ),
    e(
        "chat-group-message-edited",
        &["GroupChatMessageEditedEvtMsg"],
    ),
    e(
        "chat-group-message-deleted",
        &["GroupChatMessageDeletedEvtMsg"],
    ),
    e(
        "chat-group-message-reaction-added",
        &["GroupChatMessageReactionSentEvtMsg"],
    ),
    e(
        "chat-group-message-reaction-removed",
        &["GroupChatMessageReactionDeletedEvtMsg"],
    ),
    e("chat-public-message-sent", &["send_public_chat_message"]),
    e("chat-private-message-sent", &["send_private_chat_message"]),
    e("chat-messages", &["get_chat_history_reply"]),
    // Polls.
    e(
        "poll-started",
        &["PollStartedEvtMsg", "poll_started_message"],
    ),
    e(
        "poll-responded",
        &[
            "UserRespondedToPollRespMsg",
            "UserRespondedToTypedPollRespMsg",
        ],
    ),
    e(
        "poll-stopped",
        &["PollStoppedEvtMsg", "poll_stopped_message"],
    ),
    e(
        "poll-ended",
        &[
            "PollShowResultEvtMsg",
            "show_poll_result_request_message",
            "poll_show_result_message",
        ],
    ),
    // Shared content.
    e("pad-content", &["PadContentEvtMsg"]),
    e("transcript-updated", &["TranscriptUpdatedEvtMsg"]),
    // Recordings.
    e("rap-published", &["PublishedRecordingSysMsg", "published"]),
    e(
        "rap-unpublished",
        &["UnpublishedRecordingSysMsg", "unpublished"],
    ),
    e("rap-deleted", &["DeletedRecordingSysMsg", "deleted"]),
    e("rap-archive-started", &["archive_started"]),
    e("rap-archive-ended", &["archive_ended"]),
    e("rap-sanity-started", &["sanity_started"]),
    e("rap-sanity-ended", &["sanity_ended"]),
    e("rap-post-archive-started", &["post_archive_started"]),
    e("rap-post-archive-ended", &["post_archive_ended"]),
    e("rap-process-started", &["process_started"]),
    e("rap-process-ended", &["process_ended"]),
    e("rap-post-process-started", &["post_process_started"]),
    e("rap-post-process-ended", &["post_process_ended"]),
    e("rap-publish-started", &["publish_started"]),
    e("rap-publish-ended", &["publish_ended"]),
    e("rap-post-publish-started", &["post_publish_started"]),
    e("rap-post-publish-ended", &["post_publish_ended"]),
    e("rap-post-events-started", &["post_events_started"]),
    e("rap-post-events-ended", &["post_events_ended"]),
];

/// The catalogue's own `&'static str` for an id, if it is one of ours.
pub fn canonical(id: &str) -> Option<&'static str> {
    EVENTS.iter().find(|e| e.id == id).map(|e| e.id)
}

pub fn is_known(id: &str) -> bool {
    canonical(id).is_some()
}
