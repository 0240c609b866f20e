"""Real mail servers for the email tests: a private Debian dovecot (IMAP) and an SMTP sink.

``DovecotServer`` runs Debian's ``dovecot`` binary with a configuration of its own, written in
a temporary directory (``dovecot -F -c <file>``): it never reads /etc/dovecot, never touches the
system's service, and listens on a free loopback port (IMAP only, no TLS, PLAIN/LOGIN
authentication for one passwd-file user, maildir storage so keywords such as ``$AgoraStored``
stick). ``SmtpSink`` is an aiosmtpd server on loopback that records what the gateway sends,
optionally with AUTH, STARTTLS, and a scripted failure for the next DATA. ``DnsServer`` is a
dnslib name server on loopback (UDP and TCP) serving the TXT and A records a test sets (DKIM
keys, SPF and DMARC records), NXDOMAIN for everything else: sender authentication is tested
with real DNS, offline.

Pytest fixtures live in the conftest files; this module only holds the servers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.policy
import errno
import grp
import imaplib
import ipaddress
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypedDict

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

# The module, not its names: tests/fixtures.py may import this module while it is loading.
from tests import fixtures

# Debian's system user for mail (uid/gid 8): an unprivileged uid that exists on every Debian
# system, which dovecot accepts once first_valid_uid/gid allow it.
MAIL_SYSTEM_USER = "mail"
START_TIMEOUT = 10.0
STOP_GRACE = 0.5  # after SIGTERM, before SIGKILL
STOP_TIMEOUT = 10.0
_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]", re.IGNORECASE)


def _quote(mailbox: str) -> str:
    """A mailbox name as an IMAP astring (imaplib sends arguments as they are)."""
    if mailbox and re.fullmatch(r"[A-Za-z0-9._/&+-]+", mailbox):
        return mailbox
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(result: tuple[str, list[Any]], what: str) -> list[Any]:
    status, data = result
    if status != "OK":
        raise AssertionError(f"IMAP {what} failed: {status} {data!r}")
    return data


def _process_start_time(pid: int) -> str | None:
    """The start time of a live (not zombie) process, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def _children(parent: int) -> dict[int, str]:
    """Direct children of a process, each with its start time (to survive pid reuse)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == parent and fields[0] not in ("Z", "X"):
            found[int(entry.name)] = fields[19]
    return found


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signum)


def _reap(group: int, children: dict[int, str]) -> None:
    """Wait for the master's children to exit, killing laggards; fail if one survives."""

    def alive() -> list[int]:
        return [pid for pid, started in children.items() if _process_start_time(pid) == started]

    deadline = time.monotonic() + STOP_GRACE
    while alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not alive():
        return
    _signal_group(group, signal.SIGKILL)
    for pid in alive():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + STOP_TIMEOUT
    while alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if alive():
        raise RuntimeError(f"dovecot processes survived SIGKILL: {alive()}")


