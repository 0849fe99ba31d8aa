"""Each caller's Slack and webhook destinations: set, rotate the webhook's signing key, remove, list.

    notifications-destinations set --caller c-<26 letters> --channel slack --url https://hooks.slack.com/...
    notifications-destinations set --caller c-... --channel webhook --url https://erp.shop.example/hooks
    notifications-destinations set --caller c-... --channel webhook --url https://... --signing-key whsec_...
    notifications-destinations rotate-key --caller c-... [--signing-key whsec_...]
    notifications-destinations rotate-key --caller c-... --finish
    notifications-destinations remove --caller c-... --channel slack|webhook [--recovery-days 7]
    notifications-destinations list --caller c-...

A destination is the Secrets Manager secret ``<prefix>/<channel>/<caller id>`` (``notifications.destinations``);
the prefix is the stack's ``DestinationSecretPrefix`` (``--prefix``, default ``DESTINATION_SECRET_PREFIX``). The
caller id is the one the API gives the shop (``python -m notifications.callers iam <arn>`` or ``jwt <iss> <sub>``).
The content is validated by the channel's own model before it is written, so a sender never reads one it refuses.

- ``set`` creates the secret or gives it a new value (a removed one is restored first). For the webhook, a new
  destination gets a fresh signing key (``whsec_`` + base64 of 32 random bytes) unless ``--signing-key`` gives one;
  an existing one keeps its keys. A generated key is printed once, to hand to the shop: it is not shown again.
- ``rotate-key`` puts a new key in front of the current one: the webhook is signed with both until the shop's
  receiver knows the new one; ``--finish`` then drops the old one. One rotation at a time.
- ``remove`` schedules the secret's deletion (7 to 30 days to change one's mind; ``set`` restores it). Ingest counts
  it gone at once (422 for the channel); records already accepted are dead-lettered by the sender.
- ``list`` shows each channel's destination state from DescribeSecret: never a URL or a key.

Senders and ingest cache what they read for a minute per execution environment, so a change reaches every
delivery within about a minute. Uses boto3's credentials, region and endpoint (``AWS_ENDPOINT_URL`` locally).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets as random_bytes
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from pydantic import ValidationError

from notifications.channels.slack.sender import SlackTarget
from notifications.channels.webhook.sender import MIN_KEY_BYTES, SECRET_PREFIX, WebhookTarget, signing_key_bytes
from notifications.contracts.fields import CALLER_ID_PATTERN
from notifications.destinations import PREFIX_PATTERN, secret_name

CHANNELS = ("slack", "webhook")
# Secrets Manager keeps a deleted secret 7 to 30 days before it deletes it for good:
# https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_DeleteSecret.html
MIN_RECOVERY_DAYS, MAX_RECOVERY_DAYS = 7, 30


class DestinationsError(Exception):
    """The destination cannot be read or written, or the change makes no sense in its current state."""


def new_signing_key() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(random_bytes.token_bytes(MIN_KEY_BYTES)).decode()


def _fields(exc: ValidationError) -> str:
    """What is wrong, by field and reason, never with the value (a URL or a key)."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or '(value)'}: {e['msg']}" for e in exc.errors(include_input=False)
    )


