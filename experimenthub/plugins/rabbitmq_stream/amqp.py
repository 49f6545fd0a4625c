"""What every part of the RabbitMQ datastream shares: its constants (names of the dead-letter
exchange and headers, backoff and timeouts), the connection parameters, pika errors in words, and
the declaration of an experiment queue with its dead-letter queue.

The experiment queues are plain durable queues without arguments, so any publisher may declare
them with ``queue_declare(name, durable=True)``; an existing queue is used as it is (passive
declare first). A rejected message goes (confirmed) to the direct exchange
``experimenthub.dead-letter`` with routing key ``<queue>``, bound to the durable queue
``<queue>.dead``, with the reason in the header ``x-experimenthub-error`` (and the source queue in
``x-experimenthub-queue``).
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import Any

import pika
import pika.exceptions as px

from ...errors import InvalidConfig

if logging.getLogger("pika").level == logging.NOTSET:
    # pika logs every failed connection attempt at ERROR with a traceback; this package reports
    # outages itself (one warning per change) and health() says why. Configure "pika" to see them.
    logging.getLogger("pika").setLevel(logging.CRITICAL)

DEAD_LETTER_EXCHANGE = "experimenthub.dead-letter"
DEAD_SUFFIX = ".dead"
ERROR_HEADER = "x-experimenthub-error"
QUEUE_HEADER = "x-experimenthub-queue"
CONTENT_TYPE = "application/json"
BACKOFF = (0.0, 0.25, 0.5, 1.0, 2.0)  # seconds before reconnect attempt n (the last one repeats)
REQUEST_TIMEOUT = 15.0  # a call that gets no answer in this time raises DatastreamError
HEALTH_WAIT = 1.5  # health() waits at most this long for the first connection attempt
STOP_GRACE = 0.5  # a stopping consumer lets acks already handed to it go out for this long
HANDOVER_WAIT = 60.0  # a reconnected consumer waits this long at most for the old batches to settle
PREFETCH_MAX = 65535  # basic_qos prefetch_count is an unsigned short
_CONNECTION_DEFAULTS: dict[str, Any] = {
    "socket_timeout": 2.0, "stack_timeout": 4.0, "blocked_connection_timeout": 30.0,
    "connection_attempts": 1, "retry_delay": 0.0, "heartbeat": 20,
}


def noop() -> None:
    """Handed to ``add_callback_threadsafe`` only to wake a connection's thread."""


def safe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def connection_parameters(url: str, connection_name: str) -> pika.URLParameters:
    """pika parameters for ``url`` with short timeouts (unless the URL's query sets them), so that
    an unreachable broker is reported in seconds, never by a hang."""
    parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise InvalidConfig(f"{url!r} is not an AMQP URL; example: amqp://guest:guest@127.0.0.1:5672/%2F",
                            "rabbitmq_url")
    try:
        params = pika.URLParameters(url)
    except Exception as exc:
        raise InvalidConfig(f"cannot read the AMQP URL {safe_url(url)}: {exc}", "rabbitmq_url") from exc
    given = set(urllib.parse.parse_qs(parts.query))
    for key, value in _CONNECTION_DEFAULTS.items():
        if key not in given:
            setattr(params, key, value)
    params.client_properties = {"connection_name": connection_name}
    return params


def describe(exc: BaseException) -> str:
    """A pika exception in words a person can act on."""
    if isinstance(exc, px.ConnectionClosedByBroker):
        return f"the broker closed the connection ({exc.reply_code} {exc.reply_text})"
    if isinstance(exc, px.ChannelClosedByBroker):
        return f"{exc.reply_code} {exc.reply_text}"
    if isinstance(exc, (px.ProbableAuthenticationError, px.AuthenticationError)):
        return "the broker refused the login; check the user and password in the URL"
    if isinstance(exc, px.ProbableAccessDeniedError):
        return "the broker refused access to the virtual host; check the vhost in the URL and the user's permissions"
    if isinstance(exc, px.ConnectionBlockedTimeout):
        return "the broker blocked the connection for too long (a memory or disk alarm?)"
    if isinstance(exc, px.AMQPHeartbeatTimeout):
        return "the broker stopped answering (heartbeat timeout)"
    if isinstance(exc, px.IncompatibleProtocolError):
        return f"the server closed the connection during the AMQP handshake ({', '.join(map(str, exc.args))})"
    if isinstance(exc, px.StreamLostError):
        text = str(exc.args[0]) if exc.args and isinstance(exc.args[0], str) else str(exc)
        return f"the connection was lost ({text})"
    inner: BaseException = exc
    for _ in range(5):  # pika wraps socket errors: AMQPConnectionError(AMQPConnector...Error(exception=OSError))
        if isinstance(getattr(inner, "exception", None), BaseException):
            inner = inner.exception  # type: ignore[attr-defined]
        elif inner.args and isinstance(inner.args[0], BaseException):
            inner = inner.args[0]
        else:
            break
    if inner is not exc and isinstance(inner, px.AMQPError):
        return describe(inner)
    if isinstance(inner, OSError) and inner.strerror:
        return inner.strerror.lower()
    if isinstance(inner, TimeoutError | px.AMQPConnectionError) and not str(inner):
        return "no answer (timeout)"
    return str(inner) or type(inner).__name__


def declare(connection: Any, queue: str) -> None:
    """Make sure ``queue``, its dead-letter queue and their binding exist. Existing queues are used
    as they are (passive declare first); refusals close only a throwaway channel."""
    channel = connection.channel()
    try:
        for name in (queue, queue + DEAD_SUFFIX):
            try:
                channel.queue_declare(name, passive=True)
            except px.ChannelClosedByBroker as exc:
                if exc.reply_code != 404:
                    raise
                channel = connection.channel()
                channel.queue_declare(name, durable=True)
        channel.exchange_declare(DEAD_LETTER_EXCHANGE, "direct", durable=True)
        channel.queue_bind(queue + DEAD_SUFFIX, DEAD_LETTER_EXCHANGE, routing_key=queue)
    finally:
        if channel.is_open:
            channel.close()
