"""What the benchmark scripts share: percentiles, the machine they ran on, the release
binaries, and a process's CPU time."""

import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def machine_info():
    def command(*args):
        try:
            return subprocess.run(args, cwd=ROOT, capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""
    return {"nproc": os.cpu_count(), "kernel": platform.release(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "commit": command("git", "rev-parse", "--short", "HEAD")}


def build(skip):
    """The release binaries (`cargo build` is a no-op when they are up to date)."""
    if not skip:
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet", "-p", "monitor", "--bins"],
                       cwd=ROOT, check=True)
    target = Path(json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT,
                                            capture_output=True, text=True, check=True).stdout)["target_directory"])
    return str(target / "release/monitord"), str(target / "release/monitorctl")

def cpu_seconds(pid):
    """CPU time of every thread of `pid`: schedstat (ns) when the kernel has it, else stat ticks."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
        return total / 1e9
    except (FileNotFoundError, ValueError):
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(stat[11]) + int(stat[12])) / TICK
