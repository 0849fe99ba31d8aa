"""Quotas per caller and per recipient: over quota is 429 with Retry-After and nothing reaches Kafka.

The rules with an in-memory counter store and a fixed clock; the DynamoDB counters on moto (conditional
``UpdateItem`` with ``ADD``: https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateItem.html);
the ingest handler in process with low limits.
"""

from __future__ import annotations

import json
import uuid

import pytest

from devstack.aws_resources import QUOTA_TABLE
from notifications.quotas import (
    DAY,
    Count,
    DynamoCounterStore,
    Full,
    QuotaExceededError,
    QuotaLimits,
    Quotas,
    QuotaStoreError,
    recipient_digest,
)
from notifications.registry import address_kinds, customer_addressed
from notifications.runtime import ingest
from notifications.runtime.ingest import quota_limits
from notifications.settings import IngestSettings, ingest_settings, recipient_quotas
from tests.security.callers import REQUESTED, get, new_phone, new_shop, post
from tests.support import MemoryCounterStore, MemoryPublisher, caller_id, sample_request

# 2026-11-21T10:00:00Z plus 0.25 s: a quarter second into a second, 0.25 s into an hour and a day.
NOON = 1795255200.25
LIMITS = QuotaLimits(caller_per_second=3, caller_per_day=5, recipient_per_hour={"phone": 2, "email": 4})


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def quotas(store: MemoryCounterStore | None = None) -> tuple[Quotas, Clock]:
    clock = Clock(NOON)
    return Quotas(store or MemoryCounterStore(), LIMITS, clock=clock), clock


# ----------------------------------------------------------------------------------------------- the rules


def test_a_caller_gets_its_per_second_limit_and_the_next_second_is_a_new_window():
    store = MemoryCounterStore()
    q, clock = quotas(store)
    for _ in range(3):
        q.charge("c-a", [])
    with pytest.raises(QuotaExceededError) as refused:
        q.charge("c-a", [])
    assert (refused.value.quota.name, refused.value.retry_after) == ("caller_per_second", 1)
    # Another caller has its own window
    q.charge("c-b", [])
    # The next second counts afresh (the refused request took nothing from the day: one item counts both)
    clock.now += 1
    q.charge("c-a", [])
    assert store.counts[f"caller#c-a#{int(NOON) // DAY * DAY}"] == 4


def test_the_per_day_limit_holds_across_seconds_and_says_when_the_day_ends():
    q, clock = quotas()
    for second in range(5):
        clock.now = NOON + second
        q.charge("c-a", [])
    clock.now = NOON + 3600
    with pytest.raises(QuotaExceededError) as refused:
        q.charge("c-a", [])
    # 10:00:00.25 + 1 h is 11:00:00.25 UTC; the day ends in 13 h minus a quarter second: 46800 s rounded up
    assert (refused.value.quota.name, refused.value.retry_after) == ("caller_per_day", 46800)


def test_a_recipient_is_limited_whoever_the_caller_and_its_digest_is_the_key():
    store = MemoryCounterStore()
    q, clock = quotas(store)
    phone = ("phone", "+4915112345678")
    q.charge("c-a", [phone])
    clock.now += 1
    q.charge("c-b", [phone, ("email", "ada@example.com")])
    clock.now += 1
    with pytest.raises(QuotaExceededError) as refused:
        q.charge("c-c", [("email", "ADA@example.com"), phone])
    assert refused.value.quota.name == "phone_per_hour"
    assert refused.value.retry_after == 3600 - 2
    # The counters name no address: the recipient is a digest (case-folded, so ADA@ is ada@)
    assert not [key for key in store.counts if "+49" in key or "@" in key]
    assert (
        store.counts[f"email_per_hour#{recipient_digest('email', 'ada@example.com')}#{int(NOON) // 3600 * 3600}"] == 2
    )


