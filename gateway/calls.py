"""Voice calls: what the gateway remembers of a call in progress, for the voice channel's
plugins (a provider's call flow: greeting, keypad menu, recording, broadcast consent).

A call is keyed by the provider's call id. Its row (``VoiceCall``) holds the caller's number,
encrypted, and the number called, so that the campaign chosen on one request (by the number
called or on the keypad) is known on the next, and the caller's consent to broadcast reaches
the contribution made from the recording, whichever is stored first. Every function here runs
in a thread (blocking database I/O); the plugin's views call them through
``asyncio.to_thread``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway import announcements, campaigns, persons, residents
from gateway import conversation as engine
from gateway.clock import now_utc
from gateway.i18n import DEFAULT_LANGUAGE, languages, next_language, translate
from gateway.models import Campaign, Contribution, Contributor, VoiceCall
from gateway.outcomes import own_contributions
from gateway.privacy import (
    AddressVault,
    contributor_address,
    normalise_address,
    voice_caller,
)
from gateway.recorded_answers import Recording, in_language, url_for
from gateway.references import UNASSIGNED_PREFIX, next_reference
from gateway.runtime import Runtime

CHANNEL = "voice"
# One keypad digit per campaign: a menu longer than eight would need two digits and would be
# too long to listen to anyway (9 is the other language, 0 the caller's own data, on every
# call).
MAX_MENU = 8

T = TypeVar("T")


@dataclass(frozen=True)
class CampaignChoice:
    """What the call flow needs of a campaign, read in the database thread."""

    id: int
    title: str
    question: str
    language: str
    greeting: str | None
    greeting_audio: str | None


# -- choosing the campaign (pure) ----------------------------------------------------------


def candidates(open_campaigns: Sequence[Campaign], called: str) -> list[Campaign]:
    """The campaigns a call to ``called`` may be for, in menu order.

    The ones listing the number, else every open campaign (a number not yet in any campaign
    file still reaches someone). ``open_campaigns`` comes ordered by id so the menu said on the
    first request and the one the answer is read against are the same list.
    """
    number = normalise_address(CHANNEL, called)
    matching = [
        c
        for c in open_campaigns
        if any(normalise_address(CHANNEL, str(n)) == number for n in c.phone_numbers or [])
    ]
    return (matching or list(open_campaigns))[:MAX_MENU]


def choice(campaign: Campaign) -> CampaignChoice:
    return CampaignChoice(
        id=campaign.id,
        title=campaign.title,
        question=campaign.question or "",
        language=campaign.language or DEFAULT_LANGUAGE,
        greeting=campaign.voice_greeting,
        greeting_audio=campaign.voice_greeting_audio,
    )


# -- the call's state ------------------------------------------------------------------------


def _open_campaigns(session: Session) -> list[Campaign]:
    # Past its end date a campaign is closed to callers too (gateway.campaigns.is_open).
    now = now_utc()
    return [
        c
        for c in session.scalars(
            select(Campaign).where(Campaign.status == "open").order_by(Campaign.id)
        )
        if campaigns.is_open(c, now)
    ]


def _upsert_call(
    session: Session,
    vault: AddressVault,
    call_sid: str,
    caller: str,
    called: str,
    campaign_id: int | None,
) -> None:
    call = session.scalar(select(VoiceCall).where(VoiceCall.call_sid == call_sid))
    if call is None:
        call = VoiceCall(call_sid=call_sid)
        session.add(call)
    call.caller_hash = persons.resolve(session, vault, CHANNEL, caller)
    call.caller_encrypted = vault.encrypt(caller, voice_caller(call_sid))
    call.called = called
    if campaign_id is not None or call.campaign_id is None:
        call.campaign_id = campaign_id
    if call.language is None and _E164.match(caller):
        call.language = _chosen_language(session, call.caller_hash)


def _chosen_language(session: Session, caller_hash: str) -> str | None:
    """A language other than French that the person chose before (by SMS, chat, email or on
    an earlier call): their calls are said in it, whatever the campaign's. French is the
    default, so it says nothing about a choice: the campaign's language then applies."""
    chosen = session.scalars(
        select(Contributor.language).where(
            Contributor.address_hash == caller_hash, Contributor.language != DEFAULT_LANGUAGE
        )
    ).first()
    return chosen if chosen in languages() else None


def _language_of(session: Session, call: VoiceCall | None) -> str:
    """The language a call is said in: the caller's (chosen before, or on this call's keypad),
    else the campaign's, else French."""
    if call is not None and call.language in languages():
        return str(call.language)
    campaign = session.get(Campaign, call.campaign_id) if call and call.campaign_id else None
    language = campaign.language if campaign else None
    return language if language in languages() else DEFAULT_LANGUAGE


def _retrying_once(fn: Callable[[], T]) -> T:
    # Two requests for one new call id at once (a provider's retry racing the first) both insert;
    # the loser finds the row on its second try and updates it instead.
    try:
        return fn()
    except IntegrityError:
        return fn()


