"""Message text is safe: no secrets, no query strings or credentials from URLs."""

from __future__ import annotations

import pytest

from syncd.api.messages import safe_url, scrub


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://api.selzy.com/en/api/getLists?format=json&api_key=K",
            "https://api.selzy.com/en/api/getLists",
        ),
        ("https://user:pw@files.example/f.csv?token=T#frag", "https://files.example/f.csv"),
        ("http://127.0.0.1:8765/dl/x.csv", "http://127.0.0.1:8765/dl/x.csv"),
        ("http://[::1]:80/p?q", "http://[::1]:80/p"),
        ("http://host:notaport/p?k=v", "<unparseable url>"),
    ],
)
def test_safe_url_strips_query_fragment_and_credentials(url: str, expected: str) -> None:
    assert safe_url(url) == expected


def test_scrub_masks_every_secret_and_bounds_length() -> None:
    assert scrub("key=abc and abc again", ["abc", ""]) == "key=*** and *** again"
    assert len(scrub("x" * 1000, limit=50)) == 50
