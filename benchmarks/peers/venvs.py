"""A peer's virtual environment, made with uv on first use and reused while its pins stay the same.

The environments live outside the repository (FRAUD_PEER_VENVS, else the user's cache directory),
so that every work tree of the project shares them. Each holds a marker file with the Python
version and the exact requirement list it was made with: any difference rebuilds it.
"""

import logging
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path

logger = logging.getLogger("benchmarks")

MARKER = "fraud-peer-requirements.txt"

Runner = Callable[[list[str]], None]


def cache_root() -> Path:
    configured = os.environ.get("FRAUD_PEER_VENVS")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "fraud-serving" / "peer-venvs"


def pinned(*names: str) -> list[str]:
    """`name==version` of each package as installed in the project's own environment, so a peer
    unpickles and scores the artifact with the very libraries it was written with."""
    return [f"{name}=={version(name)}" for name in names]


def marker_text(requirements: Sequence[str]) -> str:
    return "\n".join([f"python {platform.python_version()}", *requirements]) + "\n"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(
    name: str, requirements: Sequence[str], root: Path | None = None, run: Runner | None = None
) -> Path:
    """The directory of peer `name`'s environment holding exactly `requirements`, made if missing
    or made with other pins."""
    venv = (root or cache_root()) / name
    marker = venv / MARKER
    wanted = marker_text(requirements)
    if marker.is_file() and marker.read_text() == wanted and venv_python(venv).exists():
        return venv
    run = run or _run_uv
    logger.info("Making %s's environment at %s: %s", name, venv, " ".join(requirements))
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    run(["venv", "--quiet", "--python", sys.executable, str(venv)])
    run(["pip", "install", "--quiet", "--compile-bytecode", "--python", str(venv_python(venv)),
         *requirements])  # fmt: skip
    marker.write_text(wanted)  # last: an interrupted install is made again next time
    return venv


def _run_uv(arguments: list[str]) -> None:
    # `uv run` names itself in UV: the quick start's uv is in .uv/bin, not on PATH.
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        raise RuntimeError(
            "the peers' environments are made with uv: run the harness with `uv run`, or put uv "
            "on PATH"
        )
    subprocess.run([uv, *arguments], check=True)
