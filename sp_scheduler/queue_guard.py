"""Keep every queue item a worker cannot use from stopping it: set it aside, acknowledge it, go on.

Left alone, Celery and kombu let several shapes of bad item escape as an exception from the worker's
event loop ("Unrecoverable error"): the worker stops, and since the item was never acknowledged the
Redis transport puts it back for the next worker, which stops too. Two hooks close every path:

- `GuardedTransport` screens each item the moment BRPOP returns it, before kombu parses it: anything
  that is not a JSON object shaped like kombu's envelope (with properties, a delivery tag and a body
  in the encoding it names) goes to the dead-letter list and never reaches kombu.
- `GuardedConsumer` checks a task message's body before Celery builds a request from it (protocol 2
  wants `[args, kwargs, embed]`), sets aside what Celery itself would drop or crash on (undecodable
  bodies, unknown tasks, invalid messages), and catches anything else a message raises.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any

from celery.worker.consumer import Consumer
from kombu.transport import redis as kombu_redis

from sp_scheduler import dead_letters

log = logging.getLogger(__name__)

Problem = tuple[str, str]  # (kind, reason)


def envelope_problem(item: bytes | str) -> tuple[Problem | None, str | None]:
    """What makes a raw queue item unusable as a kombu Redis message (None if nothing), and its id if known."""
    try:
        text = item.decode("utf-8") if isinstance(item, bytes) else item
    except UnicodeDecodeError:
        return ("not_json", "not JSON: not even UTF-8 text"), None
    try:
        payload = json.loads(text)
    except ValueError as exc:
        return ("not_json", f"not JSON ({exc})"), None
    if not isinstance(payload, dict):
        return ("not_envelope", f"a JSON {type(payload).__name__}, not a message envelope (an object)"), None
    headers = payload.get("headers")
    message_id = headers.get("id") if isinstance(headers, dict) and isinstance(headers.get("id"), str) else None
    properties = payload.get("properties")
    if not isinstance(properties, dict) or "delivery_tag" not in properties:
        return ("not_envelope", "not a message envelope: no properties with a delivery_tag"), message_id
    if headers is not None and not isinstance(headers, dict):
        return ("not_envelope", "not a message envelope: headers are not an object"), message_id
    if not isinstance(properties.get("delivery_info", {}), dict):
        return ("not_envelope", "not a message envelope: delivery_info is not an object"), message_id
    body, encoding = payload.get("body"), properties.get("body_encoding")
    if body and encoding not in (None, "base64"):
        return ("bad_body", f"body encoding {encoding!r} is not one kombu knows"), message_id
    if body and encoding == "base64":
        if not isinstance(body, str):
            return ("bad_body", "body is not valid base64: not a string"), message_id
        try:
            base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            return ("bad_body", f"body is not valid base64 ({exc})"), message_id
    return None, message_id


class GuardedChannel(kombu_redis.Channel):
    """kombu's Redis channel, screening what BRPOP returns (see the module docstring)."""

    def _create_client(self, asynchronous: bool = False) -> Any:
        client = super()._create_client(asynchronous=asynchronous)  # type: ignore[no-untyped-call]
        if asynchronous:  # the client that issues BRPOP (kombu reads its reply with parse_response)
            parse = client.parse_response

            def screened(connection: Any, command_name: str, **options: Any) -> Any:
                reply = parse(connection, command_name, **options)
                if command_name == "BRPOP" and reply:
                    return self._screen(reply)
                return reply

            client.parse_response = screened
        return client

    def _screen(self, reply: Any) -> Any:
        """The BRPOP reply if its item is usable; None (read as "nothing yet") once it is set aside."""
        dest, item = reply
        problem, message_id = envelope_problem(item)
        if problem is None:
            return reply
        queue = (dest.decode() if isinstance(dest, bytes) else str(dest)).rsplit(self.sep, 1)[0]
        self.set_aside(item, problem, queue=queue, message_id=message_id)
        return None

    def set_aside(self, raw: bytes | str, problem: Problem, *, queue: str, message_id: str | None) -> None:
        """Push an unusable item onto the dead-letter list; if Redis refuses, it is logged and dropped."""
        kind, reason = problem
        try:
            with self.conn_or_acquire() as client:
                dead_letters.set_aside(client, raw, kind=kind, reason=reason, queue=queue, message_id=message_id)
        except Exception as exc:  # the item is off the queue already; set_aside logged it with its text
            log.error("cannot write the dead-letter list", extra={"error": repr(exc), "message_id": message_id})


