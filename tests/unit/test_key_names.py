"""What names a key may have (the API's 422 and `conveyor keys create` alike), and the key
cache forgetting a revoked key: no database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from api.auth import Authenticator
from api.keys import Principal
from stores.keys import KeyNameTaken, name_problem


@pytest.mark.parametrize("name", ["alice", "ci-bot", "team.build:2", "A_1", "x" * 128])
def test_a_name_of_letters_digits_and_punctuation_is_accepted(name):
    assert name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("", "1 to 128 characters, not 0"),
        ("x" * 129, "1 to 128 characters, not 129"),
        ("ci bot", "letters, digits and _ . : - only, not ' '"),
        ("a/b\\c", "not '/\\\\'"),
        ("ünï", "not 'ïü'"),
        ("line\nbreak", "letters, digits and _ . : - only"),
        ("alice\n", "letters, digits and _ . : - only"),
    ],
)
def test_any_other_name_is_refused_saying_why(name, says):
    problem = name_problem(name)
    assert problem is not None and says in problem


def test_a_taken_name_says_whether_a_live_or_a_revoked_key_holds_it():
    assert str(KeyNameTaken("bob", None)).startswith("a key named 'bob' already exists: pick")
    revoked = str(KeyNameTaken("bob", datetime(2026, 12, 2, 9, 30, tzinfo=UTC)))
    assert revoked.startswith("a key named 'bob' was revoked on 2026-12-02 09:30 UTC: pick")


def _cached(auth: Authenticator, *names: str) -> None:
    for name in names:
        auth._known[f"digest-{name}"] = (Principal.key(name, "user"), float("inf"))


def test_the_cache_forgets_one_key_by_name_or_every_key():
    pool: Any = None  # forget never reads the database
    auth = Authenticator(pool, None, 600)
    _cached(auth, "alice", "bob")
    auth.forget("alice")
    assert [who.name for who, _ in auth._known.values()] == ["bob"]
    auth.forget("nobody")
    assert len(auth._known) == 1
    _cached(auth, "carol")
    auth.forget("*")
    assert auth._known == {}
