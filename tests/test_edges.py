"""No input reaches a 5xx: every parser turns whatever it is given into a value it can use or a 4xx domain error.

Each property feeds a parser arbitrary text (lone surrogates, huge numbers, far calendars, other scripts) and
checks that only the errors that map to a 4xx problem come out, and that what does come out is safe to send
to DynamoDB. The handler-level properties check the same through the CRUD function, with moto.
"""

import base64
import json
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.domain import clock
from core.domain.cursor import CursorCodec
from core.domain.errors import (
    BadRequest,
    DomainError,
    MalformedBody,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from core.domain.listing import MAX_LIMIT
from core.http import problems
from core.http.auth import bearer_token
from core.http.bodies import AttachmentRequest, TaskFields, TaskPatch, parse_body
from core.http.body import MAX_BODY_BYTES, json_body_text
from core.http.etags import MAX_VERSION_DIGITS, none_match, version_from_if_match
from core.http.query import LIST_PARAMETERS, RANGES, is_storable_text, parse_list_query
from tests.support import Invoke

anything = st.text(alphabet=st.characters(codec=None), max_size=80)  # any code point, lone surrogates included
digits = st.one_of(
    st.integers(min_value=0, max_value=10**60).map(str),
    st.text(alphabet="0123456789", min_size=4301, max_size=5000),  # past Python's int() digit limit
)
instants = st.one_of(
    st.datetimes().map(lambda moment: moment.isoformat()),
    st.datetimes(timezones=st.timezones()).map(lambda moment: moment.isoformat()),
    st.dates().map(lambda day: day.isoformat()),
    st.sampled_from(["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "0001-01-01", "9999-12-31"]),
    anything,
)
query_values = st.one_of(anything, digits, instants, st.sampled_from(["pending", "high", "dueDate", "createdAt"]))
query_strings = st.dictionaries(st.one_of(st.sampled_from(LIST_PARAMETERS), anything), query_values, max_size=6)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | anything,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(anything, children, max_size=4),
    max_leaves=12,
)
FOUR_XX = (BadRequest, MalformedBody, PayloadTooLarge, UnsupportedMediaType)


def assert_4xx(error: DomainError) -> None:
    assert 400 <= problems.from_error(error).status < 500


@given(query_strings)
@example({"limit": "9" * 5000})
@example({"dueBefore": "9999-12-31T23:59:59-05:00"})
@example({"sort": "dueDate", "dueAfter": "2027-01-01", "dueBefore": "2026-01-01"})
@example({"cursor": "é" * 10})
@example({"tag": "\ud800"})
def test_any_query_string_is_a_usable_query_or_a_400(params: dict[str, str]) -> None:
    try:
        query = parse_list_query(params)
    except BadRequest as error:
        assert_4xx(error)
        return
    assert 1 <= query.limit <= MAX_LIMIT
    for value in (*query.filters.values(), query.cursor):
        assert value is None or is_storable_text(value)
    for after, before in RANGES:
        if after.parameter in query and before.parameter in query:  # an inverted BETWEEN is what DynamoDB rejects
            assert query.filters[after.parameter] < query.filters[before.parameter]
    assert query.cursor is None or (query.cursor.isascii() and len(query.cursor) <= 2048)


@given(instants)
def test_any_instant_is_sortable_utc_or_a_value_error(text: str) -> None:
    try:
        instant = clock.parse_instant(text)
    except ValueError:
        return
    assert len(instant) == 27 and instant.endswith("Z") and instant[:4].isdigit()


@given(st.one_of(anything, digits.map(lambda number: f'"01JDX6Z8Q3V5K7M9P1R3T5W7Y9.{number}"')))
def test_any_if_match_names_a_reachable_version_or_none(header: str) -> None:
    version = version_from_if_match("01JDX6Z8Q3V5K7M9P1R3T5W7Y9", header)

    assert version is None or version == -1 or 0 <= version < 10**MAX_VERSION_DIGITS
    assert isinstance(none_match(header, _task()), bool)


@given(st.one_of(anything, st.text(alphabet=string.ascii_letters + string.digits + "-_.", max_size=300)))
def test_any_cursor_is_a_position_or_a_400(token: str) -> None:
    try:
        query = parse_list_query({"cursor": token})
        if query.cursor:
            CursorCodec("k" * 32).decode(query.cursor, "alice", query.fingerprint)
    except BadRequest as error:  # InvalidCursor among them
        assert_4xx(error)


@given(
    content_type=st.one_of(
        anything, st.sampled_from(["application/json", "application/json; charset=latin-1", "APPLICATION/JSON"])
    ),
    body=st.one_of(anything, st.binary(max_size=200).map(lambda data: base64.b64encode(data).decode())),
    is_base64=st.booleans(),
)
def test_any_body_is_text_or_a_4xx(content_type: str, body: str, is_base64: bool) -> None:
    try:
        text = json_body_text(content_type, body, is_base64)
    except FOUR_XX as error:
        assert_4xx(error)
        return
    assert len(text.encode("utf-8")) <= MAX_BODY_BYTES


def test_bytes_that_are_not_utf8_are_400_and_another_charset_is_415() -> None:
    with pytest.raises(MalformedBody):
        json_body_text("application/json", base64.b64encode(b'{"title": "\xff\xfe"}').decode(), True)
    with pytest.raises(UnsupportedMediaType):
        json_body_text("application/json; charset=iso-8859-1", '{"title": "x"}', False)


@pytest.mark.parametrize("model", [TaskFields, TaskPatch, AttachmentRequest])
@settings(max_examples=150)
@given(document=st.one_of(json_values.map(json.dumps), anything))
def test_any_body_is_a_valid_request_or_a_4xx(model: Any, document: str) -> None:
    try:
        parsed = parse_body(model, document)
    except DomainError as error:
        assert_4xx(error)
        return
    for value in parsed.model_dump().values():
        texts = value if isinstance(value, list) else [value]
        assert all(is_storable_text(text) for text in texts if isinstance(text, str))


@given(st.one_of(anything, st.text(max_size=20).map(lambda token: f"Bearer {token}")))
def test_any_authorization_header_is_a_token_or_a_401(header: str) -> None:
    try:
        token = bearer_token({"authorization": header})
    except DomainError as error:
        assert problems.from_error(error).status == 401
        return
    assert token.isascii()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    params=query_strings,
    header=anything,
    body=st.one_of(json_values.map(json.dumps), anything, st.just('{"title": "a valid one"}')),
)
def test_the_crud_function_answers_any_input_below_500(
    invoke: Invoke, create: Any, params: dict[str, str], header: str, body: str
) -> None:
    task = create()
    listed = invoke("list-tasks", query=params)
    patched = invoke("patch-task", task_id=task["taskId"], raw_body=body, headers={"if-match": header})
    created = invoke("create-task", raw_body=body, headers={"idempotency-key": header})

    for response in (listed, patched, created):
        assert response.status < 500, response
        if response.status >= 400:
            assert response.headers["content-type"] == "application/problem+json"


def _task() -> Any:
    from core.domain.models import Task

    now = "2026-01-01T00:00:00.000000Z"
    return Task(taskId="01JDX6Z8Q3V5K7M9P1R3T5W7Y9", userId="alice", title="t", createdAt=now, updatedAt=now, version=3)
