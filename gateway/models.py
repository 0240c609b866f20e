"""The data model. Every schema change goes through an Alembic migration (gateway/migrations)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import false, true
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    question: Mapped[str] = mapped_column(Text, default="")
    keywords: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    phone_numbers: Mapped[list[Any]] = mapped_column(default=list)
    neighbourhoods: Mapped[list[Any]] = mapped_column(default=list)
    reference_prefix: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8), default="fr")
    # Answering machine: what the caller hears (text read aloud, or an audio file's URL), and
    # whether a caller who can receive SMS gets the receipt by SMS.
    voice_greeting: Mapped[str | None] = mapped_column(Text)
    voice_greeting_audio: Mapped[str | None] = mapped_column(String(500))
    voice_sms_receipt: Mapped[bool] = mapped_column(default=True, server_default=true())
    # The themes moderators classify this campaign's contributions under (campaign file).
    themes: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    source: Mapped[str | None] = mapped_column(String(500))
    # The campaign's synthesis, once published (gateway.announcements): where to read it and a
    # short summary, shown on the public page and announced to the residents who asked (INFO).
    synthesis_url: Mapped[str | None] = mapped_column(String(500))
    synthesis_summary: Mapped[str | None] = mapped_column(Text)
    synthesis_published_at: Mapped[datetime | None]
    # Publication (gateway.publication): whether a rejected contribution's public text is shown
    # next to the reason on the public page and in open data (the reason always is), and the
    # Decidim proposals component its contributions are published to (campaign file).
    public_rejected_text: Mapped[bool] = mapped_column(default=True, server_default=true())
    decidim_component: Mapped[int | None]
    # a_priori: published once a moderator says so; a_posteriori: published at once, redacted,
    # and reviewed after (gateway.moderation.aposteriori; campaign file ``moderation:``).
    moderation_mode: Mapped[str] = mapped_column(
        String(16), default="a_priori", server_default="a_priori"
    )
    # After this instant (UTC) the campaign counts as closed whatever its status
    # (gateway.campaigns.is_open): residents get the polite "closed" reply.
    closes_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Contributor(Base):
    """A resident, known only by a pseudonymous id; the address is encrypted (gateway.privacy)."""

    __tablename__ = "contributors"
    __table_args__ = (
        UniqueConstraint("channel", "address_hash"),
        # The person on every channel of their address (gateway.residents).
        Index("ix_contributors_address_hash", "address_hash"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    address_hash: Mapped[str | None] = mapped_column(String(64))
    address_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    language: Mapped[str] = mapped_column(String(8), default="fr")
    opted_out: Mapped[bool] = mapped_column(default=False)
    opted_out_at: Mapped[datetime | None]
    notice_sent_at: Mapped[datetime | None]
    # Opted in to announcements (INFO, never by default; gateway.announcements): a campaign
    # opening in their neighbourhood, a synthesis published. STOP and erasure end it.
    announcements: Mapped[bool] = mapped_column(default=False, server_default=false())
    announcements_at: Mapped[datetime | None]
    forgotten_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("contributor_id", "channel"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contributor_id: Mapped[int] = mapped_column(ForeignKey("contributors.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    step: Mapped[str] = mapped_column(String(32), default="idle")
    expires_at: Mapped[datetime | None] = mapped_column(index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class InboundMessage(Base):
    """A message as a provider delivered it, stored before the provider is answered."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        UniqueConstraint("channel", "provider_message_id"),
        Index("ix_inbound_sender_state", "sender_hash", "state"),
        Index("ix_inbound_state_received", "state", "received_at"),
        Index("ix_inbound_sender_ref", "sender_hash", "provider_ref"),
        # Flood limits count a sender's messages of the last minute (gateway.floods).
        Index("ix_inbound_sender_received", "sender_hash", "received_at"),
        Index("ix_inbound_received", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    provider_message_id: Mapped[str] = mapped_column(String(128))
    sender_hash: Mapped[str | None] = mapped_column(String(64))
    sender_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    recipient: Mapped[str | None] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text, default="")
    attachments: Mapped[list[Any]] = mapped_column(default=list)
    # The message's id in its conversation at the provider (a chat app's message id in the chat),
    # which an edit of the message names; provider_message_id is the delivery's (update_id).
    provider_ref: Mapped[str | None] = mapped_column(String(64))
    # message | edit (a correction of the message provider_ref names) | button (a tapped
    # answer button; the text is the button's data)
    kind: Mapped[str] = mapped_column(String(16), default="message", server_default="message")
    # The plugin that carried it (gateway.plugins): replies to it go back the same way, so that
    # a channel with two providers answers through the one the resident wrote to. None: stored
    # before it was recorded (the channel's first configured plugin answers).
    provider: Mapped[str | None] = mapped_column(String(16))
    # The provider's payload, encrypted: it holds the sender's address.
    raw_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # received -> processed | ignored | failed | quarantined (processing it failed in a way a
    # retry cannot fix; it no longer holds up the sender's later messages)
    state: Mapped[str] = mapped_column(String(16), default="received")
    # The RQ job that carries this message (ingest enqueues one job per group commit).
    job_id: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None]


