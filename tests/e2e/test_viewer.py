"""The delivery viewer of the local stack, in a real browser: Debian's chromium, headless, driven by Playwright.

A purchase posted to the API appears on the viewer's page without a reload and turns delivered; its detail page
shows the email as SES received it (HTML in a sandboxed frame, and text), the SMS text with its segment count,
the Slack blocks and the webhook body. A notification whose webhook the receiver refuses for good ends on the
DLQ, shows there with its reason, and the page's Replay button puts it back: it leaves the DLQ view and is
delivered. An email to the SES simulator's bounce address shows bounced, and the next one to it is dead-lettered
as suppressed.

Every assertion reads the text the page shows, so a page showing a wrong state fails.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from devstack.stack import LocalStack
from notifications.registry import Channel
from tests.e2e.test_local_stack import call, eventually
from tests.support import caller_id, sample_request

# The shared stack runs no viewer unless a test asks for it.
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("delivery_viewer")]

# Debian's chromium (installed by `make tools`); Playwright's own browser builds are not used.
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHANNELS = [channel.value for channel in Channel]
# The state each channel ends in: email and SMS are "delivered" once the provider reports it (SES events, SNS SMS
# delivery status); Slack and the webhook say nothing after their 2xx, so they stay "sent".
FINAL_STATE = dict.fromkeys(CHANNELS, "sent") | {"email": "delivered", "sms": "delivered"}
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make tools` installs Debian's chromium (the viewer's browser test)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        yield page
    finally:
        page.close()


def post(local_stack: LocalStack, body: dict[str, object]) -> str:
    """POST the purchase; answers its status key (the local caller's namespace)."""
    assert local_stack.info is not None
    status, answer = call(
        "POST", f"{local_stack.info.api_url}/v1/notifications", body, {"Idempotency-Key": str(body["id"])}
    )
    assert status == 202, answer
    return f"{caller_id()}/{body['id']}"


def dead_letter_one(local_stack: LocalStack) -> tuple[str, str]:
    """A notification that ends on the DLQ: the webhook receiver answers its one request 400, a permanent
    failure. Answers its status key and the channel that failed. (A suppressed email address ends on the DLQ too,
    but a replay fails again, by design: the last test.)"""
    assert local_stack.webhook is not None
    receiver = local_stack.webhook
    # No other delivery in flight may take the refusal: wait until the receiver has been quiet for a second.
    eventually(lambda: not receiver.deliveries() or time.monotonic() - receiver.deliveries()[-1].received_at > 1)
    receiver.fail_next(1, status=400)
    return post(local_stack, sample_request(channels=["webhook"])), "webhook"


def test_a_purchase_appears_with_its_status_and_what_each_provider_received(local_stack: LocalStack, page: Page):
    assert local_stack.info is not None
    assert local_stack.info.viewer_url, "the stack announces the viewer's address"
    page.goto(local_stack.info.viewer_url)
    expect(page.locator("h2", has_text="Notifications")).to_be_visible()

    # When a purchase is posted while the page is open
    body = sample_request(channels=CHANNELS)
    body["customer"]["push_endpoint"] = local_stack.info.push_endpoints[0]  # the app on one of the stack's devices
    order_id = body["purchase"]["order_id"]
    key = post(local_stack, body)

    # Then it appears without a reload, and each channel shows its final state
    row = page.locator(f'#notifications tr[data-key="{key}"]')
    expect(row).to_contain_text(order_id, timeout=WAIT_MS)
    expect(row).to_contain_text("Ada")
    for channel in CHANNELS:
        expect(row.locator(f'[data-channel="{channel}"]')).to_have_text(
            f"{channel}: {FINAL_STATE[channel]}", timeout=WAIT_MS
        )
    expect(page.locator('[data-counter="notifications"] b')).not_to_have_text("0")

    # When its detail page is opened
    row.get_by_role("link").click()
    expect(page.locator("h1")).to_contain_text(str(body["id"]))

    # Then every channel shows its state, and the email is the one SES received, in a frame without scripts
    for channel in CHANNELS:
        card = page.locator(f'section.card[data-channel="{channel}"]')
        expect(card.locator("[data-state]")).to_have_text(FINAL_STATE[channel])
    email = page.locator('section.card[data-channel="email"]')
    expect(email).to_contain_text("ada@example.com", timeout=WAIT_MS)
    expect(email).to_contain_text(f"Thank you for your order {order_id}")
    frame = email.locator("iframe.email")
    expect(frame).to_have_attribute("sandbox", "")
    expect(frame.content_frame.locator("body")).to_contain_text(f"thank you for your order {order_id}")
    expect(frame.content_frame.locator("body")).to_contain_text("Total: 49.90 EUR")
    expect(email.locator("pre.text")).to_contain_text(f"thank you for your order {order_id}")
    expect(email).to_contain_text("SES event Delivery")

    # And the SMS text with its segment count, the Slack blocks and the webhook body as each provider got them
    sms = page.locator('section.card[data-channel="sms"]')
    expect(sms.locator("pre.text")).to_contain_text(order_id)
    expect(sms.locator('[data-fact="segments"]')).to_have_text("1 (GSM-7)")
    slack = page.locator('section.card[data-channel="slack"]')
    expect(slack.locator(".blocks")).to_contain_text(f"New order {order_id}: 49.90 EUR")
    webhook = page.locator('section.card[data-channel="webhook"]')
    expect(webhook.locator("pre.payload")).to_contain_text(f'"notification_id": "{body["id"]}"')
    expect(webhook.locator('[data-fact="signature"]')).to_have_text("valid")
    push = page.locator('section.card[data-channel="push"]')
    expect(push.locator('[data-fact="subject"]')).to_have_text(f"Order {order_id} confirmed")
    expect(push.locator("pre.payload")).to_contain_text('"fcmV1Message"')


def test_a_dead_letter_shows_its_reason_and_is_replayed_from_the_page(local_stack: LocalStack, page: Page):
    assert local_stack.info is not None
    assert local_stack.webhook is not None
    page.goto(local_stack.info.viewer_url)

    # Given a notification whose webhook delivery failed for good
    key, channel = dead_letter_one(local_stack)

    # Then the page shows it on the DLQ with the reason, and its channel failed
    letter = page.locator(f'#dead-letters tr[data-key="{key}"]')
    expect(letter).to_contain_text("answered HTTP 400", timeout=WAIT_MS)
    expect(letter).to_contain_text(channel)
    row = page.locator(f'#notifications tr[data-key="{key}"]')
    expect(row.locator(f'[data-channel="{channel}"]')).to_have_text(f"{channel}: failed", timeout=WAIT_MS)
    dlq_count = int(page.locator('[data-counter="in DLQ"] b').inner_text())
    assert dlq_count >= 1

    # When it is replayed from the page
    letter.get_by_role("button", name="Replay").click()

    # Then the page says so, it leaves the DLQ view, and it is delivered (the receiver accepts it this time)
    expect(page.locator(".notice")).to_contain_text("Replayed DLQ offset")
    expect(page.locator(f'#dead-letters tr[data-key="{key}"]')).to_have_count(0)
    expect(row.locator(f'[data-channel="{channel}"]')).to_have_text(
        f"{channel}: {FINAL_STATE[channel]}", timeout=WAIT_MS
    )
    nid = key.rsplit("/", 1)[1]
    accepted = [
        d for d in local_stack.webhook.accepted("/webhook/local-shop") if d.json().get("notification_id") == nid
    ]
    assert len(accepted) == 1


def test_a_bounce_shows_on_the_page_and_the_next_email_to_that_address_is_dead_lettered_as_suppressed(
    local_stack: LocalStack, page: Page
):
    assert local_stack.info is not None
    page.goto(local_stack.info.viewer_url)
    # The SES mailbox simulator's bounce address (a +label keeps this test's address apart): SES reports a
    # permanent bounce (https://docs.aws.amazon.com/ses/latest/dg/send-an-email-from-console.html#send-email-simulator)
    address = f"bounce+viewer-{uuid.uuid4().hex[:8]}@simulator.amazonses.com"
    customer = {"id": "c-bounce", "name": "Ada", "email": address}

    # When an email to it bounces
    first = post(local_stack, sample_request(channels=["email"], customer=customer))

    # Then the page shows the channel bounced
    row = page.locator(f'#notifications tr[data-key="{first}"]')
    expect(row.locator('[data-channel="email"]')).to_have_text("email: bounced", timeout=WAIT_MS)

    # And the next email to that address is not sent: it fails for good and shows on the DLQ as suppressed
    second = post(local_stack, sample_request(channels=["email"], customer=customer))
    row = page.locator(f'#notifications tr[data-key="{second}"]')
    expect(row.locator('[data-channel="email"]')).to_have_text("email: failed", timeout=WAIT_MS)
    expect(page.locator(f'#dead-letters tr[data-key="{second}"]')).to_contain_text("suppressed", timeout=WAIT_MS)
