"""Ray's workers run in this project's virtual environment.

Under `uv run`, Ray would notice uv and build its workers a fresh virtual environment from a copy
of the working directory; the project's own environment is already the right one. Processes that
start Ray set this before Ray is imported (the Docker image sets it as an ENV).
"""

import os

THIS_VENV_FOR_RAY_WORKERS = {"RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}


def use_this_venv_for_ray_workers() -> None:
    """Set THIS_VENV_FOR_RAY_WORKERS in this process's environment, unless already set."""
    for name, value in THIS_VENV_FOR_RAY_WORKERS.items():
        os.environ.setdefault(name, value)