class QuarantinedMessage(Base):
    """A delivery that could not be stored as a message (a field too long for its column, a
    payload the database refuses): kept whole and encrypted with the reason, so that it never
    blocks the messages behind it and an operator can look at it (``gateway quarantine``).
    Messages that were stored but fail when processed stay in ``inbound_messages`` with the
    state ``quarantined`` instead."""

    __tablename__ = "quarantined_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    # A digest of the provider's id (the id itself may be what was too long).
    provider_key: Mapped[str] = mapped_column(String(64), index=True)
    # The sender's look-up hash, so that erasure finds what they sent (gateway.residents).
    sender_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(Text)
    # The normalised message as JSON (sender, recipient, text, attachments, raw payload).
    payload_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    quarantined_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Contribution(Base):
    __tablename__ = "contributions"
    __table_args__ = (
        # The moderation queue: a status in arrival order, and the earlier members of a group
        # (gateway.moderation.queries.queue).
        Index("ix_contributions_status_received", "status", "received_at", "id"),
        Index("ix_contributions_group_status", "group_id", "status", "received_at"),
        # The neighbourhood filter's list (SELECT DISTINCT without reading every row).
        Index("ix_contributions_neighbourhood", "neighbourhood"),
        Index("ix_contributions_collected_key", "collected_key", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"), index=True)
    contributor_id: Mapped[int | None] = mapped_column(
        ForeignKey("contributors.id", ondelete="SET NULL"), index=True
    )
    inbound_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("inbound_messages.id", ondelete="SET NULL")
    )
    channel: Mapped[str] = mapped_column(String(16))
    # pending (waiting for moderation) | published | rejected | spam
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    text: Mapped[str] = mapped_column(Text, default="")
    transcript: Mapped[str | None] = mapped_column(Text)
    audio_path: Mapped[str | None] = mapped_column(String(500))
    # Photos, drawings and files the resident sent with it: [{"kind", "path", "content_type",
    # "size", "name"}], paths under DATA_DIR; served to logged-in moderators only.
    attachments: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    kind: Mapped[str] = mapped_column(String(16), default="individual")
    group_description: Mapped[str | None] = mapped_column(Text)
    neighbourhood: Mapped[str | None] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(32))
    tags: Mapped[list[Any]] = mapped_column(default=list)
    language: Mapped[str] = mapped_column(String(8), default="fr")
    filed_on_expiry: Mapped[bool] = mapped_column(default=False)
    # Voice: the recording (a path under DATA_DIR/audio), its transcription, the caller's
    # answer to "may this be broadcast on the radio?" (None: not asked or no answer = no).
    audio_duration: Mapped[float | None]
    audio_content_type: Mapped[str | None] = mapped_column(String(64))
    # pending | done | failed ; None for written contributions
    transcription_status: Mapped[str | None] = mapped_column(String(16), index=True)
    transcription_error: Mapped[str | None] = mapped_column(Text)
    transcript_detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    broadcast_consent: Mapped[bool | None]
    # A caller who cannot receive SMS asked, on the call, to be called back with the outcome.
    callback_consent: Mapped[bool | None]
    call_sid: Mapped[str | None] = mapped_column(String(64), index=True)
    # Moderation (gateway.moderation): themes chosen among the campaign's; the public version
    # (anonymised) published instead of ``text``; the machine transcript, kept when a moderator
    # corrects ``transcript``; the last decision and its public reason.
    themes: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    public_text: Mapped[str | None] = mapped_column(Text)
    transcript_machine: Mapped[str | None] = mapped_column(Text)
    decision_reason: Mapped[str | None] = mapped_column(Text)
    moderated_by: Mapped[str | None] = mapped_column(String(100))
    moderated_at: Mapped[datetime | None]
    # Published by the system at once (a posteriori campaign) and not yet reviewed by a
    # moderator: any moderator's decision clears it (gateway.moderation.aposteriori).
    awaiting_review: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Filed while its sender was over the per-sender flood limit (gateway.floods): kept and
    # processed like any other, shown to moderators with a mark, never published at once.
    flood: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Folded text, transcript, public version and reference, for accent-blind search.
    search_text: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Identical and near-identical texts (a tract many residents sent) share a group: the id
    # of the group's first contribution (gateway.moderation.grouping).
    fingerprint: Mapped[str | None] = mapped_column(String(32), index=True)
    group_id: Mapped[int | None]
    # Email: whether the sender passed DMARC alignment (channels/email/authentication.py).
    # False: filed for moderators, flagged; nothing is ever sent to that address about it.
    # None: not applicable (the channel cannot doubt its sender) or filed before the check existed.
    sender_verified: Mapped[bool | None]
    # The city's answer, a second stage after publication (gateway.moderation.answers): a state
    # (ANSWER_STATES there) and a reasoned text, public, in French and optionally English.
    answer_state: Mapped[str | None] = mapped_column(String(16), index=True)
    answer_text: Mapped[str | None] = mapped_column(Text)
    answer_text_en: Mapped[str | None] = mapped_column(Text)
    # The city's answer recorded (gateway.recorded_answers): the MP3's token, in French and
    # English, played to callers instead of the text; a group shares one file.
    answer_audio: Mapped[str | None] = mapped_column(String(64), index=True)
    answer_audio_en: Mapped[str | None] = mapped_column(String(64), index=True)
    answered_by: Mapped[str | None] = mapped_column(String(100))
    answered_at: Mapped[datetime | None]
    # Decidim (gateway.publication.decidim_api): the proposal's id once created there (never
    # published twice), when, and the last refusal, kept for the console.
    decidim_id: Mapped[str | None] = mapped_column(String(32))
    decidim_published_at: Mapped[datetime | None]
    decidim_error: Mapped[str | None] = mapped_column(Text)
    # Collected by an agent in person, on paper or at a workshop (gateway.moderation.collected;
    # ``channel`` is then one of its COLLECTED_CHANNELS): the day the agent gives (distinct from
    # received_at, when it was entered), the place (public, in the provenance line), the agent's
    # account (never public), and the key that keeps a retried entry or a re-uploaded
    # spreadsheet's row from being filed twice.
    collected_at: Mapped[datetime | None]
    collected_place: Mapped[str | None] = mapped_column(String(200))
    collected_by: Mapped[str | None] = mapped_column(String(100))
    collected_key: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Indexed: the live board follows changes by this column.
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, index=True)

    campaign: Mapped[Campaign | None] = relationship(lazy="joined")
    contributor: Mapped[Contributor | None] = relationship(lazy="joined")


