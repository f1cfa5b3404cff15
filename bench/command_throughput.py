#!/usr/bin/env python3
"""`@command` source throughput: lines per second matched from a fast command, and the
agent's CPU and memory while doing it, next to `grep -c` reading the same stream.

The command prints a START line, N log lines (one in 1000 contains ERROR), and an END line,
then sleeps. Two checks match START and END; the time between their CRITICALs (the
engine's own timestamps) is the time the agent took to read and match the N lines. CPU
comes from /proc/<pid>/stat over the run, memory from VmHWM.

Usage: bench/command_throughput.py [--lines N] [--runs R]   (builds monitord in release mode)
Prints a table; writes bench/results/command_throughput.json.
"""

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from common import ROOT, build
TICK = os.sysconf("SC_CLK_TCK")


def generator(lines):
    # awk is fast and everywhere; one line in 1000 has ERROR, as a real log would.
    return ("awk 'BEGIN { print \"BENCH-START\"; for (i = 1; i <= %d; i++) "
            "{ if (i %% 1000 == 0) printf \"2026-11-22T00:00:00Z app[42]: ERROR request %%d failed\\n\", i; "
            "else printf \"2026-11-22T00:00:00Z app[42]: INFO request %%d served in 3ms\\n\", i } "
            "print \"BENCH-END\" }'; sleep 100000" % lines)


def timestamp(alert):
    return datetime.strptime(alert["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def one_run(monitord, monitorctl, lines):
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as sandbox:
        sandbox = Path(sandbox)
        env = dict(os.environ, MONITOR_DEFAULT_CHECKS="false", MONITOR_CONFIG_DIR=str(sandbox / "config"), MONITOR_STATE_DIR=str(sandbox / "state"),
                   MONITOR_RUNTIME_DIR=str(sandbox / "run"), RUST_LOG="warn")
        source = "@" + generator(lines)
        for name, pattern in (("start", "^BENCH-START$"), ("end", "^BENCH-END$"), ("errors", "ERROR")):
            subprocess.run([monitorctl, "create", "log", name, pattern, source, "never"], env=env, check=True)
            subprocess.run([monitorctl, "enable", "log", name], env=env, check=True)
        agent = subprocess.Popen([monitord], env=env, stderr=subprocess.DEVNULL)
        history = sandbox / "state/alerts.jsonl"
        try:
            deadline = time.monotonic() + 300
            while True:
                records = [json.loads(l) for l in history.read_text().splitlines()] if history.exists() else []
                names = {r["check"]["name"]: r for r in records}
                if "start" in names and "end" in names:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit("the agent did not read the whole output within 300 s")
                time.sleep(0.05)
            stat = Path(f"/proc/{agent.pid}/stat").read_text().split()
            cpu = (int(stat[13]) + int(stat[14])) / TICK
            status = Path(f"/proc/{agent.pid}/status").read_text()
            hwm = next(int(l.split()[1]) for l in status.splitlines() if l.startswith("VmHWM"))
        finally:
            agent.terminate()
            agent.wait()
        seconds = timestamp(names["end"]) - timestamp(names["start"])
        return {"seconds": seconds, "lines_per_second": lines / max(seconds, 1e-6), "cpu_seconds": cpu, "peak_rss_kib": hwm}


def grep_run(lines):
    command = generator(lines).replace("; sleep 100000", "") + " | grep -c ERROR"
    started = time.monotonic()
    subprocess.run(["sh", "-c", command], check=True, capture_output=True)
    seconds = time.monotonic() - started
    return {"seconds": seconds, "lines_per_second": lines / seconds}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=3)
    arguments = parser.parse_args()
    monitord, monitorctl = build(skip=False)

    agent_runs = [one_run(monitord, monitorctl, arguments.lines) for _ in range(arguments.runs)]
    grep_runs = [grep_run(arguments.lines) for _ in range(arguments.runs)]

    def median(runs, key):
        return statistics.median(run[key] for run in runs)

    print(f"@command source, {arguments.lines} lines (1 in 1000 matches), median of {arguments.runs} runs")
    print(f"{'reader':34} {'lines/s':>12} {'seconds':>8} {'CPU s':>7} {'peak RSS':>10}")
    print(f"{'monitord (3 checks on the source)':34} {median(agent_runs, 'lines_per_second'):>12,.0f} "
          f"{median(agent_runs, 'seconds'):>8.2f} {median(agent_runs, 'cpu_seconds'):>7.2f} "
          f"{median(agent_runs, 'peak_rss_kib') / 1024:>8.1f} MiB")
    print(f"{'awk | grep -c ERROR (baseline)':34} {median(grep_runs, 'lines_per_second'):>12,.0f} "
          f"{median(grep_runs, 'seconds'):>8.2f} {'-':>7} {'-':>10}")
    spread = [run["lines_per_second"] for run in agent_runs]
    print(f"monitord spread: {min(spread):,.0f} .. {max(spread):,.0f} lines/s; "
          f"ratio to the baseline: {median(agent_runs, 'lines_per_second') / median(grep_runs, 'lines_per_second'):.2f}")
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "command_throughput.json").write_text(json.dumps({"lines": arguments.lines, "monitord": agent_runs, "grep": grep_runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
