"""The delivery viewer's bookkeeping and pages without sockets: records in, status reads bounded, HTML escaped."""

from __future__ import annotations

from dataclasses import replace
from uuid import UUID

from notifications.contracts.envelopes import channel_messages
from notifications.contracts.status_view import ChannelStatus, DeliveryState, NotificationStatus
from notifications.records import dead_letter
from notifications.registry import Channel
from tests.channel_support import kafka_record, requested
from viewer.app import DeliveryViewer
from viewer.feed import StatusBoard, counters, notification_ref, open_letters
from viewer.inbox import Inboxes


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Statuses:
    """A status store's ``get``: answers what a test set, counts the reads."""

    def __init__(self) -> None:
        self.states: dict[str, dict[str, DeliveryState]] = {}
        self.reads: list[str] = []

    def __call__(self, ref) -> NotificationStatus | None:
        key = str(ref)
        self.reads.append(key)
        states = self.states.get(key)
        if states is None:
            return None
        channels = [ChannelStatus(channel=Channel(c), state=s) for c, s in states.items()]
        return NotificationStatus(id=UUID(key.rsplit("/", 1)[-1]), channels=channels)

    def many(self, notifications) -> dict[str, NotificationStatus | None]:
        return {tracked.key: self(notification_ref(tracked.key)) for tracked in notifications}


def viewer(statuses: Statuses, clock: Clock | None = None) -> DeliveryViewer:
    page = DeliveryViewer(bootstrap="127.0.0.1:1", read_status=statuses, read_statuses=statuses.many, inbox=Inboxes([]))
    if clock is not None:
        page.board = StatusBoard(
            statuses, statuses.many, clock=clock, first_read_seconds=0, in_flight_seconds=1, sent_seconds=5
        )
    return page


def test_a_requested_record_is_listed_once_with_every_channel_accepted_until_status_says_more():
    statuses = Statuses()
    page = viewer(statuses)
    envelope = requested(channels=["email", "sms"])
    record = kafka_record("notifications.requested", 0, envelope.to_json())
    page.feed.add([record, kafka_record("notifications.requested", 1, envelope.to_json())])  # ingest retried
    page.feed.add([kafka_record("notifications.requested", 2, b"not json")])

    assert [t.key for t in page.feed.notifications()] == [str(envelope.notification_id)]
    assert page.feed.unreadable == 1
    html = page.live_list()
    assert '<span class="state s-accepted" data-channel="email">email: accepted</span>' in html

    statuses.states[str(envelope.notification_id)] = {"email": DeliveryState.SENT, "sms": DeliveryState.FAILED}
    page.board.watch(str(envelope.notification_id))
    html = page.live_list()
    assert '<span class="state s-sent" data-channel="email">email: sent</span>' in html
    assert '<span class="state s-failed" data-channel="sms">sms: failed</span>' in html
    assert counters(page.feed, page.board) | {"in DLQ": 0} == {
        "notifications": 1,
        "accepted": 2,
        "sent": 1,
        "delivered": 0,
        "failed": 1,
        "in DLQ": 0,
    }


def test_the_first_paint_of_the_list_shows_each_channels_current_state_without_waiting_for_a_poll():
    # Given notifications whose channels already moved on before the page was opened
    statuses = Statuses()
    page = viewer(statuses)
    sent, fresh = requested(channels=["email", "sms"]), requested(channels=["slack"])
    page.feed.add(kafka_record("notifications.requested", i, e.to_json()) for i, e in enumerate([sent, fresh]))
    statuses.states[str(sent.notification_id)] = {"email": DeliveryState.SENT, "sms": DeliveryState.DELIVERED}

    # When the list page is first painted
    html = page.list_page()

    # Then it shows each channel's state as the store has it, and "accepted" where a channel has no row yet
    assert '<span class="state s-sent" data-channel="email">email: sent</span>' in html
    assert '<span class="state s-delivered" data-channel="sms">sms: delivered</span>' in html
    assert '<span class="state s-accepted" data-channel="slack">slack: accepted</span>' in html
    assert '<div class="counter" data-counter="sent"><b>1</b>sent</div>' in html
    assert sorted(statuses.reads) == sorted([str(sent.notification_id), str(fresh.notification_id)])
    assert 'data-poll="/live"' in html  # then kept current by the page's polls


def test_what_a_customer_typed_is_shown_as_text_never_as_markup():
    page = viewer(Statuses())
    envelope = requested(
        channels=["email"], customer={"id": "c-1", "name": "<script>alert(1)</script>", "email": "a@example.com"}
    )
    page.feed.add([kafka_record("notifications.requested", 0, envelope.to_json())])

    html = page.live_list()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html


