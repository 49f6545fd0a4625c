"""After a crash: runs whose process is gone, and experiments brought back from the tracking store.

Every run a hub opens carries a lease: tags naming the host and the process (pid and its start
time, so that a reused pid does not pass for the owner). A hub that opens a tracking store marks
runs still ``RUNNING`` whose owner process on this host is gone as ``FAILED``, with a tag saying
why; runs owned by another host are never touched (their own hub, restarted there, does it), so
live hubs in other kernels sharing an MLflow server keep their runs.

``stored_models`` finds, for every MLflow experiment that ExperimentHub wrote and that was not
deleted, its latest finished model run: what ``hub.restore()`` lists at once and loads on first use.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from functools import cache
from typing import TYPE_CHECKING

from .records import TAG_DELETED, TAG_TYPE, role

if TYPE_CHECKING:
    from .plugins.protocols import RunInfo, TrackingPlugin

log = logging.getLogger(__name__)

TAG_HOST = "experimenthub.owner.host"
TAG_OWNER = "experimenthub.owner"  # "<pid>:<process start time>"
TAG_FAILURE = "experimenthub.failure"


@cache
def lease_tags() -> dict[str, str]:
    """The tags naming this process as the writer of a run."""
    return {TAG_HOST: socket.gethostname(), TAG_OWNER: _identity(os.getpid()) or str(os.getpid())}


def _identity(pid: int) -> str | None:
    """``"<pid>:<start time>"`` of a live process, None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        if fields[0] in ("Z", "X"):  # a zombie: dead, only not yet reaped by its parent
            return None
        return f"{pid}:{fields[19]}"  # field 22 of stat: the start time, in clock ticks since boot
    except (OSError, IndexError):
        pass
    try:  # no /proc (not Linux): whether the pid exists at all
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return str(pid)


def owner_alive(owner: str) -> bool:
    pid_text = owner.split(":", 1)[0]
    if not pid_text.isdigit():
        return True  # not ours to judge
    current = _identity(int(pid_text))
    return current is not None and (current == owner or ":" not in owner or ":" not in current)


def reap_orphans(tracking: TrackingPlugin) -> list[str]:
    """Mark ``FAILED`` the runs left ``RUNNING`` by a process of this host that is gone; returns
    their ids."""
    host = lease_tags()[TAG_HOST]
    found = tracking.find_runs(f"attributes.status = 'RUNNING' and tags.`{TAG_HOST}` = '{_quoted(host)}'")
    reaped = []
    for run in found:
        owner = run.tags.get(TAG_OWNER, "")
        if owner_alive(owner):
            continue
        why = (f"its process ({owner} on {host}) ended while the run was RUNNING (a crash or a kill); "
               f"marked FAILED by process {os.getpid()} at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}")
        try:
            tracking.set_tags(run.run_id, {TAG_FAILURE: why})
            tracking.end_run(run.run_id, "FAILED")
        except Exception as exc:  # the next hub tries again
            log.warning("could not mark orphaned run %s failed: %s", run.run_id, exc)
            continue
        log.warning("run %s of %r: %s", run.run_id, run.experiment_name, why)
        reaped.append(run.run_id)
    return reaped


def stored_models(tracking: TrackingPlugin) -> dict[str, RunInfo]:
    """Experiment name -> its latest finished model run, for experiments not deleted."""
    deleted_at = {name: _seconds(tags[TAG_DELETED]) for name, tags in tracking.experiments().items()
                  if TAG_DELETED in tags}
    latest: dict[str, RunInfo] = {}
    for run in tracking.find_runs("attributes.status = 'FINISHED'"):  # newest first
        if TAG_TYPE in run.tags and role(run) == "model":
            latest.setdefault(run.experiment_name, run)
    # a deletion hides the runs before it; a model run started after it belongs to the name created again
    return {name: run for name, run in latest.items()
            if name not in deleted_at or (run.start_time or 0) > deleted_at[name]}


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("inf")  # unreadable: deleted, whatever came before


def _quoted(text: str) -> str:
    return text.replace("'", "\\'")
