"""local/iam.py decides requests as AWS's policy evaluation does (the pages cited in its docstring)."""

import fnmatch
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from local.iam import Decision, PolicyError, evaluate, evaluate_resource_policy, matches

ALLOWED, IMPLICIT, EXPLICIT = Decision.ALLOWED, Decision.IMPLICIT_DENY, Decision.EXPLICIT_DENY
TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/tasks"
BUCKET = "arn:aws:s3:::attachments"


def policy(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action, resource, **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action, resource, **extra) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def decide(statements, action, resource, context=None, boundary=None) -> Decision:
    return evaluate(action, resource, identity=[policy(*statements)], boundary=boundary, context=context or {})


# --- actions and resources ----------------------------------------------------------------------------


def test_nothing_is_allowed_without_an_allow():
    assert evaluate("s3:GetObject", f"{BUCKET}/k", identity=[]) is IMPLICIT
    assert decide([allow("s3:PutObject", f"{BUCKET}/*")], "s3:GetObject", f"{BUCKET}/k") is IMPLICIT


def test_actions_are_case_insensitive_and_take_wildcards():
    assert decide([allow("DynamoDB:getitem", TABLE)], "dynamodb:GetItem", TABLE) is ALLOWED
    assert decide([allow("dynamodb:Get*", TABLE)], "dynamodb:GetItem", TABLE) is ALLOWED
    assert decide([allow("dynamodb:Get*", TABLE)], "dynamodb:PutItem", TABLE) is IMPLICIT
    assert decide([allow("s3:?etObject", f"{BUCKET}/k")], "s3:GetObject", f"{BUCKET}/k") is ALLOWED
    assert decide([allow("*", "*")], "sqs:SendMessage", "arn:aws:sqs:us-east-1:1:q") is ALLOWED


def test_resources_are_case_sensitive():
    assert decide([allow("s3:GetObject", f"{BUCKET}/Attachments/*")], "s3:GetObject", f"{BUCKET}/attachments/k") is (
        IMPLICIT
    )


def test_a_table_grant_does_not_cover_its_indexes():
    index = f"{TABLE}/index/byStatus"
    assert decide([allow("dynamodb:Query", TABLE)], "dynamodb:Query", index) is IMPLICIT
    assert decide([allow("dynamodb:Query", index)], "dynamodb:Query", TABLE) is IMPLICIT
    assert decide([allow("dynamodb:Query", f"{TABLE}/index/*")], "dynamodb:Query", index) is ALLOWED
    assert decide([allow("dynamodb:Query", f"{TABLE}*")], "dynamodb:Query", index) is ALLOWED


def test_a_bucket_grant_does_not_cover_its_objects_nor_the_reverse():
    assert decide([allow("s3:GetObject", BUCKET)], "s3:GetObject", f"{BUCKET}/k") is IMPLICIT
    assert decide([allow("s3:ListBucket", f"{BUCKET}/*")], "s3:ListBucket", BUCKET) is IMPLICIT
    assert decide([allow("s3:ListBucket", BUCKET)], "s3:ListBucket", BUCKET) is ALLOWED


def test_an_object_prefix_grant_covers_only_that_prefix():
    statements = [allow("s3:GetObject", f"{BUCKET}/attachments/*")]
    assert decide(statements, "s3:GetObject", f"{BUCKET}/attachments/u/t/a") is ALLOWED
    assert decide(statements, "s3:GetObject", f"{BUCKET}/other/attachments/a") is IMPLICIT
    assert decide(statements, "s3:GetObject", f"{BUCKET}/attachments") is IMPLICIT


