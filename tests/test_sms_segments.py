"""SMS segment counting, with the figures the networks use."""

from __future__ import annotations

import pytest

from gateway.sms_segments import GSM7, UCS2, encoding, segments


@pytest.mark.parametrize(
    "text",
    [
        "Hello",
        "",
        "é è ù ì ò Ç É à ä ö ñ ü Ä Ö Ñ Ü Å å Æ æ ß Ø ø",
        "@£$¥_!\"#¤%&'()*+,-./:;<=>?¡¿§",
        "ΔΦΓΛΩΠΨΣΘΞ",
        "line\nbreak\rreturn",
        "€ [ ] { } ~ ^ | \\",
    ],
)
def test_gsm7_texts(text: str) -> None:
    assert encoding(text) == GSM7


@pytest.mark.parametrize(
    "char",
    ["ê", "ô", "î", "â", "û", "ç", "œ", "Œ", "’", "«", "»", "…", "😀", "\t", "À", "È", "ë", "ï"],
)
def test_one_character_outside_gsm7_makes_the_text_ucs2(char: str) -> None:
    assert encoding(f"Merci pour votre contribution {char}") == UCS2


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("a" * 459, 3),
        ("a" * 460, 4),
        ("é" * 160, 1),  # é is GSM-7
    ],
)
def test_gsm7_segments(text: str, count: int) -> None:
    assert segments(text) == count


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("€" * 80, 1),  # 160 septets: each extension character costs two
        ("€" * 81, 2),
        ("a" * 159 + "€", 2),  # 161 septets
        ("a" * 158 + "€", 1),
        # 152 + 2 + 152 = 306 septets, but the escape pair cannot straddle the
        # end of the first segment: 152 | 2 + 151 | 1.
        ("a" * 152 + "€" + "a" * 152, 3),
    ],
)
def test_gsm7_extension_characters_count_two(text: str, count: int) -> None:
    assert segments(text) == count


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("ê" * 70, 1),
        ("ê" * 71, 2),
        ("ê" * 134, 2),
        ("ê" * 135, 3),
        ("ç" + "a" * 69, 1),
        ("ç" + "a" * 70, 2),
        ("😀" * 35, 1),  # an emoji is two UTF-16 code units
        ("😀" * 36, 2),
        ("😀" * 67, 3),  # 134 units, but a pair cannot straddle: 33 | 33 | 1 emoji
        ("a" * 66 + "😀" + "a" * 66, 3),  # 134 units; the pair moves to the 2nd segment
        ("a" * 65 + "😀" + "a" * 67, 2),  # 134 units: 65+2 | 67
        ("a" * 65 + "😀" + "a" * 68, 3),
    ],
)
def test_ucs2_segments(text: str, count: int) -> None:
    assert encoding(text) == UCS2
    assert segments(text) == count
