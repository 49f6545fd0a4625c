"""ipywidgets control panels over the hub (``hub.panel()``). Imports ``experimenthub``; the core
never imports this package."""
