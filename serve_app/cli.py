"""`fraud-serve`: the local service.

    fraud-serve [--with-keys] [CONFIG]   run the service (`serve run CONFIG` in the environment
                                         this project needs); --with-keys makes a scoring and an
                                         operator key for this run and turns anonymous access off
    fraud-serve apply [CONFIG]           apply CONFIG (model, threshold, batching, challenger)
                                         to the running service

CONFIG defaults to configs/serve_config.yaml. The service's own files (HAProxy's, and a note of
where its Ray dashboard is, for `apply`) are removed when it stops; Ctrl-C and SIGTERM stop it
without a stack dump.
"""

import sys
from pathlib import Path

from serve_app.apply_config import apply
from serve_app.local_service import DEFAULT_CONFIG, serve


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "apply":
        args = args[1:]
        if len(args) > 1 or (args and args[0].startswith("-")):
            return usage()
        return apply(config_path(args))
    with_keys = "--with-keys" in args
    args = [arg for arg in args if arg != "--with-keys"]
    if len(args) > 1 or (args and args[0].startswith("-")):
        return usage()
    return serve(config_path(args), with_keys)


def config_path(args: list[str]) -> Path:
    return Path(args[0]).resolve() if args else DEFAULT_CONFIG


def usage() -> int:
    sys.stderr.write(__doc__ or "")
    return 2
