"""Data from a queue: decoding a batch of messages into a frame, and settling the messages.

Messages are acknowledged only after the work that used them succeeded. Malformed ones (not a
JSON table, empty, or at odds with the other messages about a column the validation needs) go to
the dead-letter queue with the reason, so they are neither retried forever nor silently dropped;
when the messages agree and the data is still refused, the config is what is wrong and every
message goes back to the queue.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .errors import DataError, ExperimentHubError

if TYPE_CHECKING:
    import pandas as pd

    from .experiments.base import ExperimentType
    from .plugins.protocols import Batch

log = logging.getLogger(__name__)


def decode(batch: Batch) -> pd.DataFrame:
    """One frame from the batch's messages; malformed ones are dead-lettered on the way."""
    from .tables import tables_to_frame

    return tables_to_frame([table for _, table in message_tables(batch)])


def training_frame(impl: ExperimentType, batch: Batch) -> pd.DataFrame:
    """Validated training data from the messages of a batch (see the module docstring)."""
    from .tables import tables_to_frame

    try:
        tables = message_tables(batch)
        while True:
            try:
                return impl.validate_data(tables_to_frame([table for _, table in tables]))
            except DataError as exc:
                odd = odd_messages(tables, exc.column)
                if not odd:
                    raise
                for index, why in odd.items():
                    reject(batch, index, f"{why} in queue {batch.queue!r} ({exc})")
                tables = [(i, table) for i, table in tables if i not in odd]
    except Exception:
        batch.nack()  # a no-op for a batch settled already
        raise


def settle_failed(batch: Batch, exc: BaseException) -> None:
    """Predicting on queued messages failed: a data problem (a DataError, or the model choking on
    the rows, which predict reports as one) dead-letters them, since retrying could never
    succeed; any other hub error (e.g. not ready) puts them back in the queue."""
    if isinstance(exc, DataError) or not isinstance(exc, ExperimentHubError):
        for index in batch.pending:
            try:
                reject(batch, index, f"message of queue {batch.queue!r} cannot be predicted on: {exc}")
            except Exception:
                log.warning("could not dead-letter a message of queue %r", batch.queue, exc_info=True)
                return
    batch.nack()


def message_tables(batch: Batch) -> list[tuple[int, Any]]:
    """Decode each message of a batch (records stay lists: see ``tables.decode_table``); those
    that are not a JSON table with rows go to the dead-letter queue with the reason. DataError
    when none is left (the batch is settled then)."""
    from .tables import decode_table

    tables, reasons = [], []
    for i, body in enumerate(batch.bodies):
        what = f"message {i + 1} of queue {batch.queue!r}"
        try:
            table = decode_table(body, what)
            if len(table) == 0:
                raise DataError(f"{what} is an empty table (0 rows)")
        except DataError as exc:
            reject(batch, i, str(exc))
            reasons.append(str(exc))
            continue
        tables.append((i, table))
    if not tables:
        batch.nack()
        raise DataError(f"No usable message in queue {batch.queue!r}: {len(reasons)} malformed message(s) moved "
                        f"to the dead-letter queue {batch.queue + '.dead'!r} ({reasons[0]})")
    return tables


def reject(batch: Batch, index: int, reason: str) -> None:
    try:
        batch.reject(index, reason)
    except Exception:
        batch.nack()  # could not dead-letter it: nothing is acknowledged, all go back
        raise
    log.warning("%s; moved to the dead-letter queue %r", reason, batch.queue + ".dead")


def odd_messages(tables: list[tuple[int, Any]], column: Any) -> dict[int, str]:
    """The messages of a batch at odds with the majority about ``column`` (named by a validation
    error): those lacking it when most have it, or having it when most lack it. Empty when they
    agree (or tie): then no single message is to blame."""
    from .tables import table_columns

    if column is None or len(tables) < 2:
        return {}
    present = {i: column in table_columns(table) for i, table in tables}
    having = [i for i, yes in present.items() if yes]
    lacking = [i for i, yes in present.items() if not yes]
    if not having or not lacking or len(having) == len(lacking):
        return {}
    if len(lacking) < len(having):
        return {i: f"message {i + 1} lacks column {column!r}, which {len(having)} other message(s) have"
                for i in lacking}
    return {i: f"message {i + 1} has column {column!r}, which {len(lacking)} other message(s) lack" for i in having}
