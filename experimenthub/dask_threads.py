"""How many worker threads a Dask cluster has, as its scheduler reports them while workers come and go.

:class:`~experimenthub.dask_worker.WorkersPlugin`, registered on the scheduler, logs the cluster's
worker threads to :data:`~experimenthub.dask_worker.WORKERS_TOPIC` whenever a worker joins or leaves.
A ``Client`` keeps one handler per topic, so the executors sharing one client (two hubs given the
same ``dask_client``) share one subscription here: :func:`follow` adds a callback to the client's
list, :func:`unfollow` removes it, and the last one out unsubscribes.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

from distributed import Client

from .dask_worker import WORKERS_PLUGIN_NAME, WORKERS_TOPIC, WorkersPlugin
from .redact import redact_text

log = logging.getLogger(__name__)

OnThreads = Callable[[int], None]

_lock = threading.Lock()
_followers: weakref.WeakKeyDictionary[Client, list[OnThreads]] = weakref.WeakKeyDictionary()


def count(client: Client) -> int:
    """The cluster's worker threads now (a call to the scheduler)."""
    return sum(client.nthreads().values())


def follow(client: Client, on_threads: OnThreads) -> None:
    """Call ``on_threads(threads)`` now and whenever a worker joins or leaves (on the client's IO-loop
    thread: it must return at once). Nothing is reported when the scheduler cannot take the plugin
    (e.g. it cannot import experimenthub): a warning says so."""
    try:
        client.register_plugin(WorkersPlugin(), name=WORKERS_PLUGIN_NAME)  # idempotent
    except Exception as exc:
        log.warning("cannot follow the Dask cluster's workers: %s", redact_text(str(exc) or type(exc).__name__))
        return
    with _lock:
        callbacks = _followers.get(client)
        if callbacks is None:
            callbacks = _followers[client] = []
            reference = weakref.ref(client)  # the handler, kept by the client, must not keep it alive
            client.subscribe_topic(WORKERS_TOPIC, lambda event: _deliver(reference, event))
        callbacks.append(on_threads)
    on_threads(count(client))  # the workers that joined before we listened


def unfollow(client: Client, on_threads: OnThreads) -> None:
    with _lock:
        callbacks = _followers.get(client)
        if callbacks is None:
            return
        if on_threads in callbacks:
            callbacks.remove(on_threads)
        if callbacks:
            return
        del _followers[client]
    try:
        client.unsubscribe_topic(WORKERS_TOPIC)
    except Exception:  # a closed client has nothing to unsubscribe
        log.debug("could not unsubscribe from %s", WORKERS_TOPIC, exc_info=True)


def _deliver(reference: weakref.ref[Client], event: tuple[float, Any]) -> None:
    _, message = event
    threads = message.get("threads") if isinstance(message, dict) else None
    client = reference()
    if not isinstance(threads, int) or client is None:
        return
    with _lock:
        callbacks = list(_followers.get(client, []))
    for on_threads in callbacks:
        try:
            on_threads(threads)
        except Exception:  # one hub's trouble is not another's
            log.warning("a follower of the Dask cluster's workers failed", exc_info=True)
