"""Email's settings (channels/email/doc.md): the gateway's own address, replies sent through
SMTP, mail read from an IMAP mailbox and/or received by the gateway's own SMTP receiver."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, model_validator

from gateway.settings import PathText, PluginSettings, Secret, Settings, SettingsError, is_loopback

# The first choice is the default; none (in clear) only to a loopback host (see the class).
ImapSecurity = Literal["tls", "starttls", "none"]
SmtpSecurity = Literal["starttls", "tls", "none"]
SECURITY_CHOICES: dict[str, tuple[str, ...]] = {
    "imap": get_args(ImapSecurity),
    "smtp": get_args(SmtpSecurity),
}


class EmailSettings(PluginSettings):
    email_address: str = ""  # e.g. participez@ville.fr; plus addresses route to campaigns
    email_max_bytes: int = 25 * 1024 * 1024  # a whole message
    email_max_attachment_bytes: int = 10 * 1024 * 1024  # each kept attachment
    imap_host: str = ""
    imap_port: int = 993
    imap_user: str = ""
    imap_password: Secret = ""
    imap_security: ImapSecurity = "tls"  # none: loopback and tests only
    imap_mailbox: str = "INBOX"
    imap_poll_seconds: int = 60  # between passes when the server has no IDLE
    imap_idle_seconds: int = 300  # an IDLE wait, renewed (RFC 2177: under 29 minutes)
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: Secret = ""
    smtp_security: SmtpSecurity = "starttls"  # none: loopback and tests only
    smtp_ca_file: PathText = ""  # a CA bundle to trust besides the system's (a private CA)
    # Outbound pacing (gateway.pacing, docs/operations.md): messages a second from the
    # gateway's address; a relay that accepts more (the city's own) can be given more.
    smtp_messages_per_second: float = Field(default=2.0, ge=0)
    smtp_receiver_host: str = "127.0.0.1"
    smtp_receiver_port: int = 0  # > 0: `gateway serve` also receives mail by SMTP here
    # Whose sender is believed (channels/email/authentication.py): the authserv-id of the
    # city's receiving mail server, whose Authentication-Results headers are read; without
    # it, mail read by IMAP is never verified (filed for moderators, never answered).
    email_authserv_id: str = ""
    # Addresses or networks (comma-separated) of the mail servers that relay to the SMTP
    # receiver and write Authentication-Results as EMAIL_AUTHSERV_ID; from anyone else those
    # headers are ignored and the receiver checks DKIM, SPF and DMARC itself.
    smtp_receiver_trusted_relays: str = ""
    dns_nameserver: str = ""  # host[:port] for DKIM, SPF and DMARC look-ups; empty: the system's

    @property
    def configured(self) -> bool:
        return bool(self.smtp_host and self.email_address)

    @model_validator(mode="after")
    def _mail_in_clear_only_to_this_machine(self) -> EmailSettings:
        # In clear, the mailbox password and residents' mail cross the network readable by
        # anyone on the path: only to this machine (a local relay, a test server).
        for name, choices in SECURITY_CHOICES.items():
            encrypted = " or ".join(choice for choice in choices if choice != "none")
            host = getattr(self, f"{name}_host")
            if getattr(self, f"{name}_security") == "none" and host and not is_loopback(host):
                raise SettingsError(
                    f"GATEWAY_{name.upper()}_SECURITY=none sends the password and residents' "
                    f"mail in clear: allowed only to a loopback host (127.0.0.1, ::1, "
                    f"localhost), not {host!r}; use {encrypted}"
                )
        return self


def of(settings: Settings) -> EmailSettings:
    return settings.section(EmailSettings)
