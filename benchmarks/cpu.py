"""CPU time of a server's processes, from /proc: where the cores go, per request.

Throughput on a shared 2-core machine moves with whatever else runs; CPU seconds spent per
request by each process of the server barely do, so they show where the time goes.
"""

import os
from collections import Counter
from pathlib import Path

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def session_cpu_seconds(session_id: int) -> Counter[str]:
    """User + system CPU seconds of every live process in the session, summed by process name
    (a Ray worker's name is its actor, e.g. `ray::ServeReplica:fraud:Ingress`)."""
    totals: Counter[str] = Counter()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:  # the process ended meanwhile
            continue
        # Fields after the ")" that closes the command name: state is 3, session 6, utime 14.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) != session_id:
            continue
        totals[process_name(command, stat)] += (int(fields[11]) + int(fields[12])) / _TICKS_PER_S
    return totals


def process_name(command: str, stat: str) -> str:
    """`ray::ServeController.listen_for_change` -> `ray::ServeController`; otherwise the
    executable's file name (some of Ray's helpers set one string with spaces as their argv)."""
    if command.startswith("ray::"):
        return command.split(".")[0]
    words = command.split(maxsplit=1)
    return Path(words[0]).name if words else stat[stat.index("(") + 1 : stat.rindex(")")]


def per_request_ms(before: Counter[str], after: Counter[str], requests: int) -> dict[str, float]:
    """CPU ms per request of each process name, largest first (processes under 0.01 ms left out)."""
    spent = {
        name: (after[name] - before.get(name, 0.0)) * 1000 / max(requests, 1) for name in after
    }
    return {
        name: round(ms, 3)
        for name, ms in sorted(spent.items(), key=lambda kv: -kv[1])
        if ms >= 0.01
    }
