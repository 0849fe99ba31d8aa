"""The delivery viewer of the local stack: every notification, its status per channel, what each provider received,
the dead letters with a Replay button. An optional part of the stack (``StackConfig.viewer``, on for
``python -m devstack up``, which prints its address), never deployed.

Pages (plain server-rendered HTML from this module; a few lines of inline JavaScript refresh the live parts by
fetching their HTML every ``POLL_MS`` while the page is visible; nothing is loaded from the network):

- ``/``: counters, the newest notifications with each channel's state, what each caller's own Slack and webhook
  destination received, the open dead letters with their reason; the first paint already shows the status each
  listed notification has (read for the page, not left to the first poll);
- ``/notification?key=<caller>/<id>``: per channel the state, attempts, history and error, and what the provider
  received: the rendered email (HTML in a sandboxed frame, ``/email``), the Slack blocks, the SMS text and its
  segment count, the webhook body;
- ``POST /replay`` (``position``): puts a dead letter back on its source topic (``ops.redrive``'s logic).

Where the data comes from and why it costs the pipeline nothing: ``viewer.feed`` (Kafka, status reads) and
``viewer.inbox`` (the providers' copies).
"""

from __future__ import annotations

import html
import json
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from devstack import aws_resources
from devstack.ports import preferred_port
from devstack.stack import EndpointSession, LocalStack
from devstack.threaded_server import ThreadedServer
from notifications.contracts.status_view import ChannelStatus, NotificationStatus
from viewer.feed import (
    FINAL_STATES,
    BatchStatusReader,
    Feed,
    Letter,
    StatusBoard,
    channel_state,
    counters,
    open_letters,
)
from viewer.inbox import ProviderInbox, ProviderMessage, ReceiverInbox, Tracked, provider_inbox

log = logging.getLogger("viewer")

