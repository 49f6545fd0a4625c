"""Plugin health at a glance: one coloured badge per plugin, details on hover and, when a plugin is
down, its error in words next to the badge. ``refresh()`` is called from the panel's timer thread."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from .background import describe_error
from .style import BAD, OK, UNKNOWN, WAIT, attr, badge, esc

PLUGINS = (("mlops", "MLflow"), ("datastream", "Datastream"))


def _details(entry: dict[str, Any]) -> str:
    details = entry.get("details") or {}
    return "\n".join(f"{key}: {value}" for key, value in details.items())


def render(health: dict[str, Any] | None, error: str | None = None) -> str:
    parts = []
    for key, label in PLUGINS:
        entry = (health or {}).get(key)
        if entry is None:
            text = error or "checking…"
            parts.append(badge(f"{label}: {'unknown' if error else 'checking…'}", UNKNOWN, text))
            continue
        details = entry.get("details") or {}
        status = details.get("status") or ("connected" if entry.get("healthy") else "unreachable")
        if key == "datastream" and details.get("backend"):
            status = f"{status} ({details['backend']})"
        color = OK if entry.get("healthy") else (WAIT if details.get("status") == "starting" else BAD)
        parts.append(badge(f"{label}: {status}", color, _details(entry)))
        if color == BAD and details.get("error"):
            parts.append(f'<span class="eh-health-detail" title="{attr(details["error"])}">'
                         f"{esc(str(details['error'])[:120])}</span> ")
    return "".join(parts)


class HealthBadges(w.HTML):
    """An HTML widget (CSS class ``eh-health``) whose ``value`` shows both plugins."""

    def __init__(self, hub: Any) -> None:
        super().__init__(value=render(None))
        self._hub = hub
        self.health: dict[str, Any] | None = None
        self.add_class("eh-health")

    def refresh(self) -> None:
        """Check the plugins (blocking up to the plugin's timeout): call from a background thread."""
        try:
            health = self._hub.health()
        except Exception as exc:  # health reports; a broken check is shown, not raised
            self.value = render(None, describe_error(exc))
            return
        self.health = health
        value = render(health)
        if value != self.value:
            self.value = value
