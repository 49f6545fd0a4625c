"""The first path segments the REST API uses for itself. An experiment with one of these names
would make its URLs ambiguous (``/health/...``), so the API hands them to the hub it serves, which
refuses them as names. ``tests/api`` checks the list against the app's routes."""

RESERVED_FIRST_SEGMENTS = frozenset({
    "health", "available_experiments", "create_experiment", "flush", "publish", "experiments",
    "docs", "redoc", "openapi.json", "create_experiments", "stop_training", "delete", "restore", "compare",
})