class VoiceCall(Base):
    """One call to the answering machine, from the first webhook on: the recording callback
    carries only the CallSid, so the caller, the number called and the campaign live here."""

    __tablename__ = "voice_calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    caller_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    caller_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    called: Mapped[str | None] = mapped_column(String(64))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"))
    broadcast_consent: Mapped[bool | None]
    callback_consent: Mapped[bool | None]  # pressed the key to be called back with the outcome
    # The contribution's reference, taken when the message was recorded so that the caller hears
    # it before hanging up (gateway.calls.reserve_reference); the recording is filed under it.
    reference: Mapped[str | None] = mapped_column(String(32))
    # The language the call is said in, once known: the caller's own choice from an earlier
    # contact, or the one they switched to on the keypad (gateway.calls.switch_language);
    # None: the campaign's.
    language: Mapped[str | None] = mapped_column(String(8))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)


class Callback(Base):
    """A call back to a caller who cannot receive SMS and asked for it on their call: the
    outcome of their contribution, said on the phone (gateway.callbacks). Placed within the
    calling hours, tried again when busy or unanswered, given up after the last attempt; every
    attempt is in ``log`` for moderators."""

    __tablename__ = "callbacks"
    __table_args__ = (Index("ix_callbacks_status_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    decision_key: Mapped[str] = mapped_column(String(128), unique=True)
    contribution_id: Mapped[int | None] = mapped_column(
        ForeignKey("contributions.id", ondelete="SET NULL"), index=True
    )
    contributor_id: Mapped[int | None] = mapped_column(
        ForeignKey("contributors.id", ondelete="SET NULL"), index=True
    )
    message_key: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)  # what is said: the notice, in their language
    language: Mapped[str] = mapped_column(String(8), default="fr")
    # The number to call, its own encrypted copy; wiped once done or given up.
    recipient_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    sender: Mapped[str | None] = mapped_column(String(128))  # the number called, shown to them
    # queued -> calling -> done | queued again (busy, no answer) | given_up | failed
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    provider: Mapped[str | None] = mapped_column(String(16))
    provider_call_id: Mapped[str | None] = mapped_column(String(64))
    # Each attempt: {"at": ISO time, "event": placed | answered | busy | no-answer | ...}.
    log: Mapped[list[Any]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class OutboundMessage(Base):
    """A reply, receipt or notice to a resident; sent at most once (see workers.outbound)."""

    __tablename__ = "outbound_messages"
    __table_args__ = (
        Index("ix_outbound_status_due", "status", "next_attempt_at"),
        # A provider's delivery report names the message by its id (gateway.outbox).
        Index("ix_outbound_provider_id", "provider", "provider_message_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # One decision, one row: re-running the job that decided it finds the row and adds none.
    decision_key: Mapped[str] = mapped_column(String(128), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    contributor_id: Mapped[int | None] = mapped_column(
        ForeignKey("contributors.id", ondelete="SET NULL"), index=True
    )
    inbound_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("inbound_messages.id", ondelete="SET NULL"), index=True
    )
    contribution_id: Mapped[int | None] = mapped_column(
        ForeignKey("contributions.id", ondelete="SET NULL")
    )
    # Wiped once the message is sent or has failed for good.
    recipient_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    sender: Mapped[str | None] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    message_key: Mapped[str | None] = mapped_column(String(64))
    # Answer buttons for channels that have them (a chat app's inline keyboard): rows of
    # {"text", "data"}; the text itself always carries the same choices, numbered.
    buttons: Mapped[list[Any] | None] = mapped_column(JSON)
    encoding: Mapped[str | None] = mapped_column(String(8))
    segments: Mapped[int | None]
    # queued -> sending -> sent | failed ; queued again (with next_attempt_at) on a retryable error
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    provider: Mapped[str | None] = mapped_column(String(16))
    provider_message_id: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class ModerationEvent(Base):
    __tablename__ = "moderation_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    contribution_id: Mapped[int | None] = mapped_column(
        ForeignKey("contributions.id", ondelete="CASCADE"), index=True
    )
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ReferenceCounter(Base):
    """Per-prefix counters for the references residents quote (PARC-0042)."""

    __tablename__ = "reference_counters"

    prefix: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class Moderator(Base):
    """A member of the participation team; ``admin`` also manages campaigns and accounts."""

    __tablename__ = "moderators"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(
        String(200)
    )  # Argon2id (gateway.moderation.accounts)
    role: Mapped[str] = mapped_column(String(16), default="moderator")
    language: Mapped[str] = mapped_column(String(8), default="fr")
    active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModeratorSession(Base):
    """A console login. The cookie holds a random token; only its SHA-256 is stored."""

    __tablename__ = "moderator_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    moderator_id: Mapped[int] = mapped_column(ForeignKey("moderators.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)

    moderator: Mapped[Moderator] = relationship(lazy="joined")


class LoginFailure(Base):
    """Failed logins, by account name and by (hashed) client address, for throttling."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(100), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ApiToken(Base):
    """A bearer token for the JSON API (``gateway tokens create NAME``); only its hash is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # What the token may do: read (public data only), moderate, admin (gateway.api.scopes).
    scope: Mapped[str] = mapped_column(String(16), default="read")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Every token expires (migration 0006 gave the older ones an expiry).
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