def test_a_request_refused_for_its_callers_quota_takes_nothing_from_its_recipients():
    # Given a caller at its per-second limit, and a phone with one of its two messages this hour left
    store = MemoryCounterStore()
    q, _ = quotas(store)
    phone = ("phone", "+4915112345678")
    q.charge("c-a", [phone])
    q.charge("c-a", [])
    q.charge("c-a", [])
    # When the caller sends to the phone again, it is refused for its own second (Retry-After: that second's end)
    with pytest.raises(QuotaExceededError) as refused:
        q.charge("c-a", [phone, ("email", "ada@example.com")])
    assert (refused.value.quota.name, refused.value.retry_after) == ("caller_per_second", 1)
    assert str(refused.value) == "quota caller_per_second (3 per 1 s) is used up"
    # Then neither recipient was counted: the phone still has its message left for another caller
    assert [key.split("#")[0] for key in store.counts] == ["caller", "phone_per_hour"]
    q.charge("c-b", [phone])


def test_a_recipients_refusal_names_no_address_limit_or_count_and_waits_for_the_hour():
    # Given a phone that got its two messages this hour from other callers
    q, clock = quotas()
    phone = ("phone", "+4915112345678")
    q.charge("c-a", [phone])
    q.charge("c-b", [phone])
    clock.now += 60
    # When a third caller sends to it (and to an email address with messages left)
    with pytest.raises(QuotaExceededError) as refused:
        q.charge("c-c", [("email", "ada@example.com"), phone])
    # Then the operator's log gets the quota; the caller's answer says only that a recipient's hour is used up,
    # and to come back when the hour (the same for every caller) ends
    assert refused.value.quota.name == "phone_per_hour"
    assert str(refused.value) == "a recipient's quota of messages per hour is used up"
    assert refused.value.retry_after == 3600 - 60


def test_every_customer_field_a_channel_delivers_to_has_a_recipient_limit():
    required = {"KAFKA_BOOTSTRAP_SERVERS": "b:9092", "STATUS_TABLE_NAME": "s", "IDEMPOTENCY_TABLE_NAME": "i"}
    env = {**required, "QUOTA_TABLE_NAME": "q"}
    limits = quota_limits(IngestSettings.from_env(env), env)
    assert set(limits.recipient_per_hour) == set(customer_addressed().values())
    defaults = {field: kind.per_hour for field, kind in address_kinds().items()}
    assert limits == QuotaLimits(50, 100_000, defaults)
    assert (defaults["email"], defaults["phone"]) == (10, 5)


# ---------------------------------------------------------------------------------------- DynamoDB counters


def test_dynamodb_counters_count_atomically_refuse_at_the_limit_and_expire_with_their_window(moto_aws):
    ddb = moto_aws.client("dynamodb")
    store = DynamoCounterStore(QUOTA_TABLE, ddb)
    counts = [Count("email_per_hour#e#0", 2, 3600), Count("phone_per_hour#d#0", 1, 3600)]

    assert store.take(counts) == [None, None]
    assert store.take(counts) == [None, Full.WINDOW]
    assert store.take(counts) == [Full.WINDOW, Full.WINDOW]
    assert store.take(counts[:1]) == [Full.WINDOW]

    items = {i["counter"]["S"]: i for i in ddb.scan(TableName=QUOTA_TABLE)["Items"]}
    assert {k: (v["count"]["N"], v["expires_at"]["N"]) for k, v in items.items()} == {
        "email_per_hour#e#0": ("2", "3600"),
        "phone_per_hour#d#0": ("1", "3600"),
    }
    ttl = ddb.describe_time_to_live(TableName=QUOTA_TABLE)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")


def caller_count(second: int) -> Count:
    """The caller's item of the day beginning at 0: 4 a day, 2 a second."""
    return Count("caller#c-a#0", 4, DAY, second=second, second_limit=2)


def test_a_callers_day_and_second_are_counted_in_one_item(moto_aws):
    ddb = moto_aws.client("dynamodb")
    store = DynamoCounterStore(QUOTA_TABLE, ddb)

    # Two a second, the third refused for the second (not taken from the day)
    assert [store.take([caller_count(100)]) for _ in range(3)] == [[None], [None], [Full.SECOND]]
    # A new second counts afresh until the day is full
    assert [store.take([caller_count(101)]) for _ in range(3)] == [[None], [None], [Full.WINDOW]]

    [item] = ddb.scan(TableName=QUOTA_TABLE)["Items"]
    assert {k: v["N"] for k, v in item.items() if "N" in v} == {
        "count": "4",
        "second": "101",
        "second_count": "2",
        "expires_at": str(DAY),
    }


