"""Models, the cursor codec, query parsing and ids, without AWS."""

import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.domain import clock, ids
from core.domain.cursor import CursorCodec
from core.domain.errors import BadRequest, InvalidCursor, InvalidInput, MalformedBody
from core.domain.fields import task_field
from core.domain.listing import FINGERPRINT_VERSION, ListQuery
from core.domain.models import LIST_FILTERS
from core.http.bodies import AttachmentRequest, TaskFields, TaskPatch, parse_body
from core.http.etags import version_from_if_match
from core.http.query import parse_list_query


def test_ids_are_time_ordered_and_unique(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time_ns", lambda: 1_795_000_000_000 * 1_000_000)
    earlier = [ids.new_id() for _ in range(500)]
    monkeypatch.setattr(time, "time_ns", lambda: 1_795_000_000_001 * 1_000_000)
    later = [ids.new_id() for _ in range(500)]

    assert max(earlier) < min(later)
    assert len(set(earlier + later)) == 1000
    assert all(len(value) == 26 for value in earlier + later)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("01JDX6Z8Q3V5K7M9P1R3T5W7Y9", True),
        ("01jdx6z8q3v5k7m9p1r3t5w7y9", False),
        ("8" + "0" * 25, False),
        ("01JDX6Z8Q3V5K7M9P1R3T5W7YU", False),
        ("x" * 2000, False),
        ("", False),
        ("../../etc/passwd", False),
    ],
)
def test_only_ids_this_service_could_make_are_valid(value: str, valid: bool) -> None:
    assert ids.is_valid(value) is valid
    assert ids.is_valid(ids.new_id())


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2026-12-01", "2026-12-01T00:00:00.000000Z"),
        ("2026-12-01T10:30:00Z", "2026-12-01T10:30:00.000000Z"),
        ("2026-12-01T10:30:00+02:00", "2026-12-01T08:30:00.000000Z"),
        ("2026-12-01T00:30:00.5-01:00", "2026-12-01T01:30:00.500000Z"),
    ],
)
def test_instants_normalise_to_sortable_utc(text: str, instant: str) -> None:
    assert clock.parse_instant(text) == instant


@pytest.mark.parametrize("text", ["2026-12-01T10:30:00", "12/01/2026", "2026-13-01", "", "2026-12-01 10:00", "now"])
def test_instants_reject_naive_or_malformed(text: str) -> None:
    with pytest.raises(ValueError):
        clock.parse_instant(text)


def test_patch_changes_only_fields_present_and_null_means_default() -> None:
    patch = parse_body(TaskPatch, '{"priority": null, "title": "x"}')

    assert patch.as_changes() == {"priority": "medium", "title": "x"}


def test_fields_reject_strings_for_lists_and_numbers_for_strings() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_body(TaskFields, '{"title": 1, "tags": "a"}')

    assert {error.field for error in caught.value.errors} == {"title", "tags"}


def test_malformed_json_is_its_own_error() -> None:
    with pytest.raises(MalformedBody):
        parse_body(TaskFields, '{"title": ')


@pytest.mark.parametrize(
    ("header", "version"),
    [('"T1.3"', 3), ('"X.1", "T1.7"', 7), ("*", None), ('W/"T1.3"', -1), ('"T1.x"', -1), ('"T2.3"', -1), ("", -1)],
)
def test_if_match_names_a_version_of_this_task(header: str, version: int | None) -> None:
    assert version_from_if_match("T1", header) == version


def test_cursor_round_trips_and_binds_owner_and_filters() -> None:
    codec = CursorCodec("s" * 32, ttl_seconds=60)
    position = {"pk": "USER#a", "sk": "TASK#1"}
    token = codec.encode(position, "a", "pending|")

    assert codec.decode(token, "a", "pending|") == position
    for owner, fingerprint in (("b", "pending|"), ("a", "completed|")):
        with pytest.raises(InvalidCursor):
            codec.decode(token, owner, fingerprint)
    with pytest.raises(InvalidCursor):
        CursorCodec("t" * 32, ttl_seconds=60).decode(token, "a", "pending|")


def test_cursor_expires() -> None:
    token = CursorCodec("s" * 32, ttl_seconds=-1).encode({"pk": "p"}, "a", "")

    with pytest.raises(InvalidCursor, match="expired"):
        CursorCodec("s" * 32, ttl_seconds=60).decode(token, "a", "")


def test_list_query_defaults_and_fingerprint_ignores_limit() -> None:
    query = parse_list_query(None)

    assert (query.sort, query.limit, query.cursor) == ("createdAt", 20, None)
    assert parse_list_query({"limit": "5"}).fingerprint == parse_list_query({"limit": "50"}).fingerprint
    assert parse_list_query({"status": "pending"}).fingerprint != query.fingerprint


def test_list_query_rejects_unknown_parameters_unless_allowed() -> None:
    with pytest.raises(BadRequest):
        parse_list_query({"format": "json"})

    assert parse_list_query({"format": "json"}, extra=("format",)).sort == "createdAt"


