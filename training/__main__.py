import os
import sys

# Ray replaces the workers' interpreter with a fresh `uv run` environment when the driver runs
# under `uv run`; the project's own venv is already the right one, so keep it.
# This must run before anything imports Ray.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

from training.cli import main

sys.exit(main())
