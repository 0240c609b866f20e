"""Settings as an operator gives them: the environment, the settings file (GATEWAY_ prefix or
not), the defaults; a value the gateway cannot use is refused naming its variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.settings import Settings, SettingsError
from tests.conftest import REPO, TEST_CAMPAIGNS

NO_FILE = {"GATEWAY_SETTINGS_FILE": os.devnull}


def refusal(environ: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as refused:
        Settings.load({**NO_FILE, **environ})
    message = str(refused.value)
    assert "\n" not in message
    # Only SettingsError is seen: pydantic's error, which shows the values, is not chained.
    assert refused.value.__cause__ is None and refused.value.__suppress_context__
    return message


# -- bad values ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["eighty", "8080.5", "8 080", ""])
def test_a_bad_whole_number_is_refused_naming_the_variable(value: str):
    message = refusal({"GATEWAY_PORT": value})
    assert message.startswith("GATEWAY_PORT must be a whole number")
    assert repr(value) in message


@pytest.mark.parametrize("value", ["maybe", "vrai", "2", "enabled"])
def test_a_bad_boolean_is_refused_naming_the_variable(value: str):
    message = refusal({"GATEWAY_VOICE_DELETE_RECORDINGS": value})
    assert message.startswith("GATEWAY_VOICE_DELETE_RECORDINGS must be true or false")
    assert repr(value) in message


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["1", "true", "yes", "on", "TRUE", " Yes ", "On"], True),
        # An empty value read as false before pydantic-settings too.
        (["0", "false", "no", "off", "False", " NO ", ""], False),
    ],
)
def test_booleans_in_the_words_operators_write(words: list[str], expected: bool):
    for word in words:
        loaded = Settings.load({**NO_FILE, "GATEWAY_EMBEDDED_WORKER": word})
        assert loaded.embedded_worker is expected, word


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("GATEWAY_DECIDIM_URL", "participer.ville.fr", "root URL"),
        ("GATEWAY_DECIDIM_URL", "http://participer.ville.fr", "must use https"),
        ("GATEWAY_PODCAST_IMAGE_URL", "radio.jpg", "full http(s) address of an image"),
        ("GATEWAY_PODCAST_IMAGE_URL", "ftp://example.org/a.jpg", "full http(s) address"),
    ],
)
def test_a_bad_url_is_refused_naming_the_variable(variable: str, value: str, words: str):
    message = refusal({variable: value})
    assert message.startswith(variable) and words in message


def test_a_bad_choice_names_the_choices():
    message = refusal({"GATEWAY_SMTP_SECURITY": "ssl"})
    assert message == "GATEWAY_SMTP_SECURITY must be one of starttls, tls, none, not 'ssl'"


def test_every_bad_value_is_named_at_once():
    message = refusal({"GATEWAY_PORT": "x", "GATEWAY_IMAP_PORT": "y"})
    assert "GATEWAY_PORT must be" in message and "GATEWAY_IMAP_PORT must be" in message


def test_a_secret_is_never_shown_in_a_refusal():
    with pytest.raises(SettingsError) as refused:
        Settings(smtp_password=918273645, decidim_api_secret=["s3cr3t-in-a-list"])
    message = str(refused.value)
    assert "GATEWAY_SMTP_PASSWORD must be text" in message
    assert "GATEWAY_DECIDIM_API_SECRET must be text" in message
    assert "918273645" not in message and "s3cr3t" not in message


def test_an_unknown_keyword_is_refused():
    with pytest.raises(SettingsError, match="GATEWAY_PROT is not a setting"):
        Settings(prot=8080)


def test_the_gateway_command_refuses_a_bad_value_in_one_line(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        {
            "GATEWAY_DATA_DIR": str(tmp_path / "data"),
            "GATEWAY_CAMPAIGNS_DIR": str(TEST_CAMPAIGNS),
            "GATEWAY_IMAP_POLL_SECONDS": "1min",
            "PYTHONPATH": str(REPO),
        }
    )
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "campaigns", "list"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line == "Error: GATEWAY_IMAP_POLL_SECONDS must be a whole number, not '1min'"
    assert not (tmp_path / "data").exists()


# -- the settings file and the environment --------------------------------------------------


def write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_settings_file_with_and_without_the_prefix(tmp_path: Path):
    settings_file = write(
        tmp_path / "agora.env",
        "# the gateway's settings",
        "GATEWAY_PORT=9001",
        "IMAP_PORT=1993",
        "  organisation = Ville d'exemple  ",
        'export GATEWAY_LANGUAGE="en"',
        "TIMEZONE='America/Montreal'",
        "EMBEDDED_WORKER=no",
        "a line without an equals sign",
        "UNKNOWN_SETTING=ignored",
    )
    loaded = Settings.load({"GATEWAY_SETTINGS_FILE": str(settings_file)})
    assert loaded.port == 9001 and loaded.imap_port == 1993
    assert loaded.organisation == "Ville d'exemple"
    assert loaded.language == "en" and loaded.timezone == "America/Montreal"
    assert loaded.embedded_worker is False
    assert loaded.smtp_port == 587  # the default where neither says


def test_the_environment_overrides_the_file_which_overrides_the_defaults(tmp_path: Path):
    settings_file = write(tmp_path / "agora.env", "PORT=9001", "GATEWAY_HOST=0.0.0.0")
    loaded = Settings.load(
        {"GATEWAY_SETTINGS_FILE": str(settings_file), "GATEWAY_PORT": "9002", "PORT": "1"}
    )
    assert loaded.port == 9002  # the environment's GATEWAY_PORT, never an unprefixed PORT
    assert loaded.host == "0.0.0.0"  # noqa: S104 - the file's, where the environment is silent
    assert loaded.language == "fr"  # the default


def test_gateway_env_in_the_working_folder_is_read_without_being_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    assert Settings.load({}).port == 8080
    write(tmp_path / "gateway.env", "PORT=9003")
    assert Settings.load({}).port == 9003
    assert Settings.load({"GATEWAY_PORT": "9004"}).port == 9004


def test_a_bad_value_in_the_file_names_the_variable(tmp_path: Path):
    settings_file = write(tmp_path / "agora.env", "MAX_TEXT_CHARS=lots")
    with pytest.raises(SettingsError, match="GATEWAY_MAX_TEXT_CHARS must be a whole number"):
        Settings.load({"GATEWAY_SETTINGS_FILE": str(settings_file)})


def test_a_settings_file_that_cannot_be_read_is_named(tmp_path: Path):
    missing = tmp_path / "missing.env"
    with pytest.raises(SettingsError, match="GATEWAY_SETTINGS_FILE") as refused:
        Settings.load({"GATEWAY_SETTINGS_FILE": str(missing)})
    assert str(missing) in str(refused.value)


def test_only_prefixed_variables_are_read_from_the_environment():
    loaded = Settings.load(
        {**NO_FILE, "PORT": "1", "gateway_port": "2", "GATEWAY_NOT_A_SETTING": "x"}
    )
    assert loaded.port == 8080


def test_keyword_settings_read_neither_the_environment_nor_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("GATEWAY_PORT", "9005")
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "gateway.env", "HOST=0.0.0.0")
    settings = Settings(language="en")
    assert settings.port == 8080 and settings.host == "127.0.0.1" and settings.language == "en"
    assert Settings.load().port == 9005  # the process environment, by default


# -- made once, never changed ---------------------------------------------------------------


def test_settings_are_immutable_and_changed_copies_are_checked():
    settings = Settings(port=8081)
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 8082
    changed = settings.with_overrides(port=8082)
    assert (settings.port, changed.port) == (8081, 8082)
    assert changed == Settings(port=8082) and hash(changed) == hash(Settings(port=8082))
    with pytest.raises(SettingsError, match="GATEWAY_PORT must be a whole number"):
        settings.with_overrides(port="x")


def test_a_path_given_by_a_caller_is_kept_as_text(tmp_path: Path):
    settings = Settings(data_dir=tmp_path / "data")  # type: ignore[arg-type]
    assert settings.data_dir == str(tmp_path / "data")
    assert settings.data_path == (tmp_path / "data").resolve()


# -- each channel plugin's own settings ---------------------------------------------------------


def test_a_plugin_setting_goes_to_its_plugins_section():
    from channels.email.settings import EmailSettings
    from channels.telegram.settings import TelegramSettings

    settings = Settings(telegram_bot_token="123:abc", port=8081)
    assert settings.section(TelegramSettings).telegram_bot_token == "123:abc"
    assert settings.section(EmailSettings).imap_port == 993  # the plugin's default
    assert "telegram_bot_token" not in Settings.model_fields  # the core does not declare it
    changed = settings.with_overrides(port=8082)
    assert changed.section(TelegramSettings).telegram_bot_token == "123:abc"
    assert changed != settings.with_overrides(port=8082, telegram_bot_token="456:def")
    assert settings.values()["telegram_bot_token"] == "123:abc"
    assert settings.values()["port"] == 8081


def test_a_plugin_setting_is_read_from_the_environment_and_the_file(tmp_path: Path):
    from channels.email.settings import EmailSettings

    file = tmp_path / "gateway.env"
    file.write_text("IMAP_HOST=imap.example.org\nGATEWAY_IMAP_PORT=1993\n", encoding="utf-8")
    settings = Settings.load({"GATEWAY_SETTINGS_FILE": str(file), "GATEWAY_IMAP_PORT": "2993"})
    email = settings.section(EmailSettings)
    assert (email.imap_host, email.imap_port) == ("imap.example.org", 2993)


def test_bad_values_of_the_core_and_of_plugins_are_named_at_once():
    message = refusal(
        {"GATEWAY_PORT": "x", "GATEWAY_IMAP_PORT": "y", "GATEWAY_TELEGRAM_BOT_TOKEN": "ok"}
    )
    assert "GATEWAY_PORT must be a whole number" in message
    assert "GATEWAY_IMAP_PORT must be a whole number" in message


def test_a_plugins_own_rule_is_checked():
    message = refusal({"GATEWAY_IMAP_HOST": "mail.example.org", "GATEWAY_IMAP_SECURITY": "none"})
    assert "GATEWAY_IMAP_SECURITY=none" in message and "loopback" in message


def test_the_settings_of_a_plugin_not_installed_are_not_there():
    from gateway.settings import PluginSettings

    class Elsewhere(PluginSettings):
        elsewhere_token: str = ""

    with pytest.raises(LookupError, match="not the settings of an installed channel plugin"):
        Settings().section(Elsewhere)
    with pytest.raises(SettingsError, match="GATEWAY_ELSEWHERE_TOKEN is not a setting"):
        Settings(elsewhere_token="x")


def test_a_setting_declared_twice_stops_the_gateway(monkeypatch: pytest.MonkeyPatch):
    from gateway import plugins, settings
    from gateway.settings import PluginSettings

    class Clash(PluginSettings):
        port: int = 1

    clashing = plugins.ChannelPlugin(
        name="clash", channels=("clash",), configured=lambda s: False, settings=Clash
    )
    registered = plugins.installed()
    monkeypatch.setattr(plugins, "installed", lambda: (*registered, clashing))
    settings._sections.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="'port' of the 'clash' channel plugin"):
            Settings()
    finally:
        monkeypatch.undo()
        settings._sections.cache_clear()
    assert Settings().port == 8080