def start_call(runtime: Runtime, call_sid: str, caller: str, called: str) -> list[CampaignChoice]:
    """Remember the call; return the campaigns it may be for (one: chosen; several: a menu)."""

    def attempt() -> list[CampaignChoice]:
        with runtime.sessions.begin() as session:
            choices = [choice(c) for c in candidates(_open_campaigns(session), called)]
            chosen = choices[0].id if len(choices) == 1 else None
            _upsert_call(session, runtime.vault, call_sid, caller, called, chosen)
            return choices

    return _retrying_once(attempt)


def choose_campaign(
    runtime: Runtime, call_sid: str, caller: str, called: str, digits: str
) -> tuple[CampaignChoice | None, list[CampaignChoice]]:
    """The campaign the menu's key stands for (None if no such key), and the menu itself."""

    def attempt() -> tuple[CampaignChoice | None, list[CampaignChoice]]:
        with runtime.sessions.begin() as session:
            call = session.scalar(select(VoiceCall).where(VoiceCall.call_sid == call_sid))
            # The number stored on the first request is the one the menu was built for.
            number = (call.called if call is not None else None) or called
            choices = [choice(c) for c in candidates(_open_campaigns(session), number)]
            index = int(digits) - 1 if digits.isdigit() and len(digits) == 1 else -1
            if not 0 <= index < len(choices):
                return None, choices
            chosen = choices[index]
            if call is None:
                _upsert_call(session, runtime.vault, call_sid, caller, number, chosen.id)
            else:
                call.campaign_id = chosen.id
            return chosen, choices

    return _retrying_once(attempt)


def call_campaign(runtime: Runtime, call_sid: str) -> CampaignChoice | None:
    """The campaign the call was put through to, once chosen (by number or keypad)."""
    with runtime.sessions() as session:
        campaign = session.scalar(
            select(Campaign)
            .join(VoiceCall, VoiceCall.campaign_id == Campaign.id)
            .where(VoiceCall.call_sid == call_sid)
        )
        return choice(campaign) if campaign is not None else None


def call_language(runtime: Runtime, call_sid: str) -> str:
    """The language the call is said in (see ``_language_of``); French for an unknown call."""
    with runtime.sessions() as session:
        call = session.scalar(select(VoiceCall).where(VoiceCall.call_sid == call_sid))
        return _language_of(session, call)


def switch_language(runtime: Runtime, call_sid: str) -> str:
    """The caller pressed the language key: the call goes on in the next language (with two,
    the other one), and the person behind a number that names one (E.164, not withheld)
    keeps it, on every channel of their number: their next call, receipt, notices and call
    back come in it. Returns the new language (French for an unknown call)."""
    with runtime.sessions.begin() as session:
        call = session.scalar(
            select(VoiceCall).where(VoiceCall.call_sid == call_sid).with_for_update()
        )
        if call is None:
            return DEFAULT_LANGUAGE
        language = next_language(_language_of(session, call))
        call.language = language
        caller = None
        if call.caller_encrypted is not None:
            caller = runtime.vault.decrypt_or_none(call.caller_encrypted, voice_caller(call_sid))
        if caller and call.caller_hash and _E164.match(caller):
            # The row the recording will be filed under (gateway.recordings finds it), with
            # the number encrypted for it as everywhere else; erasure deletes it like any.
            address = runtime.vault.encrypt(caller, contributor_address(CHANNEL, call.caller_hash))
            contributor = residents.contributor_for(
                session, CHANNEL, call.caller_hash, address, now_utc()
            )
            contributor.language = language
            residents.set_language(session, call.caller_hash, language)
        return language


def record_consent(runtime: Runtime, call_sid: str, consent: bool) -> str:
    """Store the answer on the call and on a contribution already made from its recording
    (the worker copies the call's answer onto one made later); returns the call's language."""
    with runtime.sessions.begin() as session:
        session.execute(
            update(VoiceCall)
            .where(VoiceCall.call_sid == call_sid)
            .values(broadcast_consent=consent)
        )
        session.execute(
            update(Contribution)
            .where(Contribution.call_sid == call_sid)
            .values(broadcast_consent=consent)
        )
    return call_language(runtime, call_sid)


def caller_of(runtime: Runtime, call_sid: str) -> tuple[str, str | None]:
    """The caller's number (decrypted) and the number called, or ("", None) for an unknown call."""
    with runtime.sessions() as session:
        call = session.scalar(select(VoiceCall).where(VoiceCall.call_sid == call_sid))
        if call is None:
            return "", None
        # Unreadable (copied from another call): an unknown caller, not another caller.
        caller = runtime.vault.decrypt_or_none(call.caller_encrypted, voice_caller(call_sid))
        caller = caller or ""
        return caller, call.called


