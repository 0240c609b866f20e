"""Telegram's settings (``GATEWAY_TELEGRAM_*``): the bot and its webhook."""

from __future__ import annotations

from gateway.settings import PluginSettings, Secret, Settings


class TelegramSettings(PluginSettings):
    telegram_bot_token: Secret = ""
    telegram_webhook_secret: Secret = ""
    telegram_api_base: str = "https://api.telegram.org"
    telegram_max_file_bytes: int = 20 * 1024 * 1024  # the Bot API's own limit for bots

    @property
    def configured(self) -> bool:
        return bool(self.telegram_bot_token)


def of(settings: Settings) -> TelegramSettings:
    return settings.section(TelegramSettings)
