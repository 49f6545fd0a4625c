"""Passwords out of URIs before they reach a repr, a log line or an error message.

``redact_uri("amqp://hub:s3cret@rabbit:5672/%2F")`` gives ``"amqp://hub:***@rabbit:5672/%2F"``;
``redact_text`` does the same to every ``scheme://user:password@host`` inside free text, such as
an exception's message that quotes the URL it failed on. Only the password is replaced: user,
host, port, path and query stay readable, and text without such a URI comes back unchanged. Both
work on the text alone (no URL parsing that could reject odd input) and never raise.
"""

from __future__ import annotations

import re

MASK = "***"

# scheme "://" then the authority: everything up to the first character that ends it in a URI
# (/ ? #) or ends the URI in running text (whitespace, quotes, angle brackets)
_AUTHORITY = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<authority>[^\s/?#'\"<>]*)")


def _redact_authority(match: re.Match[str]) -> str:
    authority = match["authority"]
    userinfo, at, host = authority.rpartition("@")  # a password may hold an unencoded "@"
    user, colon, password = userinfo.partition(":")
    if not at or not colon or not password:
        return match.group(0)
    return f"{match['scheme']}{user}:{MASK}@{host}"


def redact_text(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` in it replaced by ``***``."""
    try:
        return _AUTHORITY.sub(_redact_authority, text if isinstance(text, str) else str(text))
    except Exception:  # a redactor that raises would hide the error it was asked to print
        return MASK


def redact_uri(uri: str | None) -> str | None:
    """The URI with its password (if any) replaced by ``***``; None stays None."""
    return None if uri is None else redact_text(uri)
