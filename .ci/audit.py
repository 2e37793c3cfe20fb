"""Run pip-audit over the locked requirements and decide what its answer means for CI.

pip-audit finds its vulnerability service by itself. A known vulnerability fails CI, and so
does a package it could not audit while it audited others. When it could audit nothing (no
network, or an index that does not serve the per-version data it needs), CI goes on under a
loud banner: a missing network never fails CI, but it never passes for a clean audit either.

    python .ci/audit.py REQUIREMENTS
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

BANNER = """
##############################################################################################
WARNING: DEPENDENCY AUDIT NOT RUN: none of the {count} pinned packages was checked for known
vulnerabilities ({reason}).
Run .ci/run where pip-audit's vulnerability service is reachable; see docs/SECURITY.md.
##############################################################################################
"""


def main(requirements: Path) -> int:
    pinned = sum(1 for line in requirements.read_text().splitlines() if "==" in line)
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "audit.json"
        command = [
            "pip-audit", "--requirement", str(requirements), "--no-deps", "--disable-pip",
            "--progress-spinner", "off", "--format", "json", "--output", str(report),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        answer = json.loads(report.read_text()) if report.exists() else None
    if answer is None:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        sys.stderr.write(BANNER.format(count=pinned, reason=f"pip-audit failed: {last}"))
        return 0
    dependencies = answer.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    skipped = [d for d in dependencies if "skip_reason" in d]
    for dependency in vulnerable:
        ids = ", ".join(vuln["id"] for vuln in dependency["vulns"])
        sys.stderr.write(f"VULNERABLE: {dependency['name']}=={dependency['version']}: {ids}\n")
    if vulnerable:
        return 1
    if dependencies and len(skipped) == len(dependencies):
        reason = f"every package skipped, e.g. {skipped[0]['name']}: {skipped[0]['skip_reason']}"
        sys.stderr.write(BANNER.format(count=pinned, reason=reason))
        return 0
    for dependency in skipped:
        sys.stderr.write(f"NOT AUDITED: {dependency['name']}: {dependency['skip_reason']}\n")
    if skipped:
        return 1
    sys.stdout.write(f"Dependency audit: {len(dependencies)} packages, no known vulnerabilities\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
