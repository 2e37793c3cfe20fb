"""`fraud-serve [CONFIG]`: run `serve run CONFIG` in the environment this project needs."""

import os
import sys
from pathlib import Path

from serve_app.app import PROJECT_ROOT

DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "serve_config.yaml"

# Environment for Ray, set before it starts. Ray would otherwise notice `uv run` and rebuild a
# virtualenv for its workers from a copy of the working directory; this venv is already right.
RAY_ENVIRONMENT = {"RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}


def main() -> None:
    config = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else DEFAULT_CONFIG
    for name, value in RAY_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    serve = Path(sys.executable).with_name("serve")
    # serve run resolves import_path from the cwd, so run it from the project root.
    os.chdir(PROJECT_ROOT)
    os.execv(serve, [str(serve), "run", str(config)])
