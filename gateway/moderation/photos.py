"""Publishing a resident's photo: off by default, a moderator's act.

A photo residents send (a chat app's, an MMS's, an email's image) may show faces, number
plates, the inside of a home: it is never public until a moderator, having looked for them,
marks it public (``public: true`` on the contribution's attachment), with a log entry; and it
is shown on the public page and listed in open data only while the contribution itself is
published. Unpublishing takes it back. Only images a browser shows as they are (JPEG, PNG,
WebP, GIF) can be published: a HEIC or a PDF would be a download, which is not checked.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from gateway.models import Contribution
from gateway.moderation.accounts import Actor
from gateway.moderation.actions import ActionError, Done, get_contribution, log_event, run
from gateway.runtime import Runtime

PUBLISHABLE = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})


def publishable(item: object) -> bool:
    return (
        isinstance(item, dict)
        and bool(item.get("path"))
        and str(item.get("path")).startswith("media/")
        and item.get("content_type") in PUBLISHABLE
    )


def public_photos(contribution: Contribution) -> list[int]:
    """The positions of the photos a moderator published (only meaningful while the
    contribution is published: the caller checks its status)."""
    return [
        index
        for index, item in enumerate(contribution.attachments or [])
        if publishable(item) and item.get("public") is True
    ]


def set_public(
    runtime: Runtime, actor: Actor, contribution_id: int, index: int, public: bool
) -> Done:
    """Mark the contribution's ``index``-th attachment public (or not); logged."""

    def work(session: Session, done: Done) -> None:
        contribution = get_contribution(session, contribution_id)
        items: list[Any] = [
            dict(i) if isinstance(i, dict) else i for i in contribution.attachments or []
        ]
        if index < 0 or index >= len(items):
            raise ActionError("console.errors.not_found", "no such attachment", 404)
        item = items[index]
        if not publishable(item):
            raise ActionError("console.errors.not_a_photo", "only a photo can be published", 409)
        if bool(item.get("public")) == public:
            return
        item["public"] = public
        contribution.attachments = items  # a new list: the JSON column sees the change
        log_event(
            session,
            done,
            contribution,
            actor,
            "publish_photo" if public else "unpublish_photo",
            {"public_photo": None if public else index + 1},
            {"public_photo": index + 1 if public else None},
        )

    return run(runtime, work)
