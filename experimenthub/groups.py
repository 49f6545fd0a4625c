"""Many experiments from one call: a long table split by a column, or a mapping name -> table.

``split`` turns ``data`` into ``{experiment name: frame}``: one group per distinct value of ``by``
(the column is dropped from each group), or the mapping's own entries. Names come from the values,
made valid (``"Store 1"`` -> ``"Store_1"``) with an optional prefix; two values that would share a
name, or a name that cannot be made valid, are refused. Nothing here starts anything: the hub
validates every group before it creates any (all or nothing).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import DataError, GroupsRejected

if TYPE_CHECKING:
    import pandas as pd

_INVALID = re.compile(r"[^A-Za-z0-9_.\-]+")


def name_for(value: Any, prefix: str = "") -> str:
    """An experiment name made from a group's value: invalid characters become ``_``, and the name
    starts with a letter or digit (``" Store 1/a"`` -> ``"Store_1_a"``)."""
    text = _INVALID.sub("_", f"{prefix}{value}").strip("_.-")
    return text[:128]


def split(data: Any, by: str | None, prefix: str = "") -> dict[str, pd.DataFrame]:
    """``{name: frame}`` for every group; GroupsRejected naming the groups whose names clash."""
    import pandas as pd

    from .tables import to_frame

    if isinstance(data, Mapping):
        if by is not None:
            raise DataError("give either a mapping of name -> data, or one table with 'by'; not both")
        groups = {name_for(key, prefix): to_frame(table, f"data of group {key!r}") for key, table in data.items()}
        keys = {name_for(key, prefix): key for key in data}
        _check_clashes([(name_for(key, prefix), key) for key in data])
        return {name: groups[name] for name in keys}
    frame = to_frame(data, "data")
    if by is None:
        raise DataError("to create one experiment per group, name the column that tells the groups apart "
                        "('by'), or pass a mapping of name -> data")
    if by not in frame.columns:
        raise DataError(f"column {by!r} (by) not in the data; columns: {list(map(str, frame.columns))}", by)
    if frame[by].isna().any():
        raise DataError(f"column {by!r} (by) has {int(frame[by].isna().sum())} missing value(s); every row "
                        f"needs a group", by)
    try:
        values = list(pd.unique(frame[by]))
    except TypeError:  # lists or mappings in the column: they cannot name a group
        raise DataError(f"column {by!r} (by) must hold plain values (text or numbers) to name the groups; "
                        f"it holds lists or objects", by) from None
    _check_clashes([(name_for(value, prefix), value) for value in values])
    return {name_for(value, prefix): part.drop(columns=[by]).reset_index(drop=True)
            for value, part in frame.groupby(by, sort=False)}


def _check_clashes(pairs: list[tuple[str, Any]]) -> None:
    seen: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name, value in pairs:
        if not name:
            problems[str(value)] = f"value {value!r} gives no usable name (no letter or digit)"
        elif name in seen:
            problems[name] = f"values {seen[name]!r} and {value!r} both become the name {name!r}"
        else:
            seen[name] = value
    if problems:
        raise GroupsRejected(problems)
