"""Whether an email really comes from the address in its ``From:``: DMARC identifier alignment.

Anyone can write any ``From:``. The gateway acts on a command (STOP, OUBLIER...) and answers
(receipts, menus, notices) only when the From domain vouched for the message: an SPF pass or a
DKIM signature that *aligns* with the From domain (RFC 7489: the same organizational domain, or
the same domain when the domain's DMARC record asks for strict alignment). Anything else is
filed for moderators, flagged, and never answered (channels/email/doc.md).

Two ways to know, each computed once at ingest and stored with the message (``Verdict``):

* **The receiving server's ``Authentication-Results``** (RFC 8601), for mail read from the IMAP
  mailbox, taken by ``gateway email receive`` from the city's mail server, or relayed to the SMTP
  receiver by a trusted relay (``SMTP_RECEIVER_TRUSTED_RELAYS``). Only headers whose authserv-id
  is ``EMAIL_AUTHSERV_ID`` are read: anyone can write such a header into a message, under any
  name, and only the city's own server is believed (RFC 8601 section 5 requires it to remove
  forged copies of its own headers from incoming mail). Per method, the topmost of those
  headers that reports it counts: headers are added on top as mail travels, so a forged copy
  that slipped through sits below the server's own. ``dmarc=pass`` with ``header.from`` the
  From domain passes; any other DMARC result fails; without a DMARC result, an aligned
  ``dkim=pass`` or ``spf=pass`` passes. Without ``EMAIL_AUTHSERV_ID`` nothing passes this way.
* **The gateway's own check**, in its SMTP receiver (which sees the connection): every DKIM
  signature is verified (dkimpy; at most ``MAX_SIGNATURES``, and a signature with ``l=`` does
  not count: anyone could append to what it covers), SPF is evaluated for the peer's address,
  MAIL FROM and HELO (pyspf), and the From domain's DMARC record (``_dmarc.<domain>``, else the
  organizational domain's, from a public-suffix list shipped offline by ``publicsuffixlist``)
  gives the alignment mode. A domain without a DMARC record is held to relaxed alignment
  anyway: the question here is whether the domain vouched for the mail, not what it wants done
  with failures. A DNS failure fails the check (the mail is still filed, flagged).

DNS goes to ``DNS_NAMESERVER`` (host[:port]) when set, else to the system's resolver.
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from functools import lru_cache
from typing import Any

import authres
import authres.dmarc
import dkim
import dns.exception
import dns.resolver
import spf
from publicsuffixlist import PublicSuffixList

from channels.email.settings import EmailSettings

log = logging.getLogger(__name__)

MAX_SIGNATURES = 5  # DKIM signatures verified per message: each costs a DNS query and RSA
DNS_TIMEOUT = 5.0  # seconds for one DNS query
SPF_TIME = 10.0  # seconds for a whole SPF evaluation (RFC 7208 suggests at least 20 for MTAs)
_MAX_HEADER_BLOCK = 256 * 1024  # the header block read (a message's headers are a few KB)
_MAX_AR_CHARS = 8000  # an Authentication-Results value longer than this is not parsed

# authres with the DMARC method (RFC 7489's ``header.from``).
_AUTHRES = authres.FeatureContext(authres.dmarc)


@dataclass(frozen=True)
class Verdict:
    """What was found about one message's sender. ``detail`` names methods and results only
    (``dmarc=pass``, ``dkim=pass aligned``), never a domain or an address: it is logged."""

    verified: bool
    method: str  # "authentication-results" | "checked" | "none"
    detail: str

    def to_meta(self) -> dict[str, Any]:
        return {"verified": self.verified, "method": self.method, "detail": self.detail}


@dataclass(frozen=True)
class SmtpPeer:
    """What the SMTP receiver knows of the connection a message came by."""

    ip: str
    helo: str
    mail_from: str  # the envelope sender, "" for a bounce


# --- entry point -------------------------------------------------------------------------


def verify(
    settings: EmailSettings, raw: bytes, sender: str, peer: SmtpPeer | None = None
) -> Verdict:
    """The verdict for one raw message whose From address the parser read as ``sender``.

    ``peer`` is None for mail the city's own mail server delivered (IMAP, a pipe transport):
    its Authentication-Results are believed. From the SMTP receiver, they are believed only
    from a trusted relay, and the receiver checks DKIM, SPF and DMARC itself otherwise (or
    when the relay's results do not pass)."""
    headers = _headers(raw)
    froms = headers.get_all("From") or []
    addresses = [a for _, a in getaddresses([str(v)[:4000] for v in froms]) if a]
    if len(froms) != 1 or len(addresses) != 1:
        # RFC 7489 section 6.6.1: no single author domain, nothing to align with.
        return Verdict(False, "none", f"{len(froms)} From header(s), {len(addresses)} address(es)")
    domain = _domain(sender)
    if domain is None or _domain(addresses[0]) != domain:
        return Verdict(False, "none", "no usable From domain")

    found: Verdict | None = None
    if peer is None or _trusted_relay(settings, peer.ip):
        found = from_authentication_results(
            [str(v) for v in headers.get_all("Authentication-Results") or []],
            settings.email_authserv_id,
            domain,
        )
        if found.verified or peer is None:
            return found
    assert peer is not None
    try:
        with _nameserver(settings.dns_nameserver):
            checked = check(raw, domain, peer)
    except Exception as exc:  # a bad DNS_NAMESERVER, a library's surprise: never a lost mail
        log.warning("email: sender check failed (%s); the mail is unverified", type(exc).__name__)
        checked = Verdict(False, "checked", f"check failed: {type(exc).__name__}")
    if found is not None and not checked.verified:
        return Verdict(False, "checked", f"{found.detail}; {checked.detail}")
    return checked


# --- the receiving server's Authentication-Results ------------------------------------------


def from_authentication_results(values: list[str], authserv_id: str, domain: str) -> Verdict:
    """The verdict the city's own server gave (see the module doc), from the values of the
    message's Authentication-Results headers, topmost first."""
    wanted = authserv_id.strip().lower()
    if not wanted:
        return Verdict(False, "none", "EMAIL_AUTHSERV_ID not set")
    ours: list[list[Any]] = []
    for value in values:
        if len(value) > _MAX_AR_CHARS:
            continue
        value = " ".join(value.split())
        head = value[: len(wanted) + 1].lower()
        if not (head == wanted or (head.startswith(wanted) and head[-1] in " ;(")):
            continue  # another server's, or a forgery under another name: not read at all
        try:
            header = _AUTHRES.parse_value(value)
        except Exception:  # authres raises its own SyntaxError and others on garbage
            log.info("email: an Authentication-Results header of our server is unreadable")
            continue
        if header.authserv_id == wanted:
            ours.append(list(header.results))
    if not ours:
        return Verdict(False, "none", "no Authentication-Results from EMAIL_AUTHSERV_ID")

    def topmost(method: str) -> list[Any]:
        for results in ours:
            found = [r for r in results if str(r.method).lower() == method]
            if found:
                return found
        return []

    dmarc_results = topmost("dmarc")
    if dmarc_results:
        result = dmarc_results[0]
        named = _property(result, "header", "from")
        verdict = str(result.result).lower()
        if named is None or _domain("@" + named) != domain:
            # Every DMARC filter names the domain it evaluated; one that does not, or names
            # another (two parsers reading a tricky From differently), vouches for nothing.
            return Verdict(False, "authentication-results", "dmarc not for the From domain")
        return Verdict(verdict == "pass", "authentication-results", f"dmarc={verdict}")
    details = []
    for result in topmost("dkim"):
        signer = _property(result, "header", "d") or _property(result, "header", "i") or ""
        aligned = _aligned(_domain("@" + signer.rpartition("@")[2]), domain, "r")
        details.append(f"dkim={result.result}{' aligned' if aligned else ''}")
        if str(result.result).lower() == "pass" and aligned:
            return Verdict(True, "authentication-results", "; ".join(details))
    for result in topmost("spf"):
        identity = _property(result, "smtp", "mailfrom") or _property(result, "smtp", "helo") or ""
        aligned = _aligned(_domain("@" + identity.rpartition("@")[2]), domain, "r")
        details.append(f"spf={result.result}{' aligned' if aligned else ''}")
        if str(result.result).lower() == "pass" and aligned:
            return Verdict(True, "authentication-results", "; ".join(details))
    return Verdict(False, "authentication-results", "; ".join(details) or "no dmarc, dkim, spf")


def _property(result: Any, kind: str, name: str) -> str | None:
    for prop in getattr(result, "properties", None) or ():
        if str(prop.type).lower() == kind and str(prop.name).lower() == name:
            return str(prop.value).strip().strip('"')
    return None


# --- the gateway's own check -----------------------------------------------------------------


def check(raw: bytes, domain: str, peer: SmtpPeer) -> Verdict:
    """DKIM, SPF and DMARC alignment for the From ``domain`` (an A-label, lower case), with the
    resolver ``_nameserver`` set up."""
    details: list[str] = []
    try:
        record = dmarc_record(domain)
    except _TempError:
        return Verdict(False, "checked", "dmarc=temperror")
    adkim = "s" if record.get("adkim") == "s" else "r"
    aspf = "s" if record.get("aspf") == "s" else "r"
    details.append("dmarc record" if record else "no dmarc record")

    for signer in _dkim_signers(raw):
        aligned = _aligned(signer, domain, adkim)
        details.append(f"dkim=pass{' aligned' if aligned else ''}")
        if aligned:
            return Verdict(True, "checked", "; ".join(details))
    if not any(d.startswith("dkim=") for d in details):
        details.append("dkim=none or fail")

    identity = peer.mail_from or (f"postmaster@{peer.helo}" if peer.helo else "")
    result = "none"
    if identity and peer.ip:
        try:
            result, _code, _why = spf.query(
                i=_plain_ip(peer.ip), s=identity, h=peer.helo or "unknown", querytime=SPF_TIME
            ).check()
        except Exception as exc:  # pyspf on a malformed identity or address
            log.info("email: SPF not evaluated (%s)", type(exc).__name__)
            result = "permerror"
    aligned = _aligned(_domain(identity), domain, aspf)
    details.append(f"spf={result}{' aligned' if aligned else ''}")
    return Verdict(result == "pass" and aligned, "checked", "; ".join(details))


def dmarc_record(domain: str) -> dict[str, str]:
    """The DMARC record's tags for ``domain`` (RFC 7489 section 6.6.3: the domain's own, else its
    organizational domain's); {} when there is none. Raises _TempError when DNS fails."""
    for name in dict.fromkeys((domain, organizational_domain(domain))):
        records = [
            r for r in _txt(f"_dmarc.{name}") if r.split(b";", 1)[0].strip().lower() == b"v=dmarc1"
        ]
        if len(records) == 1:  # several records: none (RFC 7489 section 6.6.3)
            tags: dict[str, str] = {}
            for part in records[0].decode("ascii", "replace").split(";"):
                key, _, value = part.partition("=")
                tags[key.strip().lower()] = value.strip().lower()
            return tags
    return {}


def _dkim_signers(raw: bytes) -> list[str]:
    """The d= domains of the DKIM signatures that verify and cover the whole body."""
    try:
        message = dkim.DKIM(raw, timeout=int(DNS_TIMEOUT), logger=_DKIM_LOG)
        count = sum(1 for name, _ in message.headers if name.lower() == b"dkim-signature")
    except Exception:  # dkimpy on an unparsable message
        return []
    signers = []
    for index in range(min(count, MAX_SIGNATURES)):
        try:
            valid = message.verify(idx=index, dnsfunc=_dkim_txt)
        except Exception as exc:  # a malformed signature or key: this one does not count
            log.debug("email: DKIM signature %d invalid (%s)", index, type(exc).__name__)
            continue
        fields = message.signature_fields or {}
        if valid and b"l" not in fields:
            signer = _domain("@" + fields.get(b"d", b"").decode("ascii", "replace"))
            if signer:
                signers.append(signer)
    return signers


# dkimpy logs key lookups with the selector and domain at ERROR level; ours says what matters.
_DKIM_LOG = logging.getLogger(__name__ + ".dkimpy")
_DKIM_LOG.setLevel(logging.CRITICAL)


# --- domains and alignment ----------------------------------------------------------------


@lru_cache(maxsize=1)
def _public_suffixes() -> PublicSuffixList:
    # The list shipped in the package: offline, never fetched.
    return PublicSuffixList()


def organizational_domain(domain: str) -> str:
    """example.org for mail.example.org, example.co.uk for a.example.co.uk (RFC 7489 3.2)."""
    return _public_suffixes().privatesuffix(domain) or domain


def _aligned(signer: str | None, domain: str, mode: str) -> bool:
    if not signer:
        return False
    if mode == "s":
        return signer == domain
    return organizational_domain(signer) == organizational_domain(domain)


def _domain(address: str) -> str | None:
    """The domain of an address as an A-label in lower case; None when there is none."""
    domain = address.rpartition("@")[2].strip().strip(">").rstrip(".").lower()
    if not domain or "@" not in address:
        return None
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None


def _headers(raw: bytes) -> Any:
    block = raw[:_MAX_HEADER_BLOCK]
    for end in (b"\r\n\r\n", b"\n\n"):
        at = block.find(end)
        if at >= 0:
            block = block[: at + len(end)]
            break
    return BytesHeaderParser(policy=compat32).parsebytes(block)


def _plain_ip(ip: str) -> str:
    address = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(address)


def _trusted_relay(settings: EmailSettings, ip: str) -> bool:
    try:
        address = ipaddress.ip_address(_plain_ip(ip))
    except ValueError:
        return False
    for item in settings.smtp_receiver_trusted_relays.split(","):
        if item.strip():
            try:
                if address in ipaddress.ip_network(item.strip(), strict=False):
                    return True
            except ValueError:
                log.warning("SMTP_RECEIVER_TRUSTED_RELAYS: %r is not an address", item.strip())
    return False


# --- DNS ---------------------------------------------------------------------------------


class _TempError(Exception):
    pass


_RESOLVER: contextvars.ContextVar[dns.resolver.Resolver | None] = contextvars.ContextVar(
    "email_authentication_resolver", default=None
)


def resolver(nameserver: str) -> dns.resolver.Resolver:
    """A resolver asking ``nameserver`` ("host", "host:port", "[v6]:port"), or the system's."""
    if not nameserver.strip():
        made = dns.resolver.Resolver()
    else:
        host, port = nameserver.strip(), 53
        if host.startswith("["):
            host, _, rest = host[1:].partition("]")
            port = int(rest[1:]) if rest.startswith(":") else 53
        elif host.count(":") == 1:
            host, _, number = host.partition(":")
            port = int(number)
        made = dns.resolver.Resolver(configure=False)
        made.nameservers = [host]
        made.port = port
    made.timeout = made.lifetime = DNS_TIMEOUT
    return made


@contextmanager
def _nameserver(nameserver: str) -> Iterator[None]:
    token = _RESOLVER.set(resolver(nameserver))
    try:
        yield
    finally:
        _RESOLVER.reset(token)


def _current() -> dns.resolver.Resolver:
    return _RESOLVER.get() or resolver("")


def _txt(name: str) -> list[bytes]:
    """The TXT records at ``name``, each one's strings joined; [] when there are none."""
    try:
        answer = _current().resolve(name, "TXT", search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.DNSException, OSError) as exc:
        raise _TempError(type(exc).__name__) from exc
    return [b"".join(r.strings) for r in answer]


def _dkim_txt(name: bytes | str, timeout: float = DNS_TIMEOUT) -> bytes | None:
    """dkimpy's DNS function: the key record, or None."""
    text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
    try:
        records = _txt(text.rstrip("."))
    except _TempError as exc:
        raise dkim.DnsTimeoutError(str(exc)) from exc
    return records[0] if records else None


def _spf_lookup(name: str, qtype: str, strict: Any = True, timeout: float = 30) -> list[Any]:
    """pyspf's DNS function, answering as pyspf's own dnspython one does, with our resolver.

    pyspf looks DNS up through its module-level ``DNSLookup`` (its own tests swap it the same
    way); it is replaced once, below, and asks the resolver set for the current check."""
    found: list[Any] = []
    try:
        answer = _current().resolve(name, qtype, lifetime=min(timeout, DNS_TIMEOUT), search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return found
    except (dns.exception.DNSException, OSError) as exc:
        raise spf.TempError(f"DNS {type(exc).__name__}") from exc
    for rdata in answer:
        if qtype in ("A", "AAAA"):
            found.append(((name, qtype), rdata.address))
        elif qtype == "MX":
            found.append(((name, qtype), (rdata.preference, rdata.exchange)))
        elif qtype == "PTR":
            found.append(((name, qtype), rdata.target.to_text(True)))
        elif qtype in ("TXT", "SPF"):
            found.append(((name, qtype), rdata.strings))
    return found


spf.DNSLookup = _spf_lookup
