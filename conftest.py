"""Repository-wide pytest setup: the hubs of notebooks and tests keep their data in a temporary
home, never in the checkout (unless EXPERIMENTHUB_HOME is already set)."""

import os
import tempfile

os.environ.setdefault("EXPERIMENTHUB_HOME", tempfile.mkdtemp(prefix="experimenthub-tests-"))
