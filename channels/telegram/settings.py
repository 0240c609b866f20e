"""Telegram's settings (``GATEWAY_TELEGRAM_*``): the bot and its webhook."""

from __future__ import annotations

from pydantic import Field

from gateway.settings import PluginSettings, Secret, Settings


class TelegramSettings(PluginSettings):
    telegram_bot_token: Secret = ""
    telegram_webhook_secret: Secret = ""
    telegram_api_base: str = "https://api.telegram.org"
    telegram_max_file_bytes: int = 20 * 1024 * 1024  # the Bot API's own limit for bots
    # Outbound pacing (gateway.pacing, docs/operations.md): the Bot API's FAQ asks for no more
    # than one message a second in a chat and about 30 a second in all; kept under the 30.
    telegram_messages_per_second_per_chat: float = Field(default=1.0, ge=0)
    telegram_messages_per_second: float = Field(default=25.0, ge=0)

    @property
    def configured(self) -> bool:
        return bool(self.telegram_bot_token)


def of(settings: Settings) -> TelegramSettings:
    return settings.section(TelegramSettings)