class DovecotServer:
    """A private Debian dovecot on 127.0.0.1, IMAP only, one user, maildir in a temp dir."""

    def __init__(self, user: str = "agora", password: str | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.user = user
        self.password = password or "pw-" + secrets.token_hex(8)
        self.directory: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    # -- paths and settings ------------------------------------------------------------------
    def _dir(self) -> Path:
        if self.directory is None:
            raise RuntimeError("DovecotServer is not started")
        return self.directory

    @property
    def config_path(self) -> Path:
        return self._dir() / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self._dir() / "dovecot.log"

    @property
    def mail_dir(self) -> Path:
        """The user's maildir (owned by the mail uid; read it as root only)."""
        return self._dir() / "mail" / self.user

    @property
    def url(self) -> str:
        return f"imap://{self.host}:{self.port}"

    @property
    def instance_name(self) -> str:
        """In every dovecot process title (``dovecot-<instance>/imap``): for ``pgrep -f``."""
        return self._dir().name

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def settings_overrides(self, mailbox: str = "INBOX") -> dict[str, Any]:
        """The gateway settings that point at this server (``Settings.with_overrides``)."""
        return {
            "imap_host": self.host,
            "imap_port": self.port,
            "imap_user": self.user,
            "imap_password": self.password,
            "imap_security": "none",
            "imap_mailbox": mailbox,
        }

    def log(self) -> str:
        """Everything dovecot wrote: its log files and the master's stderr."""
        parts = []
        for name in ("dovecot.log", "dovecot-info.log", "stderr.log"):
            path = self._dir() / name
            if path.exists():
                parts.append(f"--- {name}\n{path.read_text(errors='replace')}")
        return "\n".join(parts)

    # -- life cycle -----------------------------------------------------------------------------
    def _accounts(self) -> tuple[int, int, str]:
        """(mail uid, mail gid, rootless user) for the processes dovecot starts.

        As root: Debian's ``mail`` user owns the mail, dovenull/dovecot run the login and
        internal processes. As another user (rootless dovecot): that user runs everything.
        """
        if os.geteuid() == 0:
            try:
                mail = pwd.getpwnam(MAIL_SYSTEM_USER)
                pwd.getpwnam("dovenull")
                pwd.getpwnam("dovecot")
            except KeyError as exc:
                fixtures.unavailable(f"dovecot's system users are missing ({exc})")
                raise
            return mail.pw_uid, mail.pw_gid, ""
        # Not root: every process runs as the current user, without chroots.
        me = pwd.getpwuid(os.geteuid())
        return me.pw_uid, os.getegid(), me.pw_name

    def _config(self, directory: Path, uid: int, gid: int, same_user: str) -> str:
        lines = [
            "# Written by channels/email/tests/servers.py for one test session: nothing from /etc.",
            f"base_dir = {directory}/run",
            f"state_dir = {directory}/state",
            f"instance_name = {directory.name}",
            f"log_path = {directory}/dovecot.log",
            f"info_log_path = {directory}/dovecot-info.log",
            f"debug_log_path = {directory}/dovecot-info.log",
            "protocols = imap",
            f"listen = {self.host}",
            "ssl = no",
            "disable_plaintext_auth = no",
            "auth_mechanisms = plain login",
            "auth_verbose = yes",
            "auth_failure_delay = 0 secs",  # wrong passwords: ~0.5 s (auth timer), not 2 s
            f"first_valid_uid = {uid}",
            f"last_valid_uid = {uid}",
            f"first_valid_gid = {gid}",
            f"last_valid_gid = {gid}",
            f"mail_location = maildir:{directory}/mail/%u",
            "mail_fsync = never",
            # IDLE: inotify reports new mail at once; this is the fallback's period.
            "mailbox_idle_check_interval = 1 secs",
            "passdb {",
            "  driver = passwd-file",
            f"  args = scheme=PLAIN username_format=%u {directory}/passwd",
            "}",
            "userdb {",
            "  driver = static",
            f"  args = uid={uid} gid={gid} home={directory}/home/%u",
            "}",
            "service imap-login {",
            "  inet_listener imap {",
            f"    address = {self.host}",
            f"    port = {self.port}",
            "  }",
            "  inet_listener imaps {",
            "    port = 0",
            "  }",
            "}",
            # No auth penalty (anvil's up-to-15 s delay after wrong passwords): Dovecot's
            # documented switch is an unusable penalty socket.
            "service anvil {",
            "  unix_listener anvil-auth-penalty {",
            "    mode = 0",
            "  }",
            "}",
        ]
        if same_user:
            # Rootless dovecot: one user for everything, and no chroot.
            lines += [
                f"default_login_user = {same_user}",
                f"default_internal_user = {same_user}",
                f"default_internal_group = {grp.getgrgid(gid).gr_name}",
                "service imap-login {",
                "  chroot =",
                "}",
                "service anvil {",
                "  chroot =",
                "}",
            ]
        else:
            lines += ["default_login_user = dovenull", "default_internal_user = dovecot"]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        """Start dovecot; after ``stop(cleanup=False)``, again on the same port and mail."""
        if self.process is not None:
            raise RuntimeError("dovecot is already running")
        binary = self._binary()
        fresh = self.directory is None
        if fresh:
            self._prepare()
        for attempt in range(3):
            try:
                self._launch(binary)
                return
            except BaseException as exc:
                problem = self.log()
                self.stop(cleanup=fresh)
                if fresh and attempt < 2 and "Address already in use" in problem:
                    self._prepare()  # another process took the free port: pick another
                    continue
                if os.geteuid() != 0 and not isinstance(exc, KeyboardInterrupt):
                    user = pwd.getpwuid(os.geteuid()).pw_name
                    fixtures.unavailable(
                        f"dovecot could not start as the non-root user {user} (run the email "
                        f"tests as root, or see dovecot's log):\n{exc}"
                    )
                raise

    @staticmethod
    def _binary() -> str:
        binary = shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/sbin")
        if binary is None or not Path("/usr/lib/dovecot/imap").exists():
            fixtures.unavailable("dovecot-imapd is not installed (apt-get install dovecot-imapd)")
        assert binary is not None
        version = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if not version.startswith("2.3."):
            fixtures.unavailable(f"the tests write a dovecot 2.3 configuration, found {version!r}")
        return binary

    def _prepare(self) -> None:
        """A new directory: configuration, passwd file, mail and home directories."""
        uid, gid, same_user = self._accounts()
        # Its own short directory (sockets under base_dir have a length limit), which the
        # mail uid and dovecot's users can traverse: pytest's tmp_path is private to root.
        directory = Path(tempfile.mkdtemp(prefix="agora-dovecot-"))
        self.directory = directory
        directory.chmod(0o711)
        for path in (directory / "mail", directory / "home", directory / "home" / self.user):
            path.mkdir(mode=0o700)
            os.chown(path, uid, gid)
        passwd = directory / "passwd"
        passwd.write_text(f"{self.user}:{{PLAIN}}{self.password}::::::\n")
        passwd.chmod(0o644)  # read by the auth process (user dovecot)
        self.port = fixtures.free_port()
        self.config_path.write_text(self._config(directory, uid, gid, same_user))

    def _launch(self, binary: str) -> None:
        with (self._dir() / "stderr.log").open("ab") as stderr:
            self.process = subprocess.Popen(
                [binary, "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,  # its own process group, for stop()
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"dovecot exited with {self.process.returncode} on start:\n{self.log()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                    greeting = sock.makefile("rb").readline()
                if greeting.startswith(b"* OK"):
                    return
                last = RuntimeError(f"unexpected greeting {greeting!r}")
            except OSError as exc:
                last = exc
            time.sleep(0.02)
        raise RuntimeError(
            f"dovecot did not accept IMAP connections on {self.host}:{self.port} within "
            f"{START_TIMEOUT:.0f} s ({last}):\n{self.log()}"
        )

    def stop(self, cleanup: bool = True) -> None:
        """Stop the master and every process it started; ``cleanup`` removes the directory
        (keep it to ``start()`` again with the same port, user and mail)."""
        process, self.process = self.process, None
        if process is not None:
            group = process.pid  # start_new_session: the master leads the group
            children = _children(process.pid)
            # SIGTERM to the whole group at once: the master alone would signal its children
            # and poll them each second (up to 6 s) before exiting.
            _signal_group(group, signal.SIGTERM)
            try:
                process.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                _signal_group(group, signal.SIGKILL)  # a test server: maildir survives this
                process.wait(STOP_TIMEOUT)
            _reap(group, children)
        if cleanup and self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- IMAP helpers ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def client(self, timeout: float = 10.0) -> Iterator[imaplib.IMAP4]:
        """A logged-in imaplib connection, logged out afterwards."""
        imap = imaplib.IMAP4(self.host, self.port, timeout=timeout)
        try:
            _check(imap.login(self.user, self.password), "LOGIN")
            yield imap
        finally:
            with contextlib.suppress(Exception):
                imap.logout()

    def append(self, raw: bytes, mailbox: str = "INBOX", flags: str = "") -> int:
        """Deliver a message as a mail client would; returns its UID (APPENDUID, UIDPLUS)."""
        with self.client() as imap:
            name = _quote(mailbox)
            status, data = imap.append(name, flags or None, None, raw)
            if status != "OK" and b"TRYCREATE" in b" ".join(d or b"" for d in data):
                _check(imap.create(name), "CREATE")
                status, data = imap.append(name, flags or None, None, raw)
            data = _check((status, data), "APPEND")
            found = _APPENDUID.search(data[0] or b"")
            if found is not None:
                return int(found.group(1))
            _check(imap.select(name, readonly=True), "EXAMINE")
            searched = _check(imap.uid("SEARCH", "ALL"), "UID SEARCH")
            return max(int(u) for u in searched[0].split())

    def flags(self, uid: int, mailbox: str = "INBOX") -> set[str]:
        """The flags and keywords of one message (``\\Seen``, ``$AgoraStored``...)."""
        with self.client() as imap:
            _check(imap.select(_quote(mailbox), readonly=True), "EXAMINE")
            data = _check(imap.uid("FETCH", str(uid), "(FLAGS)"), "UID FETCH")
            for item in data:
                line = item[0] if isinstance(item, tuple) else item
                if line and b"FLAGS" in line:
                    return {f.decode() for f in imaplib.ParseFlags(line)}
            raise AssertionError(f"no message with UID {uid} in {mailbox}: {data!r}")

    def uids(self, mailbox: str = "INBOX", criteria: str = "ALL") -> list[int]:
        with self.client() as imap:
            _check(imap.select(_quote(mailbox), readonly=True), "EXAMINE")
            data = _check(imap.uid("SEARCH", criteria), "UID SEARCH")
            return sorted(int(u) for u in (data[0] or b"").split())

    def count(self, mailbox: str = "INBOX") -> int:
        with self.client() as imap:
            data = _check(imap.select(_quote(mailbox), readonly=True), "EXAMINE")
            return int(data[0])


# -- SMTP ------------------------------------------------------------------------------------------
class SinkMessage(TypedDict):
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    message: EmailMessage  # parsed (policy.default) from data with "\n" line ends
    tls: bool  # sent after STARTTLS
    login: str | None  # the AUTH user, if any


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        # "Require AUTH" here rather than with aiosmtpd's auth_required, which warns
        # (UserWarning) when TLS is not required too.
        if self.sink.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        refusal = self.sink._recipient_refusal()
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return self.sink._receive(session, envelope)


class SmtpSink:
    """An SMTP server on 127.0.0.1 that records every message (aiosmtpd in a thread)."""

    def __init__(
        self,
        auth: tuple[str, str] | None = None,
        starttls: ssl.SSLContext | None = None,
        require_starttls: bool = False,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.auth = auth
        self.starttls = starttls
        self.require_starttls = require_starttls
        self.messages: list[SinkMessage] = []
        self.rejected: list[SinkMessage] = []  # answered with a fail_next() error
        self.received_at: list[float] = []  # time.time() of each of ``messages``
        self._failures: deque[tuple[int, str]] = deque()
        self._recipient_failures: deque[tuple[int, str]] = deque()
        self._changed = threading.Condition()
        self.controller: Controller | None = None

    @property
    def user(self) -> str:
        return self.auth[0] if self.auth else ""

    @property
    def password(self) -> str:
        return self.auth[1] if self.auth else ""

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def settings_overrides(self, ca_file: str = "") -> dict[str, Any]:
        """The gateway settings that send replies here (``Settings.with_overrides``)."""
        return {
            "smtp_host": self.host,
            "smtp_port": self.port,
            "smtp_user": self.user,
            "smtp_password": self.password,
            "smtp_security": "starttls" if self.starttls is not None else "none",
            "smtp_ca_file": ca_file,
        }

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if self.auth is None or not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = self.auth
        ok = secrets.compare_digest(data.login, user.encode()) and secrets.compare_digest(
            data.password, password.encode()
        )
        return AuthResult(success=ok, handled=False, auth_data=data.login.decode())

    def _receive(self, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content
        if raw is None:
            raw = envelope.content if isinstance(envelope.content, bytes) else b""
        # Parsed with "\n" line ends, as Python writes them (the parser keeps "\r\n" in bodies).
        parsed = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        record: SinkMessage = {
            "mail_from": envelope.mail_from or "",
            "rcpt_tos": list(envelope.rcpt_tos),
            "data": raw,
            "message": parsed,
            "tls": session.ssl is not None,
            "login": session.auth_data if isinstance(session.auth_data, str) else None,
        }
        with self._changed:
            if self._failures:
                code, message = self._failures.popleft()
                self.rejected.append(record)
                self._changed.notify_all()
                return f"{code} {message}"
            self.messages.append(record)
            self.received_at.append(time.time())
            self._changed.notify_all()
        return "250 2.0.0 OK: queued"

    def fail_next(self, code: int, message: str = "Try again later") -> None:
        """Answer the next DATA with ``code message`` (451 temporary, 550 permanent...)."""
        if not 400 <= code <= 599:
            raise ValueError(f"an SMTP error code is 4xx or 5xx, not {code}")
        with self._changed:
            self._failures.append((code, message))

    def refuse_next_recipient(
        self, code: int, message: str = "Greylisted, try again later"
    ) -> None:
        """Answer the next RCPT TO with ``code message``: where greylisting (450, 451) and an
        unknown mailbox (550) are usually answered, before DATA."""
        if not 400 <= code <= 599:
            raise ValueError(f"an SMTP error code is 4xx or 5xx, not {code}")
        with self._changed:
            self._recipient_failures.append((code, message))

    def _recipient_refusal(self) -> str | None:
        with self._changed:
            if not self._recipient_failures:
                return None
            code, message = self._recipient_failures.popleft()
            return f"{code} {message}"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[SinkMessage]:
        """Wait until ``count`` messages are recorded; they are returned."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    got = [
                        (m["mail_from"], m["rcpt_tos"], m["message"]["Subject"])
                        for m in self.messages
                    ]
                    raise AssertionError(
                        f"the SMTP sink got {len(self.messages)} message(s), not {count}, "
                        f"within {timeout} s: {got!r}; rejected: {len(self.rejected)}"
                    )
                self._changed.wait(left)
            return list(self.messages)

    def reset(self) -> None:
        with self._changed:
            self.messages.clear()
            self.received_at.clear()
            self.rejected.clear()
            self._failures.clear()
            self._recipient_failures.clear()

    def start(self) -> None:
        kwargs: dict[str, Any] = {}
        if self.auth is not None:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        if self.starttls is not None:
            kwargs.update(tls_context=self.starttls, require_starttls=self.require_starttls)
        for attempt in range(3):
            self.port = fixtures.free_port()
            controller = Controller(
                _SinkHandler(self),
                hostname=self.host,
                port=self.port,
                server_hostname="smtp-sink.test",  # no getfqdn() (a DNS lookup) on start
                **kwargs,
            )
            try:
                controller.start()
            except OSError as exc:  # another process took the free port: pick another
                if exc.errno != errno.EADDRINUSE or attempt == 2:
                    raise
                continue
            self.controller = controller
            return

    def stop(self) -> None:
        controller, self.controller = self.controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def self_signed_context(tmp_path: Path) -> tuple[ssl.SSLContext, str]:
    """A server TLS context for localhost/127.0.0.1 and the CA file a client must trust.

    A throwaway CA signs the server certificate (clients with VERIFY_X509_STRICT reject a
    certificate that is its own CA); both live in ``tmp_path``.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Agora test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    tmp_path.mkdir(parents=True, exist_ok=True)
    ca_file = tmp_path / "smtp-ca.pem"
    cert_file = tmp_path / "smtp-cert.pem"
    key_file = tmp_path / "smtp-key.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, str(ca_file)


class DnsServer:
    """A name server on 127.0.0.1 (dnslib, UDP and TCP on one port) for the records a test
    sets with ``txt``/``a``; every other name is NXDOMAIN, at once."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.records: dict[tuple[str, str], list[str]] = {}
        self.queries: list[tuple[str, str]] = []
        self._servers: list[Any] = []

    @property
    def nameserver(self) -> str:
        """The ``DNS_NAMESERVER`` setting that points the gateway here."""
        return f"{self.host}:{self.port}"

    def txt(self, name: str, text: str) -> None:
        self.records.setdefault((name.lower().rstrip("."), "TXT"), []).append(text)

    def a(self, name: str, address: str) -> None:
        self.records.setdefault((name.lower().rstrip("."), "A"), []).append(address)

    def reset(self) -> None:
        self.records.clear()
        self.queries.clear()

    def start(self) -> None:
        from dnslib import QTYPE, RCODE, RR, TXT, A
        from dnslib.server import BaseResolver, DNSLogger, DNSServer

        zone = self

        class Resolver(BaseResolver):  # type: ignore[misc]
            def resolve(self, request: Any, handler: Any) -> Any:
                reply = request.reply()
                name = str(request.q.qname).lower().rstrip(".")
                qtype = QTYPE[request.q.qtype]
                zone.queries.append((name, qtype))
                if not any(key[0] == name for key in zone.records):
                    reply.header.rcode = RCODE.NXDOMAIN
                    return reply
                for value in zone.records.get((name, qtype), []):
                    if qtype == "TXT":
                        data = value.encode()
                        chunks = [data[i : i + 255] for i in range(0, len(data), 255)]
                        rdata: Any = TXT(chunks)
                    else:
                        rdata = A(value)
                    reply.add_answer(RR(request.q.qname, request.q.qtype, rdata=rdata, ttl=60))
                return reply

        quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", logf=str)
        self.port = fixtures.free_port()
        for tcp in (False, True):
            server = DNSServer(Resolver(), address=self.host, port=self.port, tcp=tcp, logger=quiet)
            server.start_thread()
            self._servers.append(server)

    def stop(self) -> None:
        for server in self._servers:
            server.stop()
        self._servers.clear()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