POLL_MS = 3000
LIST_ROWS = 50  # notifications on the list page
NOTIFICATIONS_PER_POLL = 20  # whose status one poll of the list page may read (one BatchGetItem call)

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
header{background:#1d2330;color:#fff;padding:10px 20px;display:flex;gap:16px;align-items:baseline}
header a{color:#fff;text-decoration:none;font-weight:600}header small{color:#aab}
main{padding:16px 20px;max-width:1200px}
h1{font-size:18px;margin:0}h2{font-size:16px;margin:18px 0 8px}h3{font-size:14px;margin:12px 0 6px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dde}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eef;vertical-align:top}
th{background:#eef0f4;font-weight:600}
code,pre{font:12px/1.4 ui-monospace,Menlo,Consolas,monospace}
pre{background:#fff;border:1px solid #dde;padding:8px;overflow:auto;max-height:320px;white-space:pre-wrap}
.counters{display:flex;gap:10px;flex-wrap:wrap}
.counter{background:#fff;border:1px solid #dde;border-radius:6px;padding:8px 14px;min-width:90px}
.counter b{display:block;font-size:22px}
.state{display:inline-block;border-radius:10px;padding:0 8px;margin:1px 2px;font-size:12px;background:#e4e6eb}
.s-sent{background:#dbe8ff;color:#123f91}.s-delivered{background:#d5f5df;color:#11612e}
.s-failed,.s-dead,.s-bounced,.s-complained,.s-undeliverable{background:#ffdcdc;color:#8f1515}
.card{background:#fff;border:1px solid #dde;border-radius:6px;padding:10px 14px;margin:10px 0}
.msg{border-top:1px dashed #ccd;margin-top:8px;padding-top:8px}
iframe.email{width:100%;height:320px;border:1px solid #ccd;background:#fff}
.notice{background:#fff7d6;border:1px solid #e8d27a;padding:6px 10px;border-radius:4px}
.muted{color:#667}dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;margin:0}dt{color:#667}
button{font:inherit;padding:2px 10px;cursor:pointer}
"""

_SCRIPT = """
const POLL_MS = %d;
for (const el of document.querySelectorAll('[data-poll]')) {
  let last = null;
  const tick = async () => {
    if (!document.hidden) {
      try {
        const answer = await fetch(el.dataset.poll, {cache: 'no-store'});
        if (answer.ok) {
          const text = await answer.text();
          if (text !== last) { el.innerHTML = text; last = text; }
        }
      } catch (e) { /* the stack is stopping; try again */ }
    }
    setTimeout(tick, POLL_MS);
  };
  setTimeout(tick, POLL_MS);
}
""" % (POLL_MS,)  # noqa: UP031 - braces of JavaScript


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _time(value: str | datetime | None) -> str:
    if value is None:
        return ""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return when.strftime("%H:%M:%S")


def _state(state: str, label: str | None = None, channel: str | None = None) -> str:
    attribute = f' data-channel="{esc(channel)}"' if channel else ""
    return f'<span class="state s-{esc(state)}"{attribute}>{esc(label or state)}</span>'


def _page(title: str, body: str, poll: str | None = None, notice: str | None = None) -> str:
    live = f'<div id="live" data-poll="{esc(poll)}">{body}</div>' if poll else body
    note = f'<p class="notice" role="status">{esc(notice)}</p>' if notice else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>"
        '<header><a href="/">Delivery viewer</a><small>local stack - what every provider received</small></header>'
        f"<main>{note}{live}</main><script>{_SCRIPT}</script></body></html>"
    )


def _link(tracked: Tracked) -> str:
    return "/notification?" + urlencode({"key": tracked.key})


class DeliveryViewer:
    """The viewer's HTTP server on 127.0.0.1 and what it reads (see the module docstring)."""

    def __init__(
        self,
        *,
        bootstrap: str,
        read_status: Callable[[Any], NotificationStatus | None],
        read_statuses: Callable[[Sequence[Tracked]], dict[str, NotificationStatus | None]],
        inbox: ProviderInbox,
        port: int = 0,
        data_dir: Path | None = None,
        receivers: ReceiverInbox | None = None,
    ) -> None:
        self.feed = Feed(bootstrap, replayed_file=data_dir / "viewer-replayed.json" if data_dir else None)
        self.board = StatusBoard(read_status, read_statuses)
        self.inbox = inbox
        self.receivers = receivers
        self._poll_lock = threading.Lock()
        self._http = ThreadedServer(_handler_for(self), port, name="viewer")

    @classmethod
    def for_stack(cls, stack: LocalStack) -> DeliveryViewer:
        """The viewer of a running stack: its Kafka, status table, local SES and receivers; its port the config's
        ``viewer_port``, or another when taken."""
        from notifications.status import DynamoStatusView, StatusTable  # noqa: PLC0415

        assert stack.info is not None, "the stack runs"
        table = aws_resources.STATUS_TABLE
        dynamodb = EndpointSession(stack.info.aws_endpoint, stack.info.dynamodb_endpoint).client("dynamodb")
        receivers = ReceiverInbox(stack.slack, stack.webhook)
        return cls(
            bootstrap=stack.info.bootstrap,
            read_status=DynamoStatusView(StatusTable(table, dynamodb)).get,
            read_statuses=BatchStatusReader(table, dynamodb),
            inbox=provider_inbox(stack.ses, stack.info.aws_endpoint, receivers),
            port=preferred_port(stack.config.viewer_port),
            data_dir=stack.data_dir,
            receivers=receivers,
        )

    def start(self) -> DeliveryViewer:
        self.feed.start()
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()
        self.feed.stop()

    @property
    def url(self) -> str:
        return self._http.url("/")

    # -- list page ---------------------------------------------------------------------------------------------

    def list_page(self, notice: str | None = None) -> str:
        """The list page as first painted: each row with the status it has now, then kept current by polls."""
        return _page("Delivery viewer", self.live_list(first_paint=True), "/live", notice)

    def live_list(self, *, first_paint: bool = False) -> str:
        notifications = self.feed.notifications()
        shown = notifications[:LIST_ROWS]
        with self._poll_lock:  # two open pages poll once each, not twice each
            # The rows on the page and the dead letters' notifications first, then the rest for the counters; the
            # first paint reads every row not read yet, a poll a bounded number.
            by_key = {t.key: t for t in notifications}
            letters = [by_key[e.notification_key] for e in self.feed.letters() if e.notification_key in by_key]
            listed = [*shown, *letters]
            budget = len(listed) if first_paint else NOTIFICATIONS_PER_POLL
            self.board.refresh(listed, notifications[LIST_ROWS:], budget, unread_now=first_paint)
        counts = counters(self.feed, self.board)
        boxes = "".join(
            f'<div class="counter" data-counter="{esc(name)}"><b>{value}</b>{esc(name)}</div>'
            for name, value in counts.items()
        )
        rows = "".join(self._row(tracked) for tracked in shown) or (
            '<tr><td colspan="5" class="muted">No notification yet: post one to the API '
            "(<code>python -m devstack demo</code>).</td></tr>"
        )
        more = (
            f'<p class="muted">The newest {LIST_ROWS} of {len(notifications)} shown.</p>'
            if len(notifications) > LIST_ROWS
            else ""
        )
        return (
            f'<section class="counters" aria-label="counters">{boxes}</section>'
            '<p class="muted">Deliveries (one per notification and channel) by state; in DLQ: dead letters not '
            "replayed and not delivered since.</p>"
            '<h2>Notifications</h2><table id="notifications"><thead><tr><th>accepted</th><th>notification</th>'
            "<th>order</th><th>customer</th><th>channels</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>{more}{self._destinations()}{self._dlq()}"
        )

    def _destinations(self) -> str:
        """Per caller, what its own Slack and webhook destination (a receiver path) received."""
        if self.receivers is None:
            return ""
        rows = (
            "".join(
                f'<tr data-destination="{esc(d.path)}"><td>{esc(d.caller)}</td><td>{esc(d.channel)}</td>'
                f"<td><code>{esc(d.path)}</code></td><td>{d.requests}</td><td>{d.accepted}</td><td>{d.refused}</td></tr>"
                for d in self.receivers.per_destination()
            )
            or '<tr><td colspan="6" class="muted">Nothing posted to a Slack or webhook destination yet.</td></tr>'
        )
        return (
            "<h2>Received per caller</h2>"
            '<p class="muted">Each caller\'s own Slack and webhook destination is a path of its own on the local '
            "receivers; a message delivered to another caller's path would show here.</p>"
            '<table id="destinations"><thead><tr><th>caller</th><th>channel</th><th>destination</th>'
            "<th>requests</th><th>delivered</th><th>refused</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )

    def _row(self, tracked: Tracked) -> str:
        status = self.board.cached(tracked.key)
        states = "".join(
            _state(state, f"{channel}: {state}", channel)
            for channel in tracked.channels
            for state in [channel_state(status, channel)]
        )
        return (
            f'<tr data-key="{esc(tracked.key)}"><td>{esc(_time(tracked.accepted_at))}</td>'
            f'<td><a href="{esc(_link(tracked))}"><code>{esc(tracked.id)}</code></a></td>'
            f"<td>{esc(tracked.order_id)}</td><td>{esc(tracked.customer)}</td><td>{states}</td></tr>"
        )

    def _dlq(self) -> str:
        letters = open_letters(self.feed, self.board)
        rows = "".join(self._letter_row(entry) for entry in reversed(letters)) or (
            '<tr><td colspan="6" class="muted">Nothing on the DLQ.</td></tr>'
        )
        return (
            '<h2 id="dlq">Dead letters</h2><table id="dead-letters"><thead><tr><th>DLQ offset</th><th>notification</th>'
            "<th>channel</th><th>stage</th><th>reason</th><th></th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )

    def _letter_row(self, entry: Letter) -> str:
        tracked = self.feed.notification(entry.notification_key) if entry.notification_key else None
        who = (
            f'<a href="{esc(_link(tracked))}"><code>{esc(tracked.id)}</code></a>'
            if tracked
            else f"<code>{esc(entry.notification_key or '?')}</code>"
        )
        replay = (
            '<form method="post" action="/replay">'
            f'<input type="hidden" name="position" value="{esc(entry.position)}">'
            f'<button type="submit">Replay</button></form>'
            if entry.letter.original is not None
            else '<span class="muted">no source topic</span>'
        )
        return (
            f'<tr data-position="{esc(entry.position)}" data-key="{esc(entry.notification_key or "")}">'
            f"<td>{esc(entry.position)}</td><td>{who}</td><td>{esc(entry.channel or '?')}</td>"
            f"<td>{esc(entry.letter.stage)}</td><td>{esc(entry.letter.reason)}</td><td>{replay}</td></tr>"
        )

    # -- detail page -------------------------------------------------------------------------------------------

    def live_notification(self, tracked: Tracked) -> str:
        status = self.board.current(tracked)
        received = self.inbox.received(tracked, status)
        by_channel = {c.channel.value: c for c in status.channels} if status is not None else {}
        cards = "".join(
            self._channel_card(tracked, channel, by_channel.get(channel), [m for m in received if m.channel == channel])
            for channel in tracked.channels
        )
        letters = [e for e in open_letters(self.feed, self.board) if e.notification_key == tracked.key]
        dlq = (
            '<h2>On the DLQ</h2><table id="dead-letters"><tbody>'
            + "".join(self._letter_row(e) for e in letters)
            + "</tbody></table>"
            if letters
            else ""
        )
        return (
            f"<h1>Notification <code>{esc(tracked.id)}</code></h1>"
            f"<dl><dt>order</dt><dd>{esc(tracked.order_id)}</dd><dt>customer</dt><dd>{esc(tracked.customer)}</dd>"
            f"<dt>accepted</dt><dd>{esc(tracked.accepted_at)}</dd><dt>correlation id</dt>"
            f"<dd><code>{esc(tracked.correlation_id)}</code></dd><dt>status key</dt><dd><code>{esc(tracked.key)}</code>"
            f"</dd><dt>locale</dt><dd>{esc(tracked.locale)}</dd></dl>{cards}{dlq}"
        )

    def _channel_card(
        self, tracked: Tracked, channel: str, status: ChannelStatus | None, received: Sequence[ProviderMessage]
    ) -> str:
        state = status.state.value if status is not None else "accepted"
        facts = [("attempts", str(status.attempts) if status else "0")]
        if status is not None and status.provider_message_id:
            facts.append(("provider message id", status.provider_message_id))
        if status is not None and status.last_error:
            facts.append(("last error", status.last_error))
        if status is not None and status.updated_at:
            facts.append(("updated", status.updated_at.isoformat()))
        details = "".join(f"<dt>{esc(name)}</dt><dd>{esc(value)}</dd>" for name, value in facts)
        history = getattr(status, "history", None) or []  # the status timeline (StatusEvent: event, at, reason)
        timeline = (
            '<h3>History</h3><ol class="history">'
            + "".join(
                f"<li>{esc(_time(event.at))} {_state(event.event)}"
                + (f" {esc(event.reason)}" if getattr(event, "reason", None) else "")
                + "</li>"
                for event in history
            )
            + "</ol>"
            if history
            else ""
        )
        messages = "".join(self._message(tracked, message) for message in received) or (
            '<p class="muted">Nothing received yet.</p>'
            if state not in FINAL_STATES
            else '<p class="muted">Nothing received.</p>'
        )
        return (
            f'<section class="card" data-channel="{esc(channel)}"><h2>{esc(channel)} '
            f'<span class="state s-{esc(state)}" data-state>{esc(state)}</span></h2><dl>{details}</dl>{timeline}'
            f"<h3>What the provider received</h3>{messages}</section>"
        )

    def _message(self, tracked: Tracked, message: ProviderMessage) -> str:
        facts = [("provider", message.provider)]
        if message.to:
            facts.append(("to", message.to))
        if message.message_id:
            facts.append(("message id", message.message_id))
        if message.answered is not None:
            facts.append(("answered", "connection dropped" if message.answered == 0 else f"HTTP {message.answered}"))
        if message.signature_ok is not None:
            facts.append(("signature", "valid" if message.signature_ok else "INVALID"))
        if message.subject:
            facts.append(("subject", message.subject))
        if message.sms_parts is not None:
            facts.append(("segments", f"{message.sms_parts} ({message.sms_encoding})"))
        facts_html = "".join(f'<dt>{esc(n)}</dt><dd data-fact="{esc(n)}">{esc(v)}</dd>' for n, v in facts)
        parts = [f"<dl>{facts_html}</dl>"]
        if message.html is not None and message.message_id:
            source = "/email?" + urlencode({"key": tracked.key, "id": message.message_id})
            parts.append(
                f'<h3>HTML</h3><iframe class="email" sandbox="" referrerpolicy="no-referrer" '
                f'title="email {esc(message.message_id)}" src="{esc(source)}"></iframe>'
            )
        if message.text is not None:
            label = "Text" if message.channel == "email" else "Message"
            parts.append(f'<h3>{label}</h3><pre class="text">{esc(message.text)}</pre>')
        if message.channel == "slack" and isinstance(message.payload, dict):
            parts.append(f'<h3>Blocks</h3><div class="blocks">{_slack_preview(message.payload)}</div>')
        if message.payload is not None:
            body = json.dumps(message.payload, indent=2, ensure_ascii=False)
            parts.append(f'<h3>Body</h3><pre class="payload">{esc(body)}</pre>')
        parts.extend(f'<p class="muted">{esc(note)}</p>' for note in message.notes)
        return f'<div class="msg">{"".join(parts)}</div>'

    def email_html(self, tracked: Tracked, message_id: str) -> str | None:
        status = self.board.current(tracked)
        for message in self.inbox.received(tracked, status):
            if message.message_id == message_id and message.html is not None:
                return message.html
        return None

    # -- replay ------------------------------------------------------------------------------------------------

    def replay(self, position: str) -> str:
        from ops.redrive import RedriveError  # noqa: PLC0415

        try:
            results = self.feed.replay(position)
        except RedriveError as exc:
            return f"Not replayed: {exc}"
        lines = []
        for entry, error in results:
            if entry.notification_key:
                self.board.watch(entry.notification_key)
            target = entry.letter.original.topic if entry.letter.original else "?"
            lines.append(
                f"Replayed DLQ offset {position} to {target}"
                if error is None
                else f"NOT replayed DLQ offset {position}: {type(error).__name__}: {error}"
            )
        return "; ".join(lines)


def _slack_preview(payload: dict[str, Any]) -> str:
    """The blocks' text as a reader sees it (header bold, sections and context as text; mrkdwn left as is)."""
    out = []
    for block in payload.get("blocks") or []:
        kind = block.get("type")
        if kind == "header":
            out.append(f"<p><b>{esc(block.get('text', {}).get('text'))}</b></p>")
        elif kind == "section":
            out.append(f'<p style="white-space:pre-wrap">{esc(block.get("text", {}).get("text"))}</p>')
        elif kind == "context":
            texts = " ".join(str(e.get("text", "")) for e in block.get("elements") or [])
            out.append(f'<p class="muted">{esc(texts)}</p>')
    return "".join(out)


# A rendered email is shown in a frame without scripts, forms, plugins or same-origin rights (sandbox), and may
# load nothing from the network.
_EMAIL_POLICY = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _handler_for(viewer: DeliveryViewer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, body: str, content_type: str = "text/html; charset=utf-8", **headers: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(data)

        def _tracked(self, query: dict[str, list[str]]) -> Tracked | None:
            return viewer.feed.notification((query.get("key") or [""])[0])

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            try:
                self._get(parts.path, query)
            except ConnectionError:  # the page went away (closed, reloaded) before its answer
                return
            except Exception:
                log.exception("viewer: GET %s failed", parts.path)
                self._send(500, "<p>The viewer failed on this page; see the stack's output.</p>")

        def _get(self, path: str, query: dict[str, list[str]]) -> None:
            if path == "/":
                notice = query.get("notice", [""])[0] or None
                self._send(200, viewer.list_page(notice))
            elif path == "/live":
                self._send(200, viewer.live_list())
            elif path in ("/notification", "/notification/live"):
                tracked = self._tracked(query)
                if tracked is None:
                    self._send(404, _page("Not found", '<p>No such notification (yet). <a href="/">Back</a></p>'))
                    return
                body = viewer.live_notification(tracked)
                if path.endswith("/live"):
                    self._send(200, body)
                else:
                    poll = "/notification/live?" + urlencode({"key": tracked.key})
                    self._send(200, _page(f"Notification {tracked.id}", body, poll))
            elif path == "/email":
                tracked = self._tracked(query)
                message = viewer.email_html(tracked, (query.get("id") or [""])[0]) if tracked else None
                if message is None:
                    self._send(404, "not found", "text/plain; charset=utf-8")
                else:
                    self._send(200, message, Content_Security_Policy=_EMAIL_POLICY)
            elif path == "/health":
                self._send(200, "ok", "text/plain; charset=utf-8")
            else:
                self._send(404, _page("Not found", '<p>Not found. <a href="/">Back</a></p>'))

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
            if parts.path != "/replay" or not form.get("position"):
                self._send(404, "not found", "text/plain; charset=utf-8")
                return
            try:
                notice = viewer.replay(form["position"][0])
            except Exception as exc:
                log.exception("viewer: replay failed")
                notice = f"Not replayed: {type(exc).__name__}: {exc}"
            self._send(303, "", Location="/?" + urlencode({"notice": notice}, quote_via=quote) + "#dlq")

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