# Cursors signed by the code before the versioned fingerprint (main at 8b9f1b1, with this secret and a
# hundred-year lifetime): a deploy must not break the listings in flight.
LEGACY_SECRET = "legacy-cursor-secret-xxxxxxxxxxx"
POSITION = {"pk": "USER#alice", "sk": "TASK#01JDX6Z8Q3V5K7M9P1R3T5W7Y9"}
DUE_POSITION = {
    **POSITION,
    "gsi1pk": "USER#alice#STATUS#pending",
    "gsi2sk": "2026-06-01T00:00:00.000000Z#01JDX6Z8Q3V5K7M9P1R3T5W7Y9",
}
LEGACY_CURSORS = [
    (
        {},
        POSITION,
        "eyJrIjp7InBrIjoiVVNFUiNhbGljZSIsInNrIjoiVEFTSyMwMUpEWDZaOFEzVjVLN005UDFSM1Q1VzdZOSJ9LCJlIjo0OTQ5ODg5ODE5fQ"
        ".8CQO9Pk4MSr_JdkAiwVO-FO2k5nanHbypiiZIXaYtrQ",
    ),
    (
        {
            "status": "pending",
            "priority": "high",
            "tag": "a|b",
            "dueAfter": "2026-01-01",
            "dueBefore": "2026-12-31T12:00:00+02:00",
            "sort": "dueDate",
        },
        DUE_POSITION,
        "eyJrIjp7InBrIjoiVVNFUiNhbGljZSIsInNrIjoiVEFTSyMwMUpEWDZaOFEzVjVLN005UDFSM1Q1VzdZOSIsImdzaTFwayI6IlVTRVIjYWxp"
        "Y2UjU1RBVFVTI3BlbmRpbmciLCJnc2kyc2siOiIyMDI2LTA2LTAxVDAwOjAwOjAwLjAwMDAwMFojMDFKRFg2WjhRM1Y1SzdNOVAxUjNUNVc3"
        "WTkifSwiZSI6NDk0OTg4OTgxOX0.gAL0zPXAB9QpJSIJ_Bjw9rMZbhn3aRkrjVqLGLiYavE",
    ),
    (
        {"tag": "work"},
        POSITION,
        "eyJrIjp7InBrIjoiVVNFUiNhbGljZSIsInNrIjoiVEFTSyMwMUpEWDZaOFEzVjVLN005UDFSM1Q1VzdZOSJ9LCJlIjo0OTQ5ODg5ODE5fQ"
        ".qWQ7PZWJavoR-zeI8Czt_E7olMHXA7gfpQe1URtkh-o",
    ),
]


@pytest.mark.parametrize(("params", "position", "token"), LEGACY_CURSORS)
def test_cursors_signed_before_the_versioned_fingerprint_still_verify(
    params: dict[str, str], position: dict[str, str], token: str
) -> None:
    query = parse_list_query(params)
    codec = CursorCodec(LEGACY_SECRET)

    assert codec.decode(token, "alice", *query.fingerprints) == position
    for other in ({**params, "tag": "other"}, {**params, "sort": "createdAt" if params.get("sort") else "dueDate"}):
        with pytest.raises(InvalidCursor):
            codec.decode(token, "alice", *parse_list_query(other).fingerprints)
    with pytest.raises(InvalidCursor):
        codec.decode(token, "bob", *query.fingerprints)


def test_new_cursors_are_signed_with_the_current_versioned_fingerprint() -> None:
    query = parse_list_query({"tag": "work"})
    token = CursorCodec(LEGACY_SECRET).encode(POSITION, "alice", query.fingerprint)

    assert query.fingerprint.startswith(FINGERPRINT_VERSION)
    assert CursorCodec(LEGACY_SECRET).decode(token, "alice", query.fingerprint) == POSITION
    with pytest.raises(InvalidCursor):
        CursorCodec(LEGACY_SECRET).decode(token, "alice", *query.fingerprints[1:])


free_text = st.text(max_size=8)


@given(
    st.dictionaries(st.sampled_from([known.parameter for known in LIST_FILTERS]), free_text),
    st.dictionaries(st.sampled_from([known.parameter for known in LIST_FILTERS]), free_text),
)
def test_no_two_listings_share_a_fingerprint(first: dict[str, str], second: dict[str, str]) -> None:
    # Any text in any filter, the separators of older formats ("|") included: quoted, nothing collides.
    one, other = ListQuery(filters=first), ListQuery(filters=second)

    assert (one.fingerprint == other.fingerprint) == (first == second)


@pytest.mark.parametrize(
    ("size", "accepted"), [("529", True), ("529.0", True), ("529.5", False), ("0", False), ("true", False)]
)
def test_an_attachment_size_is_any_json_integer_above_zero(size: str, accepted: bool) -> None:
    # JSON Schema's "integer" is any number without a fraction: 529.0 is one, as the document allows.
    body = f'{{"fileName": "a.txt", "contentType": "text/plain", "size": {size}}}'
    if accepted:
        assert parse_body(AttachmentRequest, body).size == 529
    else:
        with pytest.raises(InvalidInput):
            parse_body(AttachmentRequest, body)


@pytest.mark.parametrize("declaration", [{"default": None}, {"default": "", "null_clears": True}])
def test_the_field_table_says_null_clears_exactly_for_fields_whose_default_is_none(declaration: dict[str, Any]) -> None:
    with pytest.raises(TypeError, match="null_clears"):
        task_field(**declaration)
