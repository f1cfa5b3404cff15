#!/usr/bin/env python3
"""Sampled checks: what 10 checks sampled every 30 s cost the agent, next to the same agent
without them, both running at the same time on the same machine (issue 18's target:
under 0.5 wake-ups/s, under 0.1% of a core, RSS under 1 MiB more).

The agents:
- baseline: 5 log checks on files nothing writes (an agent that only waits), built-in
  default checks off (`MONITOR_DEFAULT_CHECKS=false`), as in every agent here but the last;
- sampled: the same 5 log checks, and 10 sampled checks at `interval: 30s`: 7 `diskusage`
  (3 on `/`: used, free, inodes; 4 on the work folder and its parents) and 3 `storage`
  `read_only` (on mount points of this machine: `/` and the first others of
  /proc/self/mountinfo), so each round reads statvfs(2) 10 times and mountinfo 3 times;
- defaults: the baseline's 5 log checks with the built-in default checks on, as a fresh
  agent runs (config/defaults/: the all-units failed check, root space, root read-only, SoC
  temperature and Pi power, each silent where this machine lacks it): what they cost here.

Method: both agents are started, left to settle (--settle, default 5 s: the sampled
agent's first round runs at its start), then measured over the same window (--seconds,
default 300: 10 rounds of the 10 checks): CPU time of all their threads (schedstat, ns),
wake-ups per second (voluntary + nonvoluntary context switches summed over
/proc/<pid>/task/*/status; the agent's blocking-pool thread lives 5 minutes between
rounds, so it is counted), VmRSS, RssAnon and PSS at the end of the window, threads. The
difference between the two is what the sampled checks cost.

Usage: bench/sampled_checks.py [--seconds 300] [--settle 5] [--no-build]
Prints a table; writes bench/results/sampled_checks.json.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, build, machine_info
from footprint import pss_kib, status_field, stop, threads

LOG_CHECKS, DISKUSAGE, STORAGE = 5, 7, 3
INTERVAL = "30s"


def mount_points(count):
    """`/` and the next mount points of this machine, `count` in all."""
    points = ["/"]
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split(" ")[4]
        if point not in points and "\\" not in point:
            points.append(point)
    return points[:count]


def setup(work, name, monitorctl, sampled, defaults=False):
    """An agent's folders and checks; returns its environment."""
    sandbox = work / name
    for folder in ("config", "state", "run", "logs"):
        (sandbox / folder).mkdir(parents=True)
    env = {"PATH": "/usr/bin:/bin", "MONITOR_CONFIG_DIR": str(sandbox / "config"),
           "MONITOR_STATE_DIR": str(sandbox / "state"), "MONITOR_RUNTIME_DIR": str(sandbox / "run"),
           "RUST_LOG": "warn", "MONITOR_DEFAULT_CHECKS": "true" if defaults else "false"}

    def create(kind, check, *rest, extra=""):
        subprocess.run([monitorctl, "create", kind, check, *rest], env=env, check=True, capture_output=True)
        if extra:
            with open(sandbox / f"config/available/{kind}_{check}.yaml", "a") as file:
                file.write(extra)
        subprocess.run([monitorctl, "enable", kind, check], env=env, check=True, capture_output=True)

    for index in range(LOG_CHECKS):
        log = sandbox / f"logs/app-{index}.log"
        log.write_text("")
        create("log", f"file-{index}", "ERROR", str(log), "5m")
    if sampled:
        every = f"interval: {INTERVAL}\n"
        create("diskusage", "root_used", "/", "99", extra=every)
        create("diskusage", "root_free", "/", extra=every + "metric: free\nthreshold: 100M\n")
        create("diskusage", "root_inodes", "/", extra=every + "metric: inodes\n")
        folders = [sandbox, sandbox.parent, sandbox.parent.parent, Path("/tmp")]
        for index, folder in enumerate(folders[:DISKUSAGE - 3]):
            create("diskusage", f"folder-{index}", str(folder), "99", extra=every)
        for index, point in enumerate(mount_points(STORAGE)):
            create("storage", f"mount-{index}", point, extra=every)
    return env


