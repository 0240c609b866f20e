"""The installed channel plugins (gateway.plugins): one line each.

The order matters where two plugins carry the same channel: the first one configured sends
the replies that do not say which provider they came through.
"""

from channels.email.plugin import plugin as email
from channels.telegram.plugin import plugin as telegram
from channels.twilio.plugin import plugin as twilio
from channels.vonage.plugin import plugin as vonage

PLUGINS = [
    twilio,
    telegram,
    email,
    vonage,
]