class Destinations:
    """One stack's destination secrets (a boto3 Secrets Manager client)."""

    def __init__(self, client: Any, prefix: str) -> None:
        if not re.fullmatch(PREFIX_PATTERN, prefix):
            raise DestinationsError(f"prefix {prefix!r} is not a secret name path (letters, digits, /_+=.@-)")
        self._client, self._prefix = client, prefix

    def name(self, caller: str, channel: str) -> str:
        return secret_name(self._prefix, channel, caller)

    def _call(self, operation: str, **params: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 - boto3 only in the command

        try:
            return getattr(self._client, operation)(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "Unknown")
            raise DestinationsError(f"{operation} {params.get('SecretId') or params.get('Name')}: {code}") from exc
        except BotoCoreError as exc:
            raise DestinationsError(f"{operation}: {type(exc).__name__}") from exc

    def describe(self, caller: str, channel: str) -> dict[str, Any] | None:
        """DescribeSecret of the destination, None when there is none (never its value)."""
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            return self._client.describe_secret(SecretId=self.name(caller, channel))  # type: ignore[no-any-return]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None
            raise DestinationsError(f"DescribeSecret: {exc.response.get('Error', {}).get('Code')}") from exc

    def _read(self, caller: str, channel: str) -> dict[str, Any]:
        described = self.describe(caller, channel)
        if described is None or "DeletedDate" in described:
            raise DestinationsError(f"caller {caller} has no {channel} destination (set it first)")
        value = self._call("get_secret_value", SecretId=self.name(caller, channel))["SecretString"]
        content: dict[str, Any] = json.loads(value)
        return content

    def _write(self, caller: str, channel: str, content: dict[str, Any]) -> None:
        name, value = self.name(caller, channel), json.dumps(content)
        described = self.describe(caller, channel)
        if described is None:
            description = f"{channel} destination of caller {caller} (notifications-destinations)"
            self._call("create_secret", Name=name, SecretString=value, Description=description)
            return
        if "DeletedDate" in described:  # removed but still recoverable: the name is taken until it is restored
            self._call("restore_secret", SecretId=name)
        self._call("put_secret_value", SecretId=name, SecretString=value)

    def set(self, caller: str, channel: str, url: str, signing_key: str | None = None) -> str | None:
        """Point the caller's destination at ``url``; answer the webhook signing key if one was generated."""
        generated = None
        if channel == "slack":
            if signing_key is not None:
                raise DestinationsError("--signing-key is for the webhook channel only")
            content: dict[str, Any] = {"url": url}
            model: type[SlackTarget | WebhookTarget] = SlackTarget
        else:
            described = self.describe(caller, channel)
            if signing_key is not None:
                keys = [signing_key]
            elif described is not None and "DeletedDate" not in described:
                keys = self._read(caller, channel).get("signing_keys") or []
            else:
                generated = new_signing_key()
                keys = [generated]
            content, model = {"url": url, "signing_keys": keys}, WebhookTarget
        try:
            model.model_validate(content)
        except ValidationError as exc:
            raise DestinationsError(f"invalid {channel} destination: {_fields(exc)}") from exc
        self._write(caller, channel, content)
        return generated

    def rotate_key(self, caller: str, signing_key: str | None = None, *, finish: bool = False) -> str | None:
        """Start a rotation (new key in front, the old one kept) or finish it (only the new key); answer a generated
        key."""
        content = self._read(caller, "webhook")
        keys = list(content.get("signing_keys") or [])
        if finish:
            if len(keys) < 2:
                raise DestinationsError("no rotation in progress: the webhook has one signing key")
            content["signing_keys"] = keys[:1]
            self._write(caller, "webhook", content)
            return None
        if len(keys) > 1:
            raise DestinationsError("a rotation is in progress: finish it first (rotate-key --finish)")
        new = signing_key if signing_key is not None else new_signing_key()
        generated = None if signing_key is not None else new
        try:
            signing_key_bytes(new)
        except ValueError as exc:
            raise DestinationsError(f"--signing-key {exc}") from exc
        if new in keys:
            raise DestinationsError("the new signing key is the current one")
        content["signing_keys"] = [new, *keys]
        self._write(caller, "webhook", content)
        return generated

    def remove(self, caller: str, channel: str, recovery_days: int = MIN_RECOVERY_DAYS) -> None:
        described = self.describe(caller, channel)
        if described is None or "DeletedDate" in described:
            raise DestinationsError(f"caller {caller} has no {channel} destination")
        self._call("delete_secret", SecretId=self.name(caller, channel), RecoveryWindowInDays=recovery_days)

    def states(self, caller: str) -> list[tuple[str, str]]:
        """Each channel's destination state, for people: set (since when), removed (until when), not set."""
        found = []
        for channel in CHANNELS:
            described = self.describe(caller, channel)
            if described is None:
                state = "not set"
            elif "DeletedDate" in described:
                state = f"removed on {described['DeletedDate']:%Y-%m-%d} (recoverable with set)"
            else:
                changed = described.get("LastChangedDate") or described.get("CreatedDate")
                state = f"set, secret {described['Name']}" + (f", changed {changed:%Y-%m-%d %H:%M}" if changed else "")
            found.append((channel, state))
        return found


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="notifications-destinations", description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", help="the destinations' secret name prefix (default: DESTINATION_SECRET_PREFIX)")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--caller", required=True, help="the shop's caller id (c- and 26 letters)")
        return sub

    put = command("set", "set a caller's Slack or webhook destination")
    put.add_argument("--channel", required=True, choices=CHANNELS)
    put.add_argument("--url", required=True, help="https URL (Slack: the incoming webhook's)")
    put.add_argument("--signing-key", help="webhook only: whsec_ key to sign with (default: keep, or generate one)")
    rotate = command("rotate-key", "start (or --finish) a rotation of the caller's webhook signing key")
    rotate.add_argument("--signing-key", help="the new whsec_ key (default: generate one)")
    rotate.add_argument("--finish", action="store_true", help="drop the old key once the shop's receiver has the new")
    remove = command("remove", "remove a caller's destination")
    remove.add_argument("--channel", required=True, choices=CHANNELS)
    remove.add_argument(
        "--recovery-days",
        type=int,
        default=MIN_RECOVERY_DAYS,
        choices=range(MIN_RECOVERY_DAYS, MAX_RECOVERY_DAYS + 1),
        metavar=f"{MIN_RECOVERY_DAYS}-{MAX_RECOVERY_DAYS}",
        help="days Secrets Manager keeps it recoverable",
    )
    command("list", "show a caller's destinations (never their URL or keys)")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, client: Any = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not re.fullmatch(CALLER_ID_PATTERN, args.caller):
        parser.error(f"--caller {args.caller!r} is not a caller id (c- and 26 letters a-z, 2-7)")
    prefix = args.prefix or os.environ.get("DESTINATION_SECRET_PREFIX")
    if not prefix:
        parser.error("give --prefix (or DESTINATION_SECRET_PREFIX): the stack's DestinationSecretPrefix")
    out = out or sys.stdout
    if client is None:
        import boto3  # noqa: PLC0415

        client = boto3.client("secretsmanager")
    try:
        _run(Destinations(client, prefix), args, out)
    except DestinationsError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


def _run(destinations: Destinations, args: argparse.Namespace, out: TextIO) -> None:
    """The command, its outcome for the operator on ``out``."""
    caller = args.caller
    match args.command:
        case "set":
            generated = destinations.set(caller, args.channel, args.url, args.signing_key)
            out.write(f"{args.channel} destination of {caller} set: {destinations.name(caller, args.channel)}\n")
            if generated:
                out.write(f"signing key (give it to the shop; it is not shown again): {generated}\n")
        case "rotate-key":
            generated = destinations.rotate_key(caller, args.signing_key, finish=args.finish)
            if args.finish:
                out.write(f"webhook of {caller}: rotation finished, signed with the new key only\n")
            else:
                out.write(f"webhook of {caller}: signed with the new key and the old one until --finish\n")
            if generated:
                out.write(f"new signing key (give it to the shop; it is not shown again): {generated}\n")
        case "remove":
            destinations.remove(caller, args.channel, args.recovery_days)
            days = args.recovery_days
            out.write(f"{args.channel} destination of {caller} removed (recoverable for {days} days with set)\n")
        case "list":
            for channel, state in destinations.states(caller):
                out.write(f"{channel}: {state}\n")


if __name__ == "__main__":
    sys.exit(main())
