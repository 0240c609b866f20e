"""A campaign's podcast feed (``GET /campaigns/{slug}/podcast.xml``): RSS 2.0 with the tags
Apple Podcasts defines (the ``itunes:`` namespace, which every podcast app reads).

One episode per broadcastable voice contribution (``gateway.publication.radio``): its title
from the reference and the neighbourhood, its description the anonymised public text a
moderator approved and the provenance line, never the transcript; its enclosure the normalised
MP3 at the URL the open data and the public page give (``opendata.audio_url``), with its exact
length in bytes; a GUID made of the campaign and the reference, which never changes; its date
the time the message was left. A campaign with nothing to broadcast yet has a valid feed with
no items, so that the radio can subscribe from the start.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from gateway.i18n import translate
from gateway.models import Campaign
from gateway.publication.opendata import audio_url
from gateway.publication.radio import CONTENT_TYPE, Episode
from gateway.publication.records import provenance
from gateway.settings import Settings

ITUNES = "http://www.itunes.com/dtds/podcast-1.0.dtd"
ATOM = "http://www.w3.org/2005/Atom"
# Apple's category list has no "civic participation"; Government is where city halls' and
# public bodies' podcasts are filed.
CATEGORY = "Government"
MEDIA_TYPE = "application/rss+xml; charset=utf-8"

ET.register_namespace("itunes", ITUNES)
ET.register_namespace("atom", ATOM)


def feed_url(settings: Settings, slug: str) -> str:
    return f"{campaign_url(settings, slug)}/podcast.xml"


def campaign_url(settings: Settings, slug: str) -> str:
    return f"{settings.public_url.rstrip('/')}/campaigns/{slug}"


def guid(slug: str, reference: str) -> str:
    """Stable for ever: a podcast app that saw it once never offers the episode again as new,
    even when the gateway moves to another address (PUBLIC_URL is not part of it)."""
    return f"agora:{slug}:{reference}"


def duration(seconds: float) -> str:
    """``itunes:duration`` as H:MM:SS (rounded up: a 0.4 s clip still lasts a second)."""
    total = max(1, int(seconds + 0.999))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _sub(parent: ET.Element, tag: str, content: str | None = None, /, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if content is not None:
        element.text = content
    return element


def render(settings: Settings, campaign: Campaign, items: Sequence[Episode]) -> bytes:
    """The feed, newest episode first, as UTF-8 bytes."""
    language = campaign.language or settings.language
    tz = ZoneInfo(settings.timezone)
    rss = ET.Element("rss", {"version": "2.0"})
    channel = _sub(rss, "channel")
    title = translate("public.podcast.title", language, campaign=campaign.title)
    link = campaign_url(settings, campaign.slug)
    description = campaign.question or translate("public.podcast.description", language)
    _sub(channel, "title", title)
    _sub(channel, "link", link)
    _sub(channel, "description", description)
    _sub(channel, "language", language)
    _sub(
        channel,
        f"{{{ATOM}}}link",
        href=feed_url(settings, campaign.slug),
        rel="self",
        type="application/rss+xml",
    )
    if items:
        newest = max(_utc(item.record.received_at) for item in items)
        _sub(channel, "lastBuildDate", format_datetime(newest.astimezone(UTC), usegmt=True))
    _sub(channel, f"{{{ITUNES}}}author", settings.organisation)
    _sub(channel, f"{{{ITUNES}}}summary", description)
    _sub(channel, f"{{{ITUNES}}}type", "episodic")
    _sub(channel, f"{{{ITUNES}}}explicit", "false")
    _sub(channel, f"{{{ITUNES}}}category", text=CATEGORY)  # an attribute, as Apple defines it
    if settings.podcast_image_url:
        image = _sub(channel, "image")
        _sub(image, "url", settings.podcast_image_url)
        _sub(image, "title", title)
        _sub(image, "link", link)
        _sub(channel, f"{{{ITUNES}}}image", href=settings.podcast_image_url)

    ordered = sorted(items, key=lambda i: (_utc(i.record.received_at), i.record.reference))
    for episode in reversed(ordered):
        record = episode.record
        url = audio_url(settings, record)
        if url is None:  # not broadcastable after all: never announce it
            continue
        item = _sub(channel, "item")
        key = "public.podcast.episode" if record.neighbourhood else "public.podcast.episode_bare"
        episode_title = translate(
            key, language, reference=record.reference, neighbourhood=record.neighbourhood
        )
        _sub(item, "title", episode_title)
        text = " ".join((record.text or "").split())
        _sub(item, "description", f"{text}\n\n{provenance(record, language, tz)}".strip())
        _sub(item, "guid", guid(campaign.slug, record.reference), isPermaLink="false")
        _sub(item, "pubDate", format_datetime(_utc(record.received_at).astimezone(UTC), True))
        _sub(item, "enclosure", url=url, length=str(episode.clip.size), type=CONTENT_TYPE)
        _sub(item, f"{{{ITUNES}}}title", episode_title)
        _sub(item, f"{{{ITUNES}}}duration", duration(episode.clip.duration))
        _sub(item, f"{{{ITUNES}}}episodeType", "full")
        _sub(item, f"{{{ITUNES}}}explicit", "false")
    ET.indent(rss)
    return ET.tostring(rss, encoding="utf-8", xml_declaration=True)