def test_not_action_and_not_resource():
    assert decide([{"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}], "sqs:SendMessage", "q") is ALLOWED
    assert decide([{"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}], "s3:GetObject", "o") is IMPLICIT
    statement = {"Effect": "Deny", "Action": "*", "NotResource": f"{BUCKET}/public/*"}
    assert decide([allow("s3:*", "*"), statement], "s3:GetObject", f"{BUCKET}/private/k") is EXPLICIT
    assert decide([allow("s3:*", "*"), statement], "s3:GetObject", f"{BUCKET}/public/k") is ALLOWED


def test_an_explicit_deny_wins_in_any_policy_and_any_order():
    statements = [allow("s3:*", "*"), deny("s3:DeleteObject", f"{BUCKET}/*")]
    for order in (statements, statements[::-1]):
        assert decide(order, "s3:DeleteObject", f"{BUCKET}/k") is EXPLICIT
    split = evaluate("s3:DeleteObject", f"{BUCKET}/k", identity=[policy(statements[0]), policy(statements[1])])
    assert split is EXPLICIT


def test_a_boundary_limits_and_its_deny_wins():
    everything = [allow("*", "*")]
    boundary = policy(allow("s3:*", "*"), deny("s3:DeleteObject", "*"))
    assert decide(everything, "s3:GetObject", f"{BUCKET}/k", boundary=boundary) is ALLOWED
    assert decide(everything, "sqs:SendMessage", "arn:aws:sqs:us-east-1:1:q", boundary=boundary) is IMPLICIT
    assert decide(everything, "s3:DeleteObject", f"{BUCKET}/k", boundary=boundary) is EXPLICIT
    assert decide([], "s3:GetObject", f"{BUCKET}/k", boundary=boundary) is IMPLICIT  # a boundary grants nothing


def test_statement_may_be_a_single_object():
    document = {"Version": "2012-10-17", "Statement": allow("s3:GetObject", "*")}
    assert evaluate("s3:GetObject", "x", identity=[document]) is ALLOWED


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/${aws:username}/*"},
        {"Effect": "Allow", "Action": "s3:GetObject"},
        {"Effect": "Maybe", "Action": "s3:GetObject", "Resource": "*"},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Principal": "*"},
        allow("s3:GetObject", "*", Condition={"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}),
        allow("s3:GetObject", "*", Condition={"ForSomeValues:StringLike": {"s3:prefix": "a*"}}),
    ],
)
def test_a_policy_it_cannot_read_is_an_error_not_a_guess(statement):
    with pytest.raises(PolicyError):
        decide([statement], "s3:GetObject", "arn:aws:s3:::b/u/k", {"aws:CurrentTime": "x", "s3:prefix": "a"})


# --- wildcards: the same as shell-style matching without character classes ------------------------------

_ALPHABET = st.sampled_from(list("ab/:*?-."))


@given(pattern=st.text(_ALPHABET, max_size=8), value=st.text(st.sampled_from(list("ab/:-.")), max_size=8))
def test_wildcards_match_as_fnmatch_does(pattern, value):
    assert matches(pattern, value) == fnmatch.fnmatchcase(value, pattern)
    statement = allow("s3:GetObject", f"arn:aws:s3:::{pattern}")
    expected = ALLOWED if fnmatch.fnmatchcase(value, pattern) else IMPLICIT
    assert decide([statement], "s3:GetObject", f"arn:aws:s3:::{value}") is expected


@given(
    effects=st.lists(st.tuples(st.sampled_from(["Allow", "Deny"]), st.booleans()), min_size=1, max_size=6),
    seed=st.integers(),
)
def test_the_decision_follows_the_evaluation_logic_whatever_the_order(effects, seed):
    """Deny if any applicable Deny; else allow if any applicable Allow; else implicit deny."""
    statements = [
        {"Effect": effect, "Action": "s3:GetObject", "Resource": f"{BUCKET}/{'k' if applies else 'other'}"}
        for effect, applies in effects
    ]
    applicable = {effect for effect, applies in effects if applies}
    expected = EXPLICIT if "Deny" in applicable else ALLOWED if "Allow" in applicable else IMPLICIT
    random.Random(seed).shuffle(statements)
    assert decide(statements, "s3:GetObject", f"{BUCKET}/k") is expected


# --- conditions ---------------------------------------------------------------------------------------


def listing(condition: dict) -> list[dict]:
    return [allow("s3:ListBucket", BUCKET, Condition=condition)]


def test_s3_prefix_condition():
    statements = listing({"StringLike": {"s3:prefix": "attachments/*"}})
    assert decide(statements, "s3:ListBucket", BUCKET, {"s3:prefix": "attachments/u1/t1/a1"}) is ALLOWED
    assert decide(statements, "s3:ListBucket", BUCKET, {"s3:prefix": "other/attachments/"}) is IMPLICIT
    assert decide(statements, "s3:ListBucket", BUCKET, {"s3:prefix": "attachments"}) is IMPLICIT
    assert decide(statements, "s3:ListBucket", BUCKET) is IMPLICIT  # a listing with no prefix: key absent


def test_condition_keys_are_case_insensitive_values_are_not():
    statements = listing({"StringEquals": {"S3:Prefix": "a/"}})
    assert decide(statements, "s3:ListBucket", BUCKET, {"s3:prefix": "a/"}) is ALLOWED
    assert decide(statements, "s3:ListBucket", BUCKET, {"s3:prefix": "A/"}) is IMPLICIT
    ignoring = listing({"StringEqualsIgnoreCase": {"s3:prefix": "a/"}})
    assert decide(ignoring, "s3:ListBucket", BUCKET, {"s3:prefix": "A/"}) is ALLOWED


def test_values_of_one_key_or_keys_and_operators_and():
    statements = listing({"StringEquals": {"s3:prefix": ["a/", "b/"], "s3:delimiter": "/"}})
    assert decide(statements, "s3:ListBucket", BUCKET, {"s3:prefix": "b/", "s3:delimiter": "/"}) is ALLOWED
    assert decide(statements, "s3:ListBucket", BUCKET, {"s3:prefix": "b/"}) is IMPLICIT
    both = listing({"StringLike": {"s3:prefix": "a/*"}, "NumericLessThanEquals": {"s3:max-keys": "10"}})
    assert decide(both, "s3:ListBucket", BUCKET, {"s3:prefix": "a/x", "s3:max-keys": "10"}) is ALLOWED
    assert decide(both, "s3:ListBucket", BUCKET, {"s3:prefix": "a/x", "s3:max-keys": "11"}) is IMPLICIT


def test_negated_operators_are_nor_and_hold_when_the_key_is_absent():
    """AWS: "If the policy condition requires that the key is not matched, such as StringNotLike or
    ArnNotLike, and the right key is not present, the condition is true" (condition operators page)."""
    statements = listing({"StringNotEquals": {"s3:prefix": ["a/", "b/"]}})
    assert decide(statements, "s3:ListBucket", BUCKET, {"s3:prefix": "c/"}) is ALLOWED
    assert decide(statements, "s3:ListBucket", BUCKET, {"s3:prefix": "b/"}) is IMPLICIT
    assert decide(statements, "s3:ListBucket", BUCKET) is ALLOWED
    not_like = listing({"StringNotLike": {"s3:prefix": "private/*"}})
    assert decide(not_like, "s3:ListBucket", BUCKET, {"s3:prefix": "private/x"}) is IMPLICIT
    assert decide(not_like, "s3:ListBucket", BUCKET, {"s3:prefix": "public/x"}) is ALLOWED


def test_if_exists_holds_when_the_key_is_absent():
    statements = listing({"StringLikeIfExists": {"s3:prefix": "a/*"}})
    assert decide(statements, "s3:ListBucket", BUCKET) is ALLOWED
    assert decide(statements, "s3:ListBucket", BUCKET, {"s3:prefix": "a/x"}) is ALLOWED
    assert decide(statements, "s3:ListBucket", BUCKET, {"s3:prefix": "b/x"}) is IMPLICIT


def test_null_checks_presence():
    absent = listing({"Null": {"s3:prefix": "true"}})
    assert decide(absent, "s3:ListBucket", BUCKET) is ALLOWED
    assert decide(absent, "s3:ListBucket", BUCKET, {"s3:prefix": "a/"}) is IMPLICIT
    present = listing({"Null": {"s3:prefix": "false"}})
    assert decide(present, "s3:ListBucket", BUCKET, {"s3:prefix": "a/"}) is ALLOWED
    assert decide(present, "s3:ListBucket", BUCKET) is IMPLICIT


def test_bool_and_a_secure_transport_deny():
    statements = [allow("s3:*", "*"), deny("s3:*", "*", Condition={"Bool": {"aws:SecureTransport": "false"}})]
    assert decide(statements, "s3:GetObject", f"{BUCKET}/k", {"aws:SecureTransport": "false"}) is EXPLICIT
    assert decide(statements, "s3:GetObject", f"{BUCKET}/k", {"aws:SecureTransport": "true"}) is ALLOWED
    assert decide(statements, "s3:GetObject", f"{BUCKET}/k") is ALLOWED  # absent: Bool does not hold


def test_numeric_operators():
    def numeric(operator, value):
        return decide(listing({operator: {"s3:max-keys": "10"}}), "s3:ListBucket", BUCKET, {"s3:max-keys": value})

    assert numeric("NumericLessThan", "9") is ALLOWED
    assert numeric("NumericLessThan", "10") is IMPLICIT
    assert numeric("NumericLessThanEquals", "10") is ALLOWED
    assert numeric("NumericGreaterThan", "11") is ALLOWED
    assert numeric("NumericGreaterThan", "10") is IMPLICIT
    assert numeric("NumericGreaterThanEquals", "10") is ALLOWED
    assert numeric("NumericEquals", "10.0") is ALLOWED
    assert numeric("NumericNotEquals", "10") is IMPLICIT
    assert numeric("NumericNotEquals", "3") is ALLOWED
    assert numeric("NumericLessThan", "ten") is IMPLICIT


def test_arn_operators_match_part_by_part():
    rule = "arn:aws:events:us-east-1:123456789012:rule/stack-attachment-uploaded"
    queue = "arn:aws:sqs:us-east-1:123456789012:dlq"

    def source(operator, pattern, arn):
        statements = [allow("sqs:SendMessage", queue, Condition={operator: {"aws:SourceArn": pattern}})]
        return decide(statements, "sqs:SendMessage", queue, {"aws:SourceArn": arn} if arn else {})

    assert source("ArnEquals", rule, rule) is ALLOWED
    assert source("ArnEquals", rule, rule.replace("123456789012", "999999999999")) is IMPLICIT
    assert source("ArnLike", "arn:aws:events:*:123456789012:rule/*", rule) is ALLOWED
    assert source("ArnLike", "arn:aws:events:*:*", rule) is IMPLICIT  # `*` does not span the parts
    assert source("ArnLike", "arn:aws:events:*:123456789012:*", "not-an-arn") is IMPLICIT
    assert source("ArnNotEquals", rule, rule) is IMPLICIT
    assert source("ArnNotLike", "arn:aws:events:*:*:rule/other-*", rule) is ALLOWED
    assert source("ArnEquals", rule, None) is IMPLICIT
    assert source("ArnNotEquals", rule, None) is ALLOWED


def test_ip_address_operators():
    statements = [allow("s3:GetObject", "*", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})]
    assert decide(statements, "s3:GetObject", "o", {"aws:SourceIp": "10.1.2.3"}) is ALLOWED
    assert decide(statements, "s3:GetObject", "o", {"aws:SourceIp": "11.1.2.3"}) is IMPLICIT
    outside = [allow("s3:GetObject", "*", Condition={"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}})]
    assert decide(outside, "s3:GetObject", "o", {"aws:SourceIp": "11.1.2.3"}) is ALLOWED


def test_set_operators_over_multivalued_keys():
    any_value = [allow("s3:PutObject", "*", Condition={"ForAnyValue:StringEquals": {"aws:TagKeys": ["a", "b"]}})]
    all_values = [allow("s3:PutObject", "*", Condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}})]
    for tags, any_expected, all_expected in [
        (["a"], ALLOWED, ALLOWED),
        (["a", "c"], ALLOWED, IMPLICIT),
        (["c"], IMPLICIT, IMPLICIT),
        ([], IMPLICIT, ALLOWED),
        (None, IMPLICIT, ALLOWED),  # absent: ForAllValues holds, ForAnyValue does not
    ]:
        context = {} if tags is None else {"aws:TagKeys": tags}
        assert decide(any_value, "s3:PutObject", "o", context) is any_expected, tags
        assert decide(all_values, "s3:PutObject", "o", context) is all_expected, tags


def test_a_single_valued_operator_on_a_multivalued_key_is_an_error():
    statements = [allow("s3:PutObject", "*", Condition={"StringEquals": {"aws:TagKeys": "a"}})]
    with pytest.raises(PolicyError):
        decide(statements, "s3:PutObject", "o", {"aws:TagKeys": ["a", "b"]})


@given(
    prefix=st.text(st.sampled_from(list("ab/*?")), max_size=6),
    value=st.one_of(st.none(), st.text(st.sampled_from(list("ab/")), max_size=6)),
)
def test_like_and_not_like_are_complements_when_the_key_is_present(prefix, value):
    context = {} if value is None else {"s3:prefix": value}
    like = decide(listing({"StringLike": {"s3:prefix": prefix}}), "s3:ListBucket", BUCKET, context)
    unlike = decide(listing({"StringNotLike": {"s3:prefix": prefix}}), "s3:ListBucket", BUCKET, context)
    if value is None:
        assert (like, unlike) == (IMPLICIT, ALLOWED)
    else:
        assert (like is ALLOWED) != (unlike is ALLOWED)
        assert (like is ALLOWED) == fnmatch.fnmatchcase(value, prefix)


# --- resource policies --------------------------------------------------------------------------------


def test_a_queue_policy_for_a_service_principal_with_a_source_arn():
    queue = "arn:aws:sqs:us-east-1:123456789012:dlq"
    rule = "arn:aws:events:us-east-1:123456789012:rule/r"
    document = policy(
        {
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue,
            "Condition": {"ArnEquals": {"aws:SourceArn": rule}},
        }
    )
    events = {"Service": "events.amazonaws.com"}
    ok = evaluate_resource_policy(
        "sqs:SendMessage", queue, policy=document, principal=events, context={"aws:SourceArn": rule}
    )
    assert ok is ALLOWED
    other_rule = {"aws:SourceArn": f"{rule}2"}
    assert evaluate_resource_policy(
        "sqs:SendMessage", queue, policy=document, principal=events, context=other_rule
    ) is (IMPLICIT)
    sns = {"Service": "sns.amazonaws.com"}
    assert evaluate_resource_policy(
        "sqs:SendMessage", queue, policy=document, principal=sns, context={"aws:SourceArn": rule}
    ) is (IMPLICIT)
