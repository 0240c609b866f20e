"""The Telegram plugin's tests, its fake Bot API server (``fake_api``), builders of Bot API
updates (``updates``) and its kit for the registry-driven harness (``kit``,
tests/channel_kit.py). Not shipped in the wheel (pyproject excludes ``channels.*.tests``)."""
