"""The scope each API endpoint needs: one table, read by the routes (gateway.api.handlers
refuses to register a route missing from it), by the bearer-token middleware (which checks it
before any handler runs) and by the OpenAPI description (each operation's ``security``).

- ``read``: public data only. Published contributions in their public shape (the anonymised
  public version as ``text``; never the resident's own words, transcript, contributor,
  conversation, attachments or recording), campaigns that are not drafts. Nothing else, and
  no writes. What an open-data script needs, and all it can leak.
- ``answer``: also give the city's answer to published contributions (an elected official,
  a city department: ``answerer`` accounts), nothing else.
- ``moderate``: what a moderator does in the console (read everything, decide, classify,
  anonymise, answer residents, read the log and the statistics).
- ``admin``: also what only admins do (campaigns: create, replace, status; a resident's
  erasure or opt-out; the messages that could not be delivered: list, retry, discard).
- ``collect``: beside that ladder, entering contributions collected by agents (an agent's
  tablet) and nothing else; ``moderate`` and ``admin`` may enter them too.

A scope includes the ones before it (gateway.moderation.accounts.scope_allows).
"""

from __future__ import annotations

from gateway.moderation.accounts import ADMIN, ANSWER, COLLECT, MODERATE, READ

PREFIX = "/api/v1"

NEEDED: dict[tuple[str, str], str] = {
    ("GET", "/contributions"): READ,
    ("GET", "/contributions/{id}"): READ,
    # A contribution collected by an agent (gateway.moderation.collected).
    ("POST", "/contributions"): COLLECT,
    ("POST", "/contributions/{id}/decision"): MODERATE,
    ("POST", "/contributions/{id}/classification"): MODERATE,
    ("PUT", "/contributions/{id}/transcript"): MODERATE,
    ("PUT", "/contributions/{id}/public-text"): MODERATE,
    ("PUT", "/contributions/{id}/attachments/{number}/public"): MODERATE,
    ("POST", "/contributions/{id}/replies"): MODERATE,
    # The city's answer: moderators, and answerers who may do nothing else.
    ("POST", "/contributions/{id}/answer"): ANSWER,
    ("POST", "/contributions/{id}/answer/audio"): ANSWER,
    ("DELETE", "/contributions/{id}/answer/audio"): ANSWER,
    ("POST", "/decisions"): MODERATE,
    ("GET", "/groups/{group_id}"): MODERATE,
    ("POST", "/groups/{group_id}/decision"): MODERATE,
    ("POST", "/groups/{group_id}/answer"): ANSWER,
    ("POST", "/groups/{group_id}/answer/audio"): ANSWER,
    ("DELETE", "/groups/{group_id}/answer/audio"): ANSWER,
    ("GET", "/events"): MODERATE,
    ("GET", "/campaigns"): READ,
    ("POST", "/campaigns"): ADMIN,
    ("PUT", "/campaigns/{slug}"): ADMIN,
    ("PUT", "/campaigns/{slug}/status"): ADMIN,
    ("POST", "/campaigns/{slug}/synthesis"): ADMIN,
    ("GET", "/campaigns/{slug}/stats"): MODERATE,
    # A resident's request made in person (gateway.residents): admins, as in the console.
    ("POST", "/residents/forget"): ADMIN,
    ("POST", "/residents/opt-out"): ADMIN,
    # Messages that could not be delivered (gateway.moderation.deadletter): admins, as in the
    # console, since they show delivery problems.
    ("GET", "/outbound/failed"): ADMIN,
    ("POST", "/outbound/{id}/retry"): ADMIN,
    ("POST", "/outbound/{id}/discard"): ADMIN,
}


def needed(method: str, path: str) -> str:
    """The scope a request needs, by method and the route's canonical path (``{id}`` form).
    A route missing from the table needs the most: forgetting to declare one opens nothing."""
    method = "GET" if method == "HEAD" else method
    return NEEDED.get((method, path.removeprefix(PREFIX)), ADMIN)