def test_status_is_read_only_for_stale_rows_and_at_most_the_budget_per_poll():
    statuses, clock = Statuses(), Clock()
    page = viewer(statuses, clock)
    envelopes = [requested(channels=["email"]) for _ in range(5)]
    page.feed.add(kafka_record("notifications.requested", i, e.to_json()) for i, e in enumerate(envelopes))
    for envelope in envelopes:
        statuses.states[str(envelope.notification_id)] = {"email": DeliveryState.FAILED}
    board, tracked = page.board, page.feed.notifications()

    board.refresh(tracked, [], budget=3)
    assert len(statuses.reads) == 3  # the budget
    board.refresh(tracked, [], budget=3)
    assert len(statuses.reads) == 5  # the two not read yet; the others are fresh
    clock.now = 30
    board.refresh(tracked, [], budget=3)
    assert len(statuses.reads) == 5  # failed is final: read again only after a minute
    board.watch(tracked[0].key)  # replayed: read as in flight again
    board.refresh(tracked, [], budget=3)
    assert statuses.reads[5:] == [tracked[0].key]
    board.current(tracked[1])  # the detail page reads with the store's get, not from the list's lookups
    assert statuses.reads[6:] == [tracked[1].key]
    board.current(tracked[1])
    assert len(statuses.reads) == 7
    clock.now = 61
    board.refresh(tracked, [], budget=10)
    assert len(statuses.reads) == 7 + 4  # all but the one just read again


def test_a_dead_letter_is_open_until_replayed_or_its_channel_was_sent_since():
    statuses = Statuses()
    page = viewer(statuses)
    envelope = requested(channels=["webhook"])
    [message] = channel_messages(envelope)
    page.feed.add([kafka_record("notifications.requested", 0, envelope.to_json())])
    source = kafka_record("notifications.webhook", 7, message.to_json(), partition=2)
    failed = dead_letter(source, "webhook answered HTTP 400", topic="notifications.dlq", stage="sender-webhook")
    on_dlq = replace(kafka_record("notifications.dlq", 3, failed.value, key=failed.key), headers=failed.headers)
    page.feed.add([on_dlq])

    [letter] = open_letters(page.feed, page.board)
    assert (letter.position, letter.channel, letter.notification_key) == ("3", "webhook", str(message.key))
    assert letter.letter.reason == "webhook answered HTTP 400"
    html = page.live_list()
    assert 'data-position="3"' in html
    assert "webhook answered HTTP 400" in html

    statuses.states[str(message.key)] = {"webhook": DeliveryState.SENT}
    page.board.watch(str(message.key))
    page.board.refresh(page.feed.notifications(), [], budget=1)
    assert open_letters(page.feed, page.board) == []


def test_the_list_reads_many_notifications_in_batches_of_key_lookups_as_get_reads_each():
    import boto3
    from moto import mock_aws

    from devstack import aws_resources
    from notifications.status import StatusTable
    from tests.support import DynamoStatus
    from viewer.feed import BatchStatusReader

    with mock_aws():
        session = boto3.Session(region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
        aws_resources.create_all(session)
        dynamodb = session.client("dynamodb")
        store = DynamoStatus(StatusTable(aws_resources.STATUS_TABLE, dynamodb))
        page = viewer(Statuses())
        envelopes = [requested(channels=["email", "sms", "slack"]) for _ in range(40)]  # 120 keys: two calls
        page.feed.add(kafka_record("notifications.requested", i, e.to_json()) for i, e in enumerate(envelopes))
        for number, envelope in enumerate(envelopes[:-1]):  # the last one has no item yet
            if number % 2:
                store.record_sent(envelope.key, Channel("sms"), "sms-id")
                store.record_failure(envelope.key, Channel("email"), "mailbox full", final=True)
            else:
                store.record_sent(envelope.key, Channel("slack"), "req-1")
        reader = BatchStatusReader(aws_resources.STATUS_TABLE, dynamodb)

        notifications = page.feed.notifications()
        found = reader([*notifications, notifications[0]])  # a row shown twice (list and DLQ) is asked once

        assert reader.calls == 2
        assert found == {str(e.key): store.get(e.key) for e in envelopes}
        assert found[str(envelopes[-1].key)] is None
        assert {c.channel.value: c.state.value for c in found[str(envelopes[1].key)].channels} == {
            "email": "failed",
            "sms": "sent",
        }


def test_rows_off_the_page_are_read_five_times_less_often_than_the_rows_shown():
    statuses, clock = Statuses(), Clock()
    page = viewer(statuses, clock)
    shown, off_page = requested(channels=["email"]), requested(channels=["email"])
    page.feed.add(kafka_record("notifications.requested", i, e.to_json()) for i, e in enumerate([off_page, shown]))
    for envelope in (shown, off_page):
        statuses.states[str(envelope.notification_id)] = {"email": DeliveryState.ACCEPTED}  # in flight
    [on, off] = page.feed.notifications()
    page.board.refresh([on], [on, off], budget=10)
    assert statuses.reads == [on.key, off.key]

    clock.now = 2
    page.board.refresh([on], [on, off], budget=10)
    assert statuses.reads[2:] == [on.key]
    clock.now = 5
    page.board.refresh([on], [on, off], budget=10)
    assert statuses.reads[3:] == [on.key, off.key]


def test_a_new_notification_is_first_read_after_the_time_no_channel_can_be_sent_in():
    statuses, clock = Statuses(), Clock()
    page = viewer(statuses)
    page.board = StatusBoard(statuses, statuses.many, clock=clock, first_read_seconds=2)
    envelope = requested(channels=["email"])
    page.feed.add([kafka_record("notifications.requested", 0, envelope.to_json())])
    listed = page.feed.notifications()

    page.board.refresh(listed, [], budget=10)
    clock.now = 1.9
    page.board.refresh(listed, [], budget=10)
    assert statuses.reads == []
    clock.now = 2
    page.board.refresh(listed, [], budget=10)
    assert statuses.reads == [str(envelope.notification_id)]
