"""Who is looking at a console page: the logged-in moderator and their session."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.moderation.accounts import Actor


@dataclass(frozen=True)
class Viewer:
    moderator_id: int
    name: str
    role: str
    language: str
    csrf: str
    session_token: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def actor(self) -> Actor:
        return Actor(
            name=self.name,
            role=self.role,
            language=self.language,
            moderator_id=self.moderator_id,
        )
