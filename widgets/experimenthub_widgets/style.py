"""Colours, the panel's small stylesheet, and HTML snippets (every text shown is escaped here)."""

from __future__ import annotations

import html
from typing import Any

STATE_COLORS = {
    "created": "#6e7781",
    "training": "#0969da",
    "ready": "#1a7f37",
    "failed": "#cf222e",
    "stopped": "#9a6700",
}
OK, BAD, UNKNOWN, WAIT = "#1a7f37", "#cf222e", "#6e7781", "#9a6700"

#: one <style> block, shown once by the panel (an HTML widget applies it to the page)
STYLESHEET = """
<style>
.eh-panel { font-size: 13px; }
.eh-header { border-bottom: 1px solid #d0d7de; padding-bottom: 4px; margin-bottom: 4px; }
.eh-title { font-size: 16px; font-weight: 600; }
.eh-badge { display: inline-block; padding: 1px 8px; margin-right: 6px; border-radius: 10px; color: #fff;
            font-size: 12px; white-space: nowrap; cursor: help; }
.eh-health-detail { color: #cf222e; font-size: 12px; }
.eh-banner-error, .eh-banner-info { box-sizing: border-box; width: 100%; margin: 2px 0; }
.eh-banner-error { background: #ffebe9; border: 1px solid #cf222e; color: #82071e; border-radius: 6px;
                   padding: 6px 10px; white-space: pre-wrap; overflow-wrap: anywhere; }
.eh-banner-info { background: #ddf4ff; border: 1px solid #54aeff; color: #0a3069; border-radius: 6px;
                  padding: 4px 10px; overflow-wrap: anywhere; }
.eh-server-url a { color: #0969da; text-decoration: underline; }
.eh-state-label { border-radius: 10px; padding: 0 8px; text-align: center; }
.eh-list-counts { font-size: 12px; }
.eh-list-state .widget-toggle-button { padding: 0 6px; font-size: 12px; }
.eh-muted { color: #57606a; font-size: 12px; }
.eh-create-json textarea { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
.eh-table { border-collapse: collapse; font-size: 12px; }
.eh-table td, .eh-table th { border-bottom: 1px solid #eaeef2; padding: 2px 8px; text-align: left; }
.eh-figure { width: 100%; }
.eh-table tr.eh-sweep-best td, .eh-table td.eh-compare-value { font-weight: 600; }
.eh-table tr.eh-compare-selected td { background: #ddf4ff; }
.eh-eval-words { margin: 4px 0; }
</style>
"""


def esc(value: Any) -> str:
    """Text for HTML: ``&``, ``<`` and ``>`` escaped (quotes kept, so messages read as written)."""
    return html.escape(str(value), quote=False)


def attr(value: Any) -> str:
    """Text for an HTML attribute (a tooltip): quotes escaped too."""
    return html.escape(str(value), quote=True)


def banner(kind: str, text: str) -> str:
    return f'<div class="eh-banner-{kind}">{esc(text)}</div>' if text else ""


def badge(label: str, color: str, tooltip: str = "") -> str:
    return f'<span class="eh-badge" style="background:{color}" title="{attr(tooltip)}">{esc(label)}</span>'


def table(rows: list[tuple[Any, Any]], header: tuple[str, str] | None = None) -> str:
    head = f"<tr><th>{esc(header[0])}</th><th>{esc(header[1])}</th></tr>" if header else ""
    body = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in rows)
    return f'<table class="eh-table">{head}{body}</table>'


def fmt_number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
