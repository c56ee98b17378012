"""The event URL (selzy-api.md §11.1): `public_url`'s path + `/events/<secret>`, where the secret
segment is derived from the API key, so it is the same at every start, differs per account, and
cannot be guessed from anything Selzy or a log shows. It is a credential: never logged (its
repr is masked, and the daemon registers it with syncd.logs' redaction).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

EVENTS_PATH = "events"  # below public_url's path; the notify_url tokens are one segment deep
_LABEL = b"syncd selzy event webhook v1"  # what the key signs to make the segment
SEGMENT_CHARS = 32  # 128 bits of the HMAC, in hex


def secret_segment(api_key: str) -> str:
    """HMAC-SHA256(api_key, a fixed label), first 128 bits in hex."""
    digest = hmac.new(api_key.encode("utf-8"), _LABEL, hashlib.sha256).hexdigest()
    return digest[:SEGMENT_CHARS]


@dataclass(frozen=True, slots=True)
class EventAddress:
    """Where Selzy posts events: `url` for setHook, `prefix` + `segment` for the route."""

    url: str
    prefix: str  # the URL's path without the secret: `<public_url path>/events`
    segment: str

    def __repr__(self) -> str:
        return f"EventAddress(path={self.shown!r})"

    @property
    def shown(self) -> str:
        """The URL as logs may show it: the secret segment masked."""
        return self.url.removesuffix(self.segment) + "<secret>"

    def is_ours_with_another_secret(self, url: str) -> bool:
        """`url` is an event URL of this public_url with a different secret (an old API key)."""
        base = self.url.removesuffix(self.segment)
        rest = url.removeprefix(base)
        return (
            rest != url
            and rest != self.segment
            and "/" not in rest
            and len(rest) == len(self.segment)
        )


def event_address(public_url: str, api_key: str) -> EventAddress:
    """The event URL below `public_url` (an http(s) URL, validated by the config loader); its
    query and fragment, if any, are not part of it."""
    parts = urlsplit(public_url)
    prefix = f"{parts.path.rstrip('/')}/{EVENTS_PATH}"
    segment = secret_segment(api_key)
    url = urlunsplit((parts.scheme, parts.netloc, f"{prefix}/{segment}", "", ""))
    return EventAddress(url=url, prefix=prefix, segment=segment)
