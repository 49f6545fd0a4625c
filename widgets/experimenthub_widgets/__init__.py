"""ipywidgets control panels over the hub (``hub.panel()``). Imports ``experimenthub``; the core
never imports this package.

>>> from experimenthub_widgets import panel    # doctest: +SKIP
>>> app = panel(hub)                         # doctest: +SKIP  (or hub.panel())
>>> app.close()                              # doctest: +SKIP  unsubscribes and stops its timer
"""

from .panel import OPTIONS, Panel, panel

__all__ = ["OPTIONS", "Panel", "panel"]