def start(monitord, monitorctl, env):
    agent = subprocess.Popen([monitord], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while subprocess.run([monitorctl, "status"], env=env, capture_output=True).returncode != 0:
        if agent.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("monitord did not become ready")
        time.sleep(0.01)
    return agent


def states(monitorctl, env):
    """{"<subsystem> <check>": "<state>: <detail>"} from `monitorctl status --json`."""
    answer = subprocess.run([monitorctl, "status", "--json"], env=env, capture_output=True, text=True, check=True)
    return {f"{check['check']['subsystem']} {check['check']['name']}": f"{check['state']}: {check.get('detail')}"
            for check in json.loads(answer.stdout)["checks"]}


def totals(snapshot):
    """CPU ns and context switches over every thread of a `threads()` snapshot."""
    return sum(cpu for _, cpu, _ in snapshot.values()), sum(switches for _, _, switches in snapshot.values())


def window(before, after):
    """CPU ns and switches between two snapshots, per thread (a thread that started in
    between counts from zero)."""
    cpu = switches = 0
    per_thread = {}
    for tid, (name, thread_cpu, thread_switches) in after.items():
        _, cpu_before, switches_before = before.get(tid, (name, 0, 0))
        cpu += thread_cpu - cpu_before
        switches += thread_switches - switches_before
        per_thread[f"{name} ({tid})"] = thread_switches - switches_before
    return cpu, switches, per_thread


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300, help="measured window (default 300: 10 rounds)")
    parser.add_argument("--settle", type=float, default=5, help="seconds after start before measuring")
    parser.add_argument("--no-build", action="store_true", help="use the release binaries as they are")
    arguments = parser.parse_args()
    monitord, monitorctl = build(arguments.no_build)

    with tempfile.TemporaryDirectory(prefix="monitor-bench-sampled-") as folder:
        work = Path(folder)
        envs = {"baseline": setup(work, "baseline", monitorctl, sampled=False),
                "sampled": setup(work, "sampled", monitorctl, sampled=True),
                "defaults": setup(work, "defaults", monitorctl, sampled=False, defaults=True)}
        agents = {name: start(monitord, monitorctl, env) for name, env in envs.items()}
        try:
            time.sleep(arguments.settle)
            check_states = {name: states(monitorctl, env) for name, env in envs.items()}
            before = {name: threads(agent.pid) for name, agent in agents.items()}
            started = time.monotonic()
            time.sleep(arguments.seconds)
            elapsed = time.monotonic() - started
            after = {name: threads(agent.pid) for name, agent in agents.items()}
            results = {}
            for name, agent in agents.items():
                cpu, switches, per_thread = window(before[name], after[name])
                results[name] = {
                    "seconds": elapsed, "cpu_seconds": cpu / 1e9, "cpu_percent": 100 * cpu / 1e9 / elapsed,
                    "wakeups": switches, "wakeups_per_second": switches / elapsed,
                    "wakeups_per_thread": per_thread,
                    "rss_kib": status_field(agent.pid, "VmRSS"), "anon_kib": status_field(agent.pid, "RssAnon"),
                    "pss_kib": pss_kib(agent.pid), "threads": status_field(agent.pid, "Threads"),
                    "check_states": check_states[name]}
        finally:
            for agent in agents.values():
                stop(agent)

    base, sampled, defaults = results["baseline"], results["sampled"], results["defaults"]
    delta = {"wakeups_per_second": sampled["wakeups_per_second"] - base["wakeups_per_second"],
             "cpu_percent": sampled["cpu_percent"] - base["cpu_percent"],
             "rss_kib": sampled["rss_kib"] - base["rss_kib"], "anon_kib": sampled["anon_kib"] - base["anon_kib"],
             "pss_kib": sampled["pss_kib"] - base["pss_kib"]}
    output = {"machine": machine_info(), "arguments": vars(arguments), "interval": INTERVAL,
              "sampled_checks": DISKUSAGE + STORAGE, "results": results, "delta": delta}
    (ROOT / "bench/results").mkdir(exist_ok=True)
    (ROOT / "bench/results/sampled_checks.json").write_text(json.dumps(output, indent=2) + "\n")

    rounds = arguments.seconds / 30
    print(f"10 sampled checks every {INTERVAL} (about {rounds:.0f} rounds) next to the same agent without them, "
          f"over {base['seconds']:.0f} s")
    print(f"{'':<28}{'baseline':>12}{'sampled':>12}{'difference':>12}   target")
    print(f"{'wake-ups/s':<28}{base['wakeups_per_second']:>12.3f}{sampled['wakeups_per_second']:>12.3f}"
          f"{delta['wakeups_per_second']:>12.3f}   < 0.5")
    print(f"{'CPU, % of a core':<28}{base['cpu_percent']:>12.4f}{sampled['cpu_percent']:>12.4f}"
          f"{delta['cpu_percent']:>12.4f}   < 0.1")
    print(f"{'RSS, KiB':<28}{base['rss_kib']:>12}{sampled['rss_kib']:>12}{delta['rss_kib']:>12}   < 1024")
    print(f"{'anonymous RSS, KiB':<28}{base['anon_kib']:>12}{sampled['anon_kib']:>12}{delta['anon_kib']:>12}")
    print(f"{'PSS, KiB':<28}{base['pss_kib']:>12}{sampled['pss_kib']:>12}{delta['pss_kib']:>12}")
    print(f"{'threads':<28}{base['threads']:>12}{sampled['threads']:>12}")
    print("the sampled agent's checks at the start of the window:")
    for check, state in sampled["check_states"].items():
        print(f"  {check}: {state}")
    busiest = sorted(sampled["wakeups_per_thread"].items(), key=lambda item: -item[1])
    print("sampled agent's wake-ups by thread over the window: " + ", ".join(f"{name} {count}" for name, count in busiest))
    print(f"a fresh agent's built-in defaults, next to the baseline: {defaults['wakeups_per_second']:.3f} wake-ups/s, "
          f"{defaults['cpu_percent']:.4f}% of a core, RSS {defaults['rss_kib']} KiB ({defaults['rss_kib'] - base['rss_kib']:+} KiB), "
          f"{defaults['threads']} threads")
    for check, state in defaults["check_states"].items():
        if not check.startswith("log "):
            print(f"  {check}: {state}")
    busiest = sorted(defaults["wakeups_per_thread"].items(), key=lambda item: -item[1])
    print("defaults agent's wake-ups by thread: " + ", ".join(f"{name} {count}" for name, count in busiest))


if __name__ == "__main__":
    sys.exit(main())