class GuardedTransport(kombu_redis.Transport):
    """kombu's Redis transport with `GuardedChannel`; chosen by `broker_transport` in worker.create_app."""

    Channel = GuardedChannel


class GuardedSentinelChannel(GuardedChannel, kombu_redis.SentinelChannel):
    """kombu's Sentinel channel (master found through the Sentinels), screening BRPOP as `GuardedChannel`."""


class GuardedSentinelTransport(kombu_redis.SentinelTransport):
    """kombu's Sentinel transport with `GuardedSentinelChannel`, for `redis+sentinel://` URLs."""

    Channel = GuardedSentinelChannel


def payload_problem(message: Any) -> Problem | None:
    """What makes a protocol 2 task message's body unusable (None if nothing); decoding is cached by kombu."""
    try:
        body = message.payload
    except Exception as exc:  # DecodeError, ContentDisallowed, ...
        return ("bad_body", f"body cannot be decoded: {exc!r}")
    shape_ok = (
        isinstance(body, list | tuple)
        and len(body) == 3
        and isinstance(body[0], list | tuple)
        and isinstance(body[1], dict)
        and (body[2] is None or isinstance(body[2], dict))
    )
    if not shape_ok:
        return ("bad_payload", f"body is a JSON {type(body).__name__}, not [args, kwargs, embed]")
    return None


class GuardedConsumer(Consumer):  # type: ignore[misc]
    """Celery's consumer, setting aside every task message it cannot use instead of stopping the worker."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        dead_letters.set_worker_name(self.hostname)

    def create_task_handler(self, *args: Any, **kwargs: Any) -> Any:
        handle = super().create_task_handler(*args, **kwargs)
        connection_errors = tuple(self.connection_errors)

        def on_task_received(message: Any) -> Any:
            headers = message.headers if isinstance(message.headers, dict) else {}
            if "task" in headers:  # protocol 2; the rest is Celery's to judge (and ours below)
                problem = payload_problem(message)
                if problem is not None:
                    return self._set_aside(message, problem)
            try:
                return handle(message)
            except connection_errors:
                raise  # Celery reconnects; the unacknowledged message comes back
            except Exception as exc:
                return self._set_aside(message, ("unhandled", f"cannot be handled: {exc!r}"))

        return on_task_received

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        self._set_aside(message, ("bad_body", f"body cannot be decoded: {exc!r}"))

    def on_unknown_message(self, body: Any, message: Any) -> None:
        self._set_aside(message, ("not_task", "not a task message: no task name in its headers"))

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        name = message.headers.get("task") if isinstance(message.headers, dict) else None
        self._set_aside(message, ("unknown_task", f"names task {name!r}, which this worker does not run"))

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        self._set_aside(message, ("invalid_task", f"invalid task message: {exc!r}"))

    def _set_aside(self, message: Any, problem: Problem) -> None:
        """Dead-letter a message kombu already delivered, then acknowledge it so it never comes back."""
        headers = message.headers if isinstance(message.headers, dict) else {}
        message_id = headers.get("id") if isinstance(headers.get("id"), str) else None
        info = message.delivery_info if isinstance(message.delivery_info, dict) else {}
        queue = str(info.get("routing_key") or "")
        raw = getattr(message, "_raw", None)
        text = json.dumps(raw) if raw is not None else repr(message.body)
        channel = message.channel
        if isinstance(channel, GuardedChannel):
            channel.set_aside(text, problem, queue=queue, message_id=message_id)
        else:  # another broker: log it; acknowledging still keeps it from stopping the next worker
            log.error("queue message dropped", extra={"reason": problem[1], "message_id": message_id, "raw": text})
        if not message.acknowledged:
            message.ack()
