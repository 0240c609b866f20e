"""The Twilio plugin's tests (SMS and voice webhooks, the recordings), its fake REST API
(``fake_api``) and its kit for the registry-driven harness (``kit``, tests/channel_kit.py).
Not shipped in the wheel (pyproject's packages.find excludes ``channels.*.tests``)."""
