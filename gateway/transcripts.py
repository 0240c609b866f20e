"""Transcribing a voice contribution, on the worker that runs the ``transcription`` queue.

The speech model is loaded once per worker process (transcription.vosk_engine caches it) and
chosen by ``VOSK_MODEL`` or the campaign's language. Without a model the contribution stays
``pending`` with its audio; ``gateway transcribe --pending`` completes it once one is
installed. Audio that cannot be decoded ends ``failed`` with the reason, the file kept for a
human to hear.
"""

from __future__ import annotations

import logging
import time

from gateway import enqueue, metrics
from gateway.clock import now_utc
from gateway.models import Campaign, Contribution
from gateway.moderation import actions, aposteriori, grouping
from gateway.runtime import Runtime

log = logging.getLogger(__name__)


def transcribe_contribution(runtime: Runtime, contribution_id: int) -> str:
    """Returns the contribution's transcription status after this attempt."""
    from transcription.audio import AudioError, decode_to_pcm
    from transcription.models import resolve
    from transcription.vosk_engine import VoskEngine

    with runtime.sessions() as session:
        contribution = session.get(Contribution, contribution_id)
        if contribution is None or contribution.transcription_status != "pending":
            return contribution.transcription_status or "" if contribution else "missing"
        if not contribution.audio_path:
            return "pending"
        campaign = (
            session.get(Campaign, contribution.campaign_id) if contribution.campaign_id else None
        )
        language = campaign.language if campaign else runtime.settings.language
        audio_path = runtime.settings.data_path / contribution.audio_path
    model = resolve(runtime.settings.vosk_model, runtime.settings.data_path, language)
    if model is None:
        log.info(
            "contribution %d: no speech model for %r; transcription stays pending",
            contribution_id,
            language,
        )
        return "pending"
    try:
        audio = decode_to_pcm(audio_path)
        started = time.monotonic()
        transcript = VoskEngine(model.path, name=model.name, language=model.language).transcribe(
            audio
        )
        # The real-time factor an operator watches (gateway.metrics): flushed now, since a
        # forked worker's job process ends with the job.
        metrics.count("transcription_seconds", time.monotonic() - started, language=language)
        metrics.count("transcribed_audio_seconds", transcript.duration, language=language)
        metrics.flush(runtime.redis)
    except AudioError as exc:
        return _record(runtime, contribution_id, status="failed", error=f"{exc.code}: {exc}")
    except Exception as exc:
        log.exception("contribution %d: transcription failed", contribution_id)
        return _record(
            runtime, contribution_id, status="failed", error=f"{type(exc).__name__}: {exc}"
        )
    done = actions.Done()
    with runtime.sessions.begin() as session:
        contribution = session.get(Contribution, contribution_id)
        assert contribution is not None
        contribution.transcript = transcript.text
        if not contribution.text:
            contribution.text = transcript.text
        contribution.transcript_detail = transcript.to_dict()
        contribution.transcription_status = "done"
        contribution.transcription_error = None
        contribution.updated_at = now_utc()
        session.flush()
        grouping.assign(session, contribution)
        # A posteriori: a voice message is published once its words exist. The caller had a
        # receipt saying "recorded"; the "published" notice tells them the rest, once.
        if aposteriori.publish_at_once(session, contribution, now_utc()):
            actions.notify(
                runtime,
                session,
                done,
                contribution,
                actions.NOTICES["publish"],
                f"auto{contribution.id}",
            )
    if done.outbound:
        enqueue.outbound(runtime, done.outbound)
    log.info(
        "contribution %d transcribed with %s (%.1f s of audio)",
        contribution_id,
        transcript.model,
        transcript.duration,
    )
    return "done"


def _record(runtime: Runtime, contribution_id: int, *, status: str, error: str) -> str:
    with runtime.sessions.begin() as session:
        contribution = session.get(Contribution, contribution_id)
        if contribution is not None:
            contribution.transcription_status, contribution.transcription_error = status, error
    log.warning("contribution %d: transcription %s: %s", contribution_id, status, error)
    return status
