"""The RabbitMQ datastream (pika): a durable queue per experiment; nothing is acknowledged before
the work that used it succeeded, nothing malformed is retried forever.

Threading (a pika ``BlockingConnection`` is not thread-safe, pika#1237):

* One I/O thread owns the main connection. Every call (``publish``, ``drain``, ``next_batch``,
  ``purge``, ``depth``, ``dead_letters``) and every settlement of a Batch (``ack``, ``nack``,
  ``reject``) is handed to it as a request, whatever thread makes it; so acks always go out on the
  connection and channel that delivered the messages. Between requests the thread services
  heartbeats (``process_data_events``); ``add_callback_threadsafe`` wakes it for a new request.
* Each ``consume`` (streaming) runs its own thread with its own connection, ``basic_qos`` and
  ``basic_consume``; its Batches are settled through ``add_callback_threadsafe`` on that
  connection, so the work itself happens elsewhere and heartbeats keep flowing (pika#418).

Reconnecting: a lost connection is reopened with backoff (0, 0.25, 0.5, 1, 2, 2, ... s). RabbitMQ
puts back every message the lost connection held unacknowledged; a Batch taken on it is stale and
settling it does nothing on the new connection (its delivery tags would name other messages). So
that a redelivered message is not used twice, the stream remembers the ``message_id`` of every
message it consumed (the hub's publisher sets one; so should others) and, for messages without
one, the body digest of those whose ack was known to be lost; such a message is acknowledged and
skipped when it comes again. A used message whose ack was lost (or forgotten: a broker killed
right after an ack may not have written it to disk) is not left waiting for that: once connected
again, the stream acknowledges the used messages RabbitMQ put back at the head of the queues it
took messages from (so no other process, e.g. a restarted kernel, finds them there and uses them
again); a queue one of its consumers is reading is left to that consumer until it ends, since
taking messages from under it would race it for them and change their order.

Dead letters: ``Batch.reject(i, reason)`` publishes a copy (confirmed) to the direct exchange
``experimenthub.dead-letter`` with routing key ``<queue>``, bound to the durable queue
``<queue>.dead``, with the reason in the header ``x-experimenthub-error`` (and the source queue in
``x-experimenthub-queue``); then it acknowledges the original. The experiment queues themselves
are plain durable queues without arguments, so any publisher may declare them with
``queue_declare(name, durable=True)``; an existing queue is used as it is (passive declare first).

The package, one part a module:

* :mod:`.amqp`: the shared constants, connection parameters, pika errors in words, queue declaration;
* :mod:`.io_thread`: the I/O thread that owns the main connection and runs the requests of other threads;
* :mod:`.datastream`: :class:`RabbitMQDatastream`, its queue operations and the settling of their Batches;
* :mod:`.consumer`: :class:`RabbitMQConsumer`, the streaming consumer behind ``consume``, and the
  :class:`ConsumerContext` the datastream gives it (the consumer never sees the datastream itself);
* :mod:`.redelivery`: the memory of used messages that keeps a redelivery from being used twice.
"""

from .amqp import (
    BACKOFF,
    CONTENT_TYPE,
    DEAD_LETTER_EXCHANGE,
    DEAD_SUFFIX,
    ERROR_HEADER,
    HANDOVER_WAIT,
    HEALTH_WAIT,
    QUEUE_HEADER,
    REQUEST_TIMEOUT,
    STOP_GRACE,
    connection_parameters,
    declare,
    describe,
    safe_url,
)
from .consumer import ConsumerContext, RabbitMQConsumer
from .datastream import RabbitMQDatastream

__all__ = [
    "BACKOFF", "CONTENT_TYPE", "DEAD_LETTER_EXCHANGE", "DEAD_SUFFIX", "ERROR_HEADER", "HANDOVER_WAIT", "HEALTH_WAIT",
    "QUEUE_HEADER", "REQUEST_TIMEOUT", "STOP_GRACE", "ConsumerContext", "RabbitMQConsumer", "RabbitMQDatastream",
    "connection_parameters", "declare", "describe", "safe_url",
]
