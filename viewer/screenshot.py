"""Screenshots of the delivery viewer for the docs, taken in Debian's chromium (headless, driven by Playwright).

    python -m viewer.screenshot [--out docs]

Starts the local stack on free ports in a temporary data dir, posts a few sample purchases on every channel and
one whose webhook the receiver refuses (so the DLQ has an entry), waits until every channel settled, and saves
``delivery-viewer.png`` (the list) and ``delivery-viewer-detail.png`` (one notification) into ``--out``.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from devstack.demo import request, sample_purchase
from devstack.stack import LocalStack, free_ports_config

CHROMIUM = "/usr/bin/chromium"


def _post(api: str, body: dict[str, object]) -> None:
    status, answer = request("POST", f"{api}/v1/notifications", body, {"Idempotency-Key": str(body["id"])})
    if status != 202:
        raise SystemExit(f"POST answered {status}: {answer}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m viewer.screenshot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--chromium", default=CHROMIUM)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - a dev dependency

    rng = random.Random(7)  # noqa: S311 - sample data
    with tempfile.TemporaryDirectory(prefix="viewer-shot-") as data:
        config = free_ports_config(Path(data), viewer=True)
        print("starting the local stack ...", flush=True)
        with LocalStack(config, progress=lambda line: None) as stack:
            assert stack.info is not None
            assert stack.webhook is not None
            api = stack.info.api_url
            channels = stack.info.channels
            for number in range(3):
                _post(api, sample_purchase(number, channels, rng, stack.info.push_endpoints))
            time.sleep(4)  # delivered before the refusal is armed
            stack.webhook.fail_next(1, status=400)
            _post(api, sample_purchase(3, ["webhook"], rng))
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=args.chromium, headless=True)
                page = browser.new_page(viewport={"width": 1200, "height": 760})
                page.goto(stack.info.viewer_url)
                page.locator("#dead-letters button").first.wait_for(timeout=60_000)
                page.wait_for_function(
                    "() => !document.querySelector('#notifications .s-accepted')", timeout=60_000, polling=500
                )
                args.out.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out / "delivery-viewer.png"))
                page.locator("#notifications tbody tr").last.get_by_role("link").click()
                page.locator("iframe.email").wait_for(timeout=30_000)
                page.wait_for_timeout(2000)
                page.screenshot(
                    path=str(args.out / "delivery-viewer-detail.png"),
                    full_page=True,
                    clip={"x": 0, "y": 0, "width": 1200, "height": 1300},
                )
                browser.close()
    print(f"wrote {args.out / 'delivery-viewer.png'} and {args.out / 'delivery-viewer-detail.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