def test_an_environment_learns_the_second_another_one_counts_and_never_counts_a_past_one(moto_aws):
    ddb = moto_aws.client("dynamodb")
    made: list[str] = []
    ddb.meta.events.register("before-call.dynamodb", lambda model, **_: made.append(model.name))
    first, second = DynamoCounterStore(QUOTA_TABLE, ddb), DynamoCounterStore(QUOTA_TABLE, ddb)
    assert first.take([caller_count(100)]) == [None]

    # Another environment, new to the item, expects a new second: its update fails and the item tells it better
    made.clear()
    assert second.take([caller_count(100)]) == [None]
    assert made.count("UpdateItem") == 2
    # From then on it expects that second: one call
    made.clear()
    assert second.take([caller_count(100)]) == [Full.SECOND]
    assert made == ["UpdateItem"]

    # A clock behind the one that counts second 105 counts into 105, not into its own past second
    assert first.take([caller_count(105)]) == [None]
    assert second.take([caller_count(104)]) == [None]
    [item] = ddb.scan(TableName=QUOTA_TABLE)["Items"]
    assert (item["count"]["N"], item["second"]["N"], item["second_count"]["N"]) == ("4", "105", "2")


def test_a_counter_store_that_does_not_answer_is_a_typed_error(moto_aws):
    ddb = moto_aws.client("dynamodb")
    ddb.delete_table(TableName=QUOTA_TABLE)
    with pytest.raises(QuotaStoreError):
        DynamoCounterStore(QUOTA_TABLE, ddb).take([Count("x", 1, 1)])


# ------------------------------------------------------------------------------------- through the handler


@pytest.fixture
def low_quotas(moto_aws, monkeypatch: pytest.MonkeyPatch) -> MemoryPublisher:
    """The ingest handler with low limits (the day's and the recipients'), publishing in memory."""
    monkeypatch.setenv("QUOTA_CALLER_PER_DAY", "4")
    monkeypatch.setenv("QUOTA_PHONE_PER_HOUR", "2")
    monkeypatch.setenv("QUOTA_EMAIL_PER_HOUR", "3")
    publisher = MemoryPublisher()
    monkeypatch.setattr(ingest, "KafkaPublisher", lambda settings, **_: publisher)
    return publisher


def published_ids(publisher: MemoryPublisher) -> list[str]:
    return [json.loads(r.value)["notification_id"] for r in publisher.on(REQUESTED)]


def sms_to(phone: str) -> dict:
    return sample_request(channels=["sms"], customer={"id": "c-1", "name": "Ada", "phone": phone})


def test_over_a_recipients_quota_is_429_with_retry_after_and_nothing_is_published(low_quotas):
    # Given a phone number that got its two messages this hour, from two shops
    phone = new_phone()
    accepted = [post(new_shop(), sms_to(phone)) for _ in range(2)]
    assert [a.status for a in accepted] == [202, 202]

    # When a third shop sends it another SMS
    body = sms_to(phone)
    shop = new_shop()
    refused = post(shop, body)

    # Then it is 429 quota_exceeded in the JSON error contract, with Retry-After within the hour, not published
    assert refused.status == 429, refused.body
    error = refused.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert error["message"] == "a recipient's quota of messages per hour is used up"
    assert phone not in refused.body.decode()
    assert 1 <= int(refused.headers["retry-after"]) <= 3600
    assert refused.headers["x-correlation-id"]
    assert body["id"] not in published_ids(low_quotas)
    assert len(published_ids(low_quotas)) == 2
    # And nothing of it is recorded: GET is 404, and the same request later is not a replay of a refusal
    assert get(shop, body["id"]).status == 404
    assert post(shop, body).status == 429


def test_over_a_callers_daily_quota_is_429_and_a_replay_costs_nothing(low_quotas):
    # Given a shop that sent its four notifications of the day (Slack only: no customer recipient)
    shop = new_shop()
    bodies = [sample_request(channels=["slack"]) for _ in range(5)]
    answers = [post(shop, body) for body in bodies[:4]]
    assert [a.status for a in answers] == [202] * 4

    # When it retries one of them, and then sends a fifth
    replay = post(shop, bodies[0])
    fifth = post(shop, bodies[4])

    # Then the retry is replayed (a replay publishes and counts nothing), and the fifth is refused
    assert replay.status == 202
    assert replay.headers["idempotent-replayed"] == "true"
    assert fifth.status == 429
    assert "caller_per_day" in fifth.json()["error"]["message"]
    assert published_ids(low_quotas) == [b["id"] for b in bodies[:4]]
    # And another shop is not refused
    assert post(new_shop(), sample_request(channels=["slack"])).status == 202
    assert caller_id(shop) not in fifth.body.decode()


