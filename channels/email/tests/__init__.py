"""The email plugin's tests: a corpus of real-shaped mails (``corpus/``), the servers they run
against (``servers``: Dovecot, an SMTP sink, a name server) and its kit for the registry-driven
harness (``kit``, tests/channel_kit.py). Not shipped in the wheel (pyproject excludes
``channels.*.tests``)."""
