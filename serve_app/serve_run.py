"""`python -m serve_app.serve_run CONFIG`: Ray Serve's own `serve run CONFIG`, with its Ray
stopped as soon as Serve has stopped.

`serve run` leaves its Ray to the interpreter's exit, where Ray first sleeps half a second so
that late log lines can print. After Serve's graceful stop nothing is left to print, and a
Ctrl-C of `fraud-serve` has 5 s in all: Ray is stopped here, without that pause.
"""

import sys


def main(argv: list[str] | None = None) -> int:
    import ray
    from ray.serve.scripts import cli

    try:
        # serve run ends with sys.exit (after a Ctrl-C, among others): its code and message
        # stay the process's, once Ray is stopped.
        cli.main(["run", *(sys.argv[1:] if argv is None else argv)], "serve", standalone_mode=False)
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
