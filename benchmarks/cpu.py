"""CPU time of a server's processes, from /proc: where the cores go, per request.

Throughput on a shared 2-core machine moves with whatever else runs; CPU seconds spent per
request by each process of the server barely do, so they show where the time goes.
"""

import os
from collections import Counter
from pathlib import Path
from typing import NamedTuple

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


class ProcessStat(NamedTuple):
    pid: int
    parent: int
    session: int
    started: int  # clock ticks after boot: with the pid, names this process and no later one
    cpu_s: float  # user + system
    name: str


def process_table() -> dict[int, ProcessStat]:
    """Every live process, from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:  # the process ended meanwhile
            continue
        # Fields after the ")" that closes the command name: state is 3, parent 4, session 6,
        # utime 14, stime 15, start time 22.
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        table[pid] = ProcessStat(
            pid=pid,
            parent=int(fields[1]),
            session=int(fields[3]),
            started=int(fields[19]),
            cpu_s=(int(fields[11]) + int(fields[12])) / _TICKS_PER_S,
            name=process_name(command, stat),
        )
    return table


def session_processes(session_id: int, table: dict[int, ProcessStat]) -> list[ProcessStat]:
    """The session's processes and all their descendants, also those that started a session of
    their own (BentoML's workers do)."""
    children: dict[int, list[int]] = {}
    for process in table.values():
        children.setdefault(process.parent, []).append(process.pid)
    found = [pid for pid, process in table.items() if process.session == session_id]
    seen = set(found)
    while found:
        for child in children.get(found.pop(), []):
            if child not in seen:
                seen.add(child)
                found.append(child)
    return [table[pid] for pid in seen]


def session_cpu_seconds(session_id: int) -> Counter[str]:
    """User + system CPU seconds of every live process of the session (and its descendants),
    summed by process name (a Ray worker's name is its actor, e.g.
    `ray::ServeReplica:fraud:Ingress`)."""
    totals: Counter[str] = Counter()
    for process in session_processes(session_id, process_table()):
        totals[process.name] += process.cpu_s
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
    return _spread(before, after, max(requests, 1), digits=3)


def per_second_ms(before: Counter[str], after: Counter[str], seconds: float) -> dict[str, float]:
    """CPU ms per second of wall time of each process name, largest first (under 0.01 left out)."""
    return _spread(before, after, seconds, digits=2)


def _spread(
    before: Counter[str], after: Counter[str], over: float, digits: int
) -> dict[str, float]:
    """CPU ms spent by each process name between the two readings, divided by `over`."""
    spent = {name: (after[name] - before.get(name, 0.0)) * 1000 / over for name in after}
    return {
        name: round(ms, digits)
        for name, ms in sorted(spent.items(), key=lambda kv: -kv[1])
        if ms >= 0.01
    }
