"""Fixtures that more than one of Twilio's test modules use: the app serving a set of voice
campaigns (``client``, ``make_client``) and a recording of real speech (``speech_wav``)."""

from channels.twilio.tests.test_voice_calls import client, make_client  # noqa: F401
from channels.twilio.tests.test_voice_recordings import speech_wav  # noqa: F401