def test_a_caller_over_its_own_quota_spends_no_recipients_messages(low_quotas):
    # Given a shop that sent its four notifications of the day (Slack only: no customer recipient)
    over = new_shop()
    assert [post(over, sample_request(channels=["slack"])).status for _ in range(4)] == [202] * 4
    phone = "+4915112345678"

    # When it sends ten SMS to one number (the number's hourly limit is two)
    refused = [post(over, sms_to(phone)) for _ in range(10)]

    # Then each is refused for the shop's own day, and the number's hour is untouched: another shop's first SMS
    # to it is accepted, and its second too (two an hour)
    assert [r.status for r in refused] == [429] * 10
    assert {r.json()["error"]["message"] for r in refused} == {"quota caller_per_day (4 per 86400 s) is used up"}
    other = new_shop()
    assert [post(other, sms_to(phone)).status for _ in range(3)] == [202, 202, 429]


def email_to(address: str) -> dict:
    return sample_request(channels=["email"], customer={"id": "c-1", "name": "Ada", "email": address})


def test_sub_addresses_and_letter_case_of_one_mailbox_share_its_quota(low_quotas):
    # Given a mailbox (three messages an hour) and the spellings its provider delivers to it: sub-address tags
    # (RFC 5233) and the case of the local part and the domain
    mailbox = f"victim{uuid.uuid4().hex[:8]}"
    spellings = [f"{mailbox}+{n}@example.com" for n in range(1, 4)] + [f"{mailbox.upper()}+15@EXAMPLE.com"]

    # When one shop sends to each spelling
    answers = [post(new_shop(), email_to(address)).status for address in spellings]

    # Then they count as one recipient: three accepted, the fourth refused
    assert answers == [202, 202, 202, 429]


def test_a_number_counts_published_and_is_sent_in_its_canonical_e164_form(low_quotas):
    # Given a number written with the national trunk 0 after the country code (+49 0151 ...) and without it
    number = new_phone()
    trunk = number.replace("+49", "+490", 1)

    # When shops send to both spellings
    answers = [post(new_shop(), sms_to(spelling)).status for spelling in (trunk, number, trunk)]

    # Then it is one number with two messages an hour, and what reaches Kafka is the canonical form
    assert answers == [202, 202, 429]
    published = [json.loads(r.value)["customer"]["phone"] for r in low_quotas.on(REQUESTED)]
    assert published == [number, number]


def test_the_quota_store_down_is_503_and_nothing_is_published(low_quotas, moto_aws):
    moto_aws.client("dynamodb").delete_table(TableName=ingest_settings().quota_table_name)
    answer = post(new_shop(), sample_request())
    assert answer.status == 503
    assert answer.json()["error"]["code"] == "store_unavailable"
    assert int(answer.headers["retry-after"]) > 0
    assert low_quotas.records == []


def test_the_local_environment_has_quotas_high_enough_for_demos_and_load_runs():
    # (tests/conftest.py gives every test the local function environment, as the local stack has it)
    settings = ingest_settings()
    assert settings.quota_caller_per_second >= 10_000
    assert min(recipient_quotas().values()) >= 10_000


def test_an_item_missing_a_count_is_counted_from_zero_not_refused_forever(moto_aws):
    # Given the caller's item as another writer left it: its second, no count of that second and none of the day
    ddb = moto_aws.client("dynamodb")
    ddb.put_item(TableName=QUOTA_TABLE, Item={"counter": {"S": "caller#c-a#0"}, "second": {"N": "100"}})
    store = DynamoCounterStore(QUOTA_TABLE, ddb)
    # When two requests count in that second, then the second is full
    assert [store.take([caller_count(100)]) for _ in range(3)] == [[None], [None], [Full.SECOND]]


def test_a_counted_second_needs_a_limit():
    with pytest.raises(ValueError, match="limit"):
        Count("caller#c-a#0", 4, DAY, second=100)
