"""The fake Twilio REST API, checked through the official twilio library."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from channels.twilio.tests.fake_api import FakeTwilio, count_segments

RESIDENT = "+33612345678"
GATEWAY = "+33100000001"
SERVICE = "MG" + "1" * 32
ACCENTED = (
    "Merci ! Votre avis sur le parc a bien été reçu. Prochaine étape : "
    "réunion publique à la Maison des Fêtes, le 12 mai."
)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as running:
        yield running


@pytest.fixture
def twilio(fake: FakeTwilio) -> Client:
    fake.reset()
    return fake.twilio_client()


def _client(fake: FakeTwilio, sid: str, token: str) -> Client:
    client = Client(sid, token)
    client.api.base_url = fake.base_url
    client.region = client.edge = None
    return client


def _get(
    url: str, auth: tuple[str, str] | None = None, method: str = "GET"
) -> tuple[int, bytes, requests.structures.CaseInsensitiveDict[str]]:
    """What a download of a RecordingUrl does: plain HTTP with Basic auth."""
    response = requests.request(method, url, auth=auth, timeout=5)
    return response.status_code, response.content, response.headers


# -- sending a message -------------------------------------------------------


def test_create_message_returns_twilio_message_resource(twilio: Client, fake: FakeTwilio) -> None:
    message = twilio.messages.create(
        to=RESIDENT,
        from_=GATEWAY,
        body=ACCENTED,
        status_callback="https://gateway.example/twilio/status",
    )

    assert message.sid.startswith("SM") and len(message.sid) == 34
    int(message.sid[2:], 16)
    assert message.status == "queued"
    assert message.direction == "outbound-api"
    assert message.to == RESIDENT and message.from_ == GATEWAY
    assert message.body == ACCENTED
    # "ê"/"ç" are outside GSM-7: UCS-2, 116 characters > 70 -> 67 per segment -> 2.
    assert len(ACCENTED) == 116
    assert message.num_segments == "2"
    assert message.num_media == "0"
    assert message.price is None and message.price_unit == "USD"
    assert message.error_code is None and message.error_message is None
    assert message.api_version == "2010-04-01"
    assert message.date_created is not None and message.date_created.tzinfo is not None
    assert message.uri == f"/2010-04-01/Accounts/{fake.account_sid}/Messages/{message.sid}.json"
    assert message.subresource_uris == {
        "media": f"/2010-04-01/Accounts/{fake.account_sid}/Messages/{message.sid}/Media.json"
    }

    assert fake.messages == [
        {
            "To": RESIDENT,
            "From": GATEWAY,
            "Body": ACCENTED,
            "StatusCallback": "https://gateway.example/twilio/status",
            "sid": message.sid,
        }
    ]


def test_raw_create_response_matches_twilio_field_names(fake: FakeTwilio) -> None:
    client = fake.twilio_client()
    response = client.request(
        "POST",
        f"{fake.base_url}/2010-04-01/Accounts/{fake.account_sid}/Messages.json",
        data={"To": RESIDENT, "From": GATEWAY, "Body": "PARC Il faut plus de bancs"},
    )
    assert response.status_code == 201
    payload = json.loads(response.text)
    assert set(payload) == {
        "account_sid", "api_version", "body", "date_created", "date_sent", "date_updated",
        "direction", "error_code", "error_message", "from", "messaging_service_sid",
        "num_media", "num_segments", "price", "price_unit", "sid", "status",
        "subresource_uris", "to", "uri",
    }  # fmt: skip
    assert payload["date_sent"] is None  # set once Twilio hands the SMS to the carrier
    assert payload["date_created"].endswith(" +0000")
    parsedate_to_datetime(payload["date_created"])
    assert payload["num_segments"] == "1"


def test_messaging_service_without_from_is_accepted(twilio: Client) -> None:
    message = twilio.messages.create(to=RESIDENT, messaging_service_sid=SERVICE, body="Bonjour")
    assert message.status == "accepted"
    assert message.messaging_service_sid == SERVICE
    assert message.from_ is None
    assert message.num_segments == "0"


def test_fetch_created_message(twilio: Client) -> None:
    sent = twilio.messages.create(to=RESIDENT, from_=GATEWAY, body="Bonjour")
    fetched = twilio.messages(sent.sid).fetch()
    assert fetched.sid == sent.sid and fetched.body == "Bonjour"


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("a" * 1600, 11),
        ("€" * 80, 1),  # extension characters cost two septets
        ("€" * 81, 2),
        ("é" * 160, 1),  # é is in the GSM-7 default alphabet
        ("ê" * 70, 1),
        ("ê" * 71, 2),
        ("👍" * 35, 1),  # two UTF-16 units each
        ("👍" * 36, 2),
        ("Très bien 👍 à côté de l'école", 1),
    ],
)
def test_count_segments(body: str, segments: int) -> None:
    assert count_segments(body) == segments


# -- refusals ----------------------------------------------------------------


def test_wrong_credentials_raise_401_code_20003(fake: FakeTwilio) -> None:
    fake.reset()
    client = _client(fake, fake.account_sid, "wrong-token")
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(to=RESIDENT, from_=GATEWAY, body="Bonjour")
    assert caught.value.status == 401
    assert caught.value.code == 20003
    assert fake.messages == []
    assert fake.requests[-1]["status"] == 401


def test_other_account_is_not_found(fake: FakeTwilio) -> None:
    client = fake.twilio_client()
    other = "AC" + "f" * 32
    with pytest.raises(TwilioRestException) as caught:
        client.api.accounts(other).messages.create(to=RESIDENT, from_=GATEWAY, body="Bonjour")
    assert (caught.value.status, caught.value.code) == (404, 20404)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"to": "", "from_": GATEWAY, "body": "Bonjour"}, 21604),
        ({"to": RESIDENT, "body": "Bonjour"}, 21603),
        ({"to": RESIDENT, "from_": GATEWAY}, 21602),
        ({"to": RESIDENT, "from_": GATEWAY, "body": ""}, 21602),
        ({"to": RESIDENT, "from_": GATEWAY, "body": "a" * 1601}, 21617),
        ({"to": "VINTED", "from_": GATEWAY, "body": "Bonjour"}, 21211),
    ],
)
def test_invalid_create_is_400(twilio: Client, fake: FakeTwilio, params: dict, code: int) -> None:
    with pytest.raises(TwilioRestException) as caught:
        twilio.messages.create(**params)
    assert (caught.value.status, caught.value.code) == (400, code)
    assert fake.messages == []


def test_media_without_body_is_an_mms(twilio: Client) -> None:
    message = twilio.messages.create(
        to=RESIDENT, from_=GATEWAY, media_url=["https://example.org/a.jpg"]
    )
    assert message.sid.startswith("MM")
    assert message.num_media == "1"


# -- injected failures -------------------------------------------------------


def test_rate_limited_then_success(twilio: Client, fake: FakeTwilio) -> None:
    fake.fail_next(429, 20429, retry_after=2)

    with pytest.raises(TwilioRestException) as caught:
        twilio.messages.create(to=RESIDENT, from_=GATEWAY, body="Bonjour")
    assert (caught.value.status, caught.value.code) == (429, 20429)
    assert "Too Many Requests" in caught.value.msg

    message = twilio.messages.create(to=RESIDENT, from_=GATEWAY, body="Bonjour")
    assert message.status == "queued"
    assert [m["sid"] for m in fake.messages] == [message.sid]
    assert [r["status"] for r in fake.requests] == [429, 201]


def test_rate_limit_carries_retry_after_header(fake: FakeTwilio) -> None:
    fake.reset()
    fake.fail_next(429, 20429, retry_after=7)
    client = fake.twilio_client()
    response = client.request(
        "POST",
        f"{fake.base_url}/2010-04-01/Accounts/{fake.account_sid}/Messages.json",
        data={"To": RESIDENT, "From": GATEWAY, "Body": "Bonjour"},
    )
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert json.loads(response.text) == {
        "code": 20429,
        "message": "Too Many Requests",
        "more_info": "https://www.twilio.com/docs/errors/20429",
        "status": 429,
    }


def test_unsubscribed_recipient(twilio: Client, fake: FakeTwilio) -> None:
    fake.fail_next(400, 21610)
    with pytest.raises(TwilioRestException) as caught:
        twilio.messages.create(to=RESIDENT, from_=GATEWAY, body="Bonjour")
    assert (caught.value.status, caught.value.code) == (400, 21610)
    assert "unsubscribed" in caught.value.msg
    assert fake.messages == []


def test_server_errors_repeat_then_clear(twilio: Client, fake: FakeTwilio) -> None:
    fake.fail_next(503, times=2)
    fake.fail_next(500)
    seen = []
    for _ in range(3):
        with pytest.raises(TwilioRestException) as caught:
            twilio.messages.create(to=RESIDENT, from_=GATEWAY, body="Bonjour")
        seen.append((caught.value.status, caught.value.code))
    assert seen == [(503, 20503), (503, 20503), (500, 20500)]
    twilio.messages.create(to=RESIDENT, from_=GATEWAY, body="Bonjour")
    assert len(fake.messages) == 1


def test_bad_credentials_do_not_use_up_a_failure(fake: FakeTwilio) -> None:
    fake.reset()
    fake.fail_next(400, 21211)
    with pytest.raises(TwilioRestException):
        _client(fake, fake.account_sid, "wrong").messages.create(
            to=RESIDENT, from_=GATEWAY, body="x"
        )
    with pytest.raises(TwilioRestException) as caught:
        fake.twilio_client().messages.create(to=RESIDENT, from_=GATEWAY, body="x")
    assert caught.value.code == 21211
    assert RESIDENT in caught.value.msg


# -- recordings --------------------------------------------------------------

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 28


def test_recording_download_needs_basic_auth(fake: FakeTwilio) -> None:
    sid = "RE" + "a" * 32
    url = fake.add_recording(sid, WAV, "audio/x-wav")
    assert url == f"{fake.base_url}/2010-04-01/Accounts/{fake.account_sid}/Recordings/{sid}"

    creds = (fake.account_sid, fake.auth_token)
    for target in (url, url + ".wav"):
        status, body, headers = _get(target, creds)
        assert (status, body) == (200, WAV)
        assert headers["Content-Type"] == "audio/x-wav"

    status, body, _ = _get(url + ".wav")
    assert status == 401
    assert json.loads(body)["code"] == 20003
    assert _get(url + ".wav", (fake.account_sid, "wrong"))[0] == 401
    # The fake does not transcode: only the stored format is served.
    assert _get(url + ".mp3", creds)[0] == 404


def test_delete_recording(fake: FakeTwilio) -> None:
    sid = "RE" + "b" * 32
    url = fake.add_recording(sid, b"ID3mp3data", "audio/mpeg")
    creds = (fake.account_sid, fake.auth_token)
    assert _get(url + ".mp3", creds)[:2] == (200, b"ID3mp3data")

    assert _get(url + ".json", None, "DELETE")[0] == 401
    assert fake.has_recording(sid)

    status, body, _ = _get(url + ".json", creds, "DELETE")
    assert (status, body) == (204, b"")
    assert not fake.has_recording(sid)
    assert _get(url + ".mp3", creds)[0] == 404


def test_delete_recording_through_twilio_client(fake: FakeTwilio) -> None:
    sid = "RE" + "c" * 32
    fake.add_recording(sid, WAV, "audio/x-wav")
    assert fake.twilio_client().recordings(sid).delete() is True
    assert not fake.has_recording(sid)


# -- running it --------------------------------------------------------------


def test_unknown_path_is_twilio_404(fake: FakeTwilio) -> None:
    status, body, _ = _get(f"{fake.base_url}/2010-04-01/Nope.json")
    assert status == 404
    assert json.loads(body)["code"] == 20404


def test_two_fakes_get_their_own_ports_and_stop_cleanly() -> None:
    with FakeTwilio() as one, FakeTwilio(account_sid="AC" + "1" * 32, auth_token="x") as two:
        assert one.base_url != two.base_url
        message = two.twilio_client().messages.create(to=RESIDENT, from_=GATEWAY, body="x")
        assert two.messages[0]["sid"] == message.sid and one.messages == []
    with pytest.raises(requests.ConnectionError):
        _get(one.base_url + "/")


def test_runs_as_a_subprocess() -> None:
    root = Path(__file__).resolve().parents[3]
    process = subprocess.Popen(
        [sys.executable, "-m", "channels.twilio.tests.fake_api", "--port", "0"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = json.loads(process.stdout.readline())["base_url"]
        client = Client("AC" + "0" * 32, "test-token")
        client.api.base_url = base_url
        client.region = client.edge = None
        assert client.messages.create(to=RESIDENT, from_=GATEWAY, body="x").status == "queued"
    finally:
        process.terminate()
        process.wait(10)
    assert process.returncode == 0


async def test_async_client_reaches_the_fake_the_same_way(fake: FakeTwilio) -> None:
    from twilio.http.async_http_client import AsyncTwilioHttpClient

    fake.reset()
    http_client = AsyncTwilioHttpClient()
    client = Client(fake.account_sid, fake.auth_token, http_client=http_client)
    client.api.base_url = fake.base_url
    client.region = client.edge = None
    try:
        message = await client.messages.create_async(to=RESIDENT, from_=GATEWAY, body="Bonjour")
        fake.fail_next(429, 20429)
        with pytest.raises(TwilioRestException) as caught:
            await client.messages.create_async(to=RESIDENT, from_=GATEWAY, body="Bonjour")
    finally:
        await http_client.close()
    assert message.status == "queued"
    assert (caught.value.status, caught.value.code) == (429, 20429)
    assert [m["sid"] for m in fake.messages] == [message.sid]


# The SMS webhook's fixtures (the voice ones, voice_*.json, are other requests).
FIXTURES = sorted(
    path
    for path in (Path(__file__).resolve().parents[3] / "channels/twilio/fixtures").glob("*.json")
    if json.loads(path.read_text(encoding="utf-8"))["request"]["path"] == "/webhooks/twilio/sms"
)


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_inbound_fixture_is_a_coherent_twilio_webhook(path: Path) -> None:
    """The webhook fixtures agree with Twilio's rules as this fake models them."""
    case = json.loads(path.read_text(encoding="utf-8"))
    form, expected = case["request"]["form"], case["expected"]
    assert all(isinstance(value, str) for value in form.values())
    sid = form["MessageSid"]
    assert sid == form["SmsSid"] == form["SmsMessageSid"] == expected["provider_message_id"]
    assert sid[:2] == ("MM" if form["NumMedia"] != "0" else "SM") and len(sid) == 34
    assert form["AccountSid"].startswith("AC") and form["ApiVersion"] == "2010-04-01"
    assert form["NumSegments"] == str(count_segments(form["Body"]) if form["Body"] else 1)
    assert (expected["sender"], expected["recipient"], expected["text"]) == (
        form["From"],
        form["To"],
        form["Body"],
    )
    media = [
        {"url": form[f"MediaUrl{i}"], "content_type": form[f"MediaContentType{i}"]}
        for i in range(int(form["NumMedia"]))
    ]
    assert expected["attachments"] == media


def test_fixture_table_covers_the_cases() -> None:
    assert len(FIXTURES) >= 10