def reserve_reference(runtime: Runtime, call_sid: str) -> str | None:
    """The reference the call's message is filed under, taken now so that the caller hears it
    before hanging up (a landline caller gets no SMS receipt). Idempotent: the provider's
    retry, the consent step and the worker filing the recording all get the same one; if the
    recording was filed first, its reference. None for an unknown call.

    The call's row is locked (PostgreSQL; SQLite's transactions are serial) so that this and
    the worker filing the recording (gateway.recordings) never take two references. A reference
    said for a message that could not be kept (silence, a corrupt file) is not reused."""
    with runtime.sessions.begin() as session:
        call = session.scalar(
            select(VoiceCall).where(VoiceCall.call_sid == call_sid).with_for_update()
        )
        if call is None:
            return None
        if call.reference is None:
            filed = session.scalar(
                select(Contribution.reference)
                .where(Contribution.call_sid == call_sid)
                .order_by(Contribution.id)
                .limit(1)
            )
            campaign = session.get(Campaign, call.campaign_id) if call.campaign_id else None
            prefix = campaign.reference_prefix if campaign else UNASSIGNED_PREFIX
            call.reference = filed or next_reference(session, prefix)
        return call.reference


def call_reference(runtime: Runtime, call_sid: str) -> str | None:
    """The reference reserved for the call's message, if any."""
    with runtime.sessions() as session:
        return session.scalar(select(VoiceCall.reference).where(VoiceCall.call_sid == call_sid))


# A number that names one person (E.164); a withheld one ("anonymous", "+266696687", empty)
# names nobody, and must never open anyone's contributions.
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# Digits of a reference keyed in: "42" names PARC-0042 among the caller's own contributions.
MAX_FOLLOW_DIGITS = 8


def follow_up(runtime: Runtime, call_sid: str, digits: str) -> list[str | Recording]:
    """What a caller hears after keying in the number of a reference: the state of each of
    their own contributions with that number, and the city's answer (the SUIVI of SMS, by
    phone). Only contributions sent from the caller's own number, by call or SMS, are looked
    up: a number keyed in never opens someone else's. In the call's language. A recorded
    answer comes as a ``Recording`` to play, instead of the answer's text."""
    with runtime.sessions() as session:
        call = session.scalar(select(VoiceCall).where(VoiceCall.call_sid == call_sid))
        language = _language_of(session, call)
        caller = None
        if call is not None and call.caller_encrypted is not None:
            caller = runtime.vault.decrypt_or_none(call.caller_encrypted, voice_caller(call_sid))
        if call is None or not call.caller_hash or not caller or not _E164.match(caller):
            return [translate("voice.followup_hidden", language)]
        digits = digits.strip()
        if not digits.isdigit() or len(digits) > MAX_FOLLOW_DIGITS:
            return [translate("voice.followup_not_found", language)]
        own = own_contributions(session, call.caller_hash)
    found = [c for c in own if engine.same_reference(digits, c.reference)]
    if not found:
        return [translate("voice.followup_not_found", language)]
    said: list[str | Recording] = []
    for contribution in found[: engine.FOLLOW_UP_LIST_SIZE]:
        said.append(
            translate(
                "voice.followup_status",
                language,
                campaign=contribution.campaign_title,
                status=engine.status_text(contribution, language),
            )
        )
        recording = recorded_answer(runtime, contribution, language)
        if recording is not None:
            said.append(translate("voice.followup_answer_recorded", language))
            said.append(recording)
            continue
        answer = engine.answer_text(contribution, language)
        if answer:
            said.append(translate("voice.followup_answer", language, text=answer))
    return said


def recorded_answer(
    runtime: Runtime, contribution: engine.OwnContribution, language: str
) -> Recording | None:
    """The city's recorded answer a caller hears instead of its text: in their language, or
    the only one (gateway.recorded_answers); None when there is none."""
    if contribution.status != "published" or not contribution.answer_state:
        return None
    token = in_language(contribution.answer_audio, contribution.answer_audio_en, language)
    return Recording(url_for(runtime.settings, token)) if token else None


def record_callback_consent(runtime: Runtime, call_sid: str) -> str:
    """The caller pressed the key to be called back with the outcome: kept on the call and on
    a contribution already made from its recording (the worker copies it onto one made later);
    returns the call's language."""
    with runtime.sessions.begin() as session:
        session.execute(
            update(VoiceCall).where(VoiceCall.call_sid == call_sid).values(callback_consent=True)
        )
        session.execute(
            update(Contribution)
            .where(Contribution.call_sid == call_sid)
            .values(callback_consent=True)
        )
    return call_language(runtime, call_sid)


def record_announcements(runtime: Runtime, call_sid: str) -> str | None:
    """The caller pressed the key for announcements (gateway.announcements): the person, on
    every channel of their number, is opted in; they are texted, so only a number that can
    receive an SMS is offered the key. Returns the call's language, None for an unknown call
    or an unreadable number (nothing recorded)."""

    def attempt() -> str | None:
        with runtime.sessions.begin() as session:
            call = session.scalar(select(VoiceCall).where(VoiceCall.call_sid == call_sid))
            if call is None or not call.caller_hash:
                return None
            address = runtime.vault.rebind(
                call.caller_encrypted,
                voice_caller(call_sid),
                contributor_address(CHANNEL, call.caller_hash),
            )
            if address is None:
                return None
            now = now_utc()
            contributor = residents.contributor_for(
                session, CHANNEL, call.caller_hash, address, now
            )
            announcements.subscribe(session, contributor, True, now)
        return call_language(runtime, call_sid)

    return _retrying_once(attempt)
