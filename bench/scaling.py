#!/usr/bin/env python3
"""Scaling: what monitord costs with 1, 50, 500 and 5,000 checks, and whether any of it
grows faster than the number of checks (issue 20 point 6).

The checks, in footprint.py's proportion at 50 (20 log files, 20 services, 10 commands),
i.e. per 5 checks 2 log files, 2 services and 1 command (1 check: one log file):
- log checks `ERROR` on logs/app-N.log, one file each;
- service checks on units `bench-svc-N` of a real `systemd --user` manager (private mount
  namespace, as in footprint.py). The units are `Type=oneshot` with `RemainAfterExit=yes`
  (active, no process): 2,000 `sleep` processes would take 2,000 of this machine's 4,915
  tasks (the container's pids limit, shared with the builds of other work), and a unit's
  process is nothing the agent watches (it follows the unit's state over D-Bus);
- command checks (`panic`): the first 10 are `@tail -F -n0 logs/app-N.log` as in
  footprint.py; beyond 10 they are `@cat logs/fifo-N`, a named pipe this script holds open
  for writing, so `cat` blocks in `read()` for ever. Every GNU `tail -F` takes an inotify
  instance of its own and the machine allows 128 per user (`fs.inotify.max_user_instances`,
  shared with everything else running as root here): 1,000 `tail`s would not start. For
  the agent a command is the same either way: one child process, its pipes, one task
  reading them.

For each size (and for each build, alternating, with --before DIR):
- startup, --starts times (--large-starts above 500 checks; the state folder kept
  between starts, so only the first start finds no saved positions): from just before the
  exec of monitord to `READY=1` on a NOTIFY_SOCKET, and to the first `monitorctl status
  --json` with no check `unknown`; the median;
- idle, after --settle seconds, over --idle-seconds: RSS, anonymous RSS, PSS, CPU and
  wake-ups (context switches of all threads, from /proc), fds and threads; the command
  children's PSS apart;
- a fixed write load, the same at every size: --load-rate lines/s (default 1,000) over
  min(log files, 20) files for --load-seconds (footprint.py's writer: each millisecond's
  lines to the next file): CPU % and wake-ups/s of monitord.
Then, between each size and the next, the cost per added check of every figure; a figure
whose cost per check more than doubles from one step to the next (and by more than the
noise floor) is flagged as growing faster than linearly.

Usage: bench/scaling.py [--sizes 1,50,500,5000] [--idle-seconds 30] [--load-seconds 20]
                        [--load-rate 1000] [--starts 3] [--large-starts 1] [--before DIR] [--no-build]
Prints a table; writes bench/results/scaling.json.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, UserManager, build, machine_info
from footprint import check_states, descendants, measure, pss_kib, start_agent, stop, write_lines

TAIL_COMMANDS = 10  # `@tail -F` commands at most (each takes an inotify instance); the rest `@cat fifo`
LOADED_FILES = 20  # the write load goes to min(log files, 20) files at every size
START_TIMEOUT = 600  # seconds for every check to be known (minutes at 5,000 before issue 20)


def proportions(size):
    """(log files, services, commands) for `size` checks: 2 : 2 : 1, log files first."""
    if size < 5:
        return size, 0, 0
    files, services = 2 * size // 5, 2 * size // 5
    return files, services, size - files - services


def write_checks(sandbox, work, size):
    """The config folder of `size` checks, written as `monitorctl create` + `enable` would
    (available/<kind>_<name>.yaml, linked from enabled/): 10,000 monitorctl runs would take
    minutes at 5,000 checks."""
    files, services, commands = proportions(size)
    available, enabled = sandbox / "config/available", sandbox / "config/enabled"
    available.mkdir(parents=True)
    enabled.mkdir()
    (sandbox / "config/monitor.yaml").write_text("systemd:\n  bus: user\n")

    def check(kind, name, body):
        file_name = f"{kind}_{name}.yaml"
        (available / file_name).write_text(f"# {kind} check {name}\n{body}")
        (enabled / file_name).symlink_to(f"../available/{file_name}")

    for index in range(files):
        check("log", f"file-{index}", f"pattern: ERROR\nsource: {work}/logs/app-{index}.log\nexpiration: 5m\n")
    for index in range(services):
        check("service", f"bench-svc-{index}", f"name: bench-svc-{index}\ntype: systemd\n")
    for index in range(commands):
        source = (f"@tail -F -n0 {work}/logs/app-{index}.log" if index < TAIL_COMMANDS
                  else f"@cat {work}/logs/fifo-{index}")
        check("log", f"cmd-{index}", f"pattern: panic\nsource: '{source}'\nexpiration: 5m\n")


def measure_size(monitord, monitorctl, manager, work, size, arguments, label):
    sandbox = work / f"agent-{label}-{size}"
    for folder in ("state", "run"):
        (sandbox / folder).mkdir(parents=True)
    write_checks(sandbox, work, size)
    env = dict(manager.env, MONITOR_DEFAULT_CHECKS="false", MONITOR_CONFIG_DIR=str(sandbox / "config"),
               MONITOR_STATE_DIR=str(sandbox / "state"), MONITOR_RUNTIME_DIR=str(sandbox / "run"),
               RUST_LOG="warn")
    files, services, commands = proportions(size)
    ready, known, unknown_after_ready = [], [], []
    for _ in range(arguments.starts if size <= 500 else arguments.large_starts):
        notify = {}
        agent, _, all_known = start_agent(monitord, monitorctl, env, notify, timeout=START_TIMEOUT)
        stop(agent)
        ready.append(notify["ready"])
        known.append(all_known)
        unknown_after_ready.append(notify["unknown"])
    agent, _, _ = start_agent(monitord, monitorctl, env, timeout=START_TIMEOUT)
    try:
        time.sleep(arguments.settle)
        states = check_states(monitorctl, env)
        children = descendants(agent.pid)
        idle = measure(agent.pid, arguments.idle_seconds, children)
        loaded = min(files, LOADED_FILES)
        writer = subprocess.Popen([sys.executable, __file__, "--writer", str(work / "logs"), "--files", str(loaded),
                                   "--load-rate", str(arguments.load_rate),
                                   "--load-seconds", str(arguments.load_seconds + 2)])
        try:
            time.sleep(1)  # warm-up: the readers are at their steady pace
            load = measure(agent.pid, arguments.load_seconds)
        finally:
            writer.wait()
    finally:
        stop(agent)
    return {"build": label, "size": size, "log_files": files, "services": services, "commands": commands,
            "loaded_files": min(files, LOADED_FILES), "check_states": states,
            "ready_seconds": ready, "all_known_seconds": known, "unknown_right_after_ready": unknown_after_ready,
            "idle": idle, "load": load}


# The figures compared between sizes: (key, label, unit, value of a row, noise floor of a
# difference per check: below it, a change of cost per check is not read as growth). The
# figures of FLAT should not grow with the checks at all (the load is the same at every size).
FIGURES = (
    ("ready_ms", "first start to READY=1", "ms", lambda row: 1000 * row["ready_seconds"][0], 0.05),
    ("known_ms", "first start to every check known", "ms", lambda row: 1000 * row["all_known_seconds"][0], 0.05),
    ("rss_kib", "idle RSS", "KiB", lambda row: row["idle"]["rss_kib"], 2),
    ("anon_kib", "idle anonymous RSS", "KiB", lambda row: row["idle"]["anon_kib"], 2),
    ("pss_kib", "idle PSS", "KiB", lambda row: row["idle"]["pss_kib"], 2),
    ("children_pss_kib", "idle PSS of the command children", "KiB",
     lambda row: row["idle"].get("children", {}).get("pss_kib", 0), 2),
    ("fds", "open fds", "", lambda row: row["idle"]["fds"], 0.1),
    ("idle_wakeups", "idle wake-ups/s", "/s", lambda row: row["idle"]["wakeups_per_second"], 0.001),
    ("load_cpu", "CPU % at the fixed load", "%", lambda row: row["load"]["cpu_percent"], 0.001),
    ("load_wakeups", "wake-ups/s at the fixed load", "/s", lambda row: row["load"]["wakeups_per_second"], 0.05),
)


FLAT = {"idle_wakeups", "load_cpu", "load_wakeups"}


def same_load(smaller, larger):
    """Whether two sizes had the same write load: as many files written, as many `tail`s."""
    tails = [min(row["commands"], TAIL_COMMANDS) for row in (smaller, larger)]
    return smaller["loaded_files"] == larger["loaded_files"] and tails[0] == tails[1]


def growth(rows):
    """For each figure, its cost per added check between each size and the next, and the
    steps where that cost more than doubled (above the noise floor): super-linear growth.
    A figure of FLAT is flagged where it grew by more than a quarter (plus its floor) over
    a step: at a fixed load, that is a cost per line or per wake-up growing with the checks."""
    result = {}
    for key, label, unit, value, floor in FIGURES:
        steps = []
        for smaller, larger in zip(rows, rows[1:]):
            added = larger["size"] - smaller["size"]
            steps.append({"from": smaller["size"], "to": larger["size"],
                          "per_check": (value(larger) - value(smaller)) / added,
                          "ratio": value(larger) / value(smaller) if value(smaller) else None})
        if key in FLAT:
            # Only between sizes with the same work to do: below 50 checks the load goes to
            # fewer files and no `tail` reads them.
            flagged = [f"{step['from']}->{step['to']}" for step, smaller, larger in zip(steps, rows, rows[1:])
                       if (key == "idle_wakeups" or same_load(smaller, larger))
                       and value(larger) > 1.25 * value(smaller) + floor * 100]
        else:
            flagged = [f"{later['from']}->{later['to']}" for earlier, later in zip(steps, steps[1:])
                       if later["per_check"] > max(2 * earlier["per_check"], floor)]
        result[key] = {"label": label, "unit": unit, "values": [value(row) for row in rows], "steps": steps,
                       "flat": key in FLAT, "super_linear": flagged}
    return result


def started(seconds):
    """The first start's milliseconds, and the median of the later ones in brackets."""
    later = f" ({1000 * statistics.median(seconds[1:]):.0f})" if len(seconds) > 1 else ""
    return f"{1000 * seconds[0]:.0f}{later}"


def report(results):
    for label, rows in results["builds"].items():
        print(f"\n{label}: load {results['load_rate']:,} lines/s over min(log files, {LOADED_FILES}) files, "
              f"idle {results['idle_seconds']:g} s")
        print("READY / known: the first start (no saved positions); in brackets the median of the later starts")
        print(f"{'checks':>6} {'files':>5} {'units':>5} {'cmds':>5} {'READY ms':>16} {'known ms':>16} {'RSS MiB':>8} "
              f"{'anon MiB':>9} {'PSS MiB':>8} {'cmds PSS':>9} {'fds':>5} {'thr':>4} {'idle wk/s':>10} "
              f"{'load CPU%':>10} {'load wk/s':>10}")
        for row in rows:
            idle, load = row["idle"], row["load"]
            print(f"{row['size']:>6} {row['log_files']:>5} {row['services']:>5} {row['commands']:>5} "
                  f"{started(row['ready_seconds']):>16} {started(row['all_known_seconds']):>16} "
                  f"{idle['rss_kib'] / 1024:>8.1f} "
                  f"{idle['anon_kib'] / 1024:>9.1f} {idle['pss_kib'] / 1024:>8.1f} "
                  f"{idle.get('children', {}).get('pss_kib', 0) / 1024:>9.1f} {idle['fds']:>5} {idle['threads']:>4} "
                  f"{idle['wakeups_per_second']:>10.2f} {load['cpu_percent']:>10.2f} {load['wakeups_per_second']:>10.1f}")
        for row in rows:
            if any(row["unknown_right_after_ready"]) or (row["check_states"] or {}).get("unknown"):
                print(f"  {row['size']} checks: unknown right after READY {row['unknown_right_after_ready']}, "
                      f"states while measured {row['check_states']}")
        print("cost per added check, between sizes:")
        for key, figure in results["growth"][label].items():
            steps = "   ".join(f"{step['from']}->{step['to']}: {step['per_check']:.4g}" for step in figure["steps"])
            kind = "GROWS WITH THE CHECKS" if figure["flat"] else "FASTER THAN LINEAR"
            flag = f"   {kind} at {', '.join(figure['super_linear'])}" if figure["super_linear"] else ""
            print(f"  {figure['label'] + (' (' + figure['unit'] + ')' if figure['unit'] else ''):44} {steps}{flag}")
        wakeups = [row["idle"]["wakeups_per_second"] for row in rows]
        print(f"idle wake-ups 0 at every size: {'yes' if not any(wakeups) else 'NO: ' + str(wakeups)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,50,500,5000", help="numbers of checks (default 1,50,500,5000)")
    parser.add_argument("--idle-seconds", type=float, default=30, help="idle window (default 30)")
    parser.add_argument("--load-seconds", type=float, default=20, help="load window (default 20)")
    parser.add_argument("--load-rate", type=int, default=1000, help="lines/s of the fixed load (default 1000)")
    parser.add_argument("--starts", type=int, default=3, help="starts timed per size up to 500 (default 3)")
    parser.add_argument("--large-starts", type=int, default=1, help="starts timed per size over 500 (default 1)")
    parser.add_argument("--settle", type=float, default=5, help="seconds after start before measuring (default 5)")
    parser.add_argument("--before", metavar="DIR", help="also an older build's monitord and monitorctl in DIR")
    parser.add_argument("--no-build", action="store_true", help="use the release binaries as they are")
    parser.add_argument("--writer", metavar="DIR", help=argparse.SUPPRESS)  # internal: be the writer process
    parser.add_argument("--files", type=int, default=LOADED_FILES, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.writer:
        write_lines(arguments.writer, arguments.load_rate, arguments.load_seconds, arguments.files)
        return
    sizes = sorted(int(size) for size in arguments.sizes.split(","))
    builds = [("this build", *build(arguments.no_build))]
    if arguments.before:
        builds.insert(0, (f"before ({arguments.before})", str(Path(arguments.before) / "monitord"),
                          str(Path(arguments.before) / "monitorctl")))

    largest_files, largest_services, largest_commands = proportions(max(sizes))
    work = Path(tempfile.mkdtemp(prefix="monitor-bench-scaling-"))
    (work / "logs").mkdir()
    for index in range(largest_files):
        (work / f"logs/app-{index}.log").touch()
    fifos = []
    for index in range(TAIL_COMMANDS, largest_commands):
        os.mkfifo(work / f"logs/fifo-{index}")
        # Read and write: opens without waiting for a reader, and keeps `cat` blocked, not at EOF.
        fifos.append(os.open(work / f"logs/fifo-{index}", os.O_RDWR))
    results = {"machine": machine_info(), "sizes": sizes, "idle_seconds": arguments.idle_seconds,
               "load_seconds": arguments.load_seconds, "load_rate": arguments.load_rate,
               "starts": arguments.starts, "builds": {label: [] for label, _, _ in builds}}
    manager = None
    try:
        manager = UserManager(work / "systemd")
        units = manager.dir / "config/systemd/user"
        for index in range(largest_services):
            (units / f"bench-svc-{index}.service").write_text(
                "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n")
        manager.systemctl("daemon-reload")
        if largest_services:
            started = manager.systemctl("start", *[f"bench-svc-{index}" for index in range(largest_services)])
            if started.returncode != 0:
                raise SystemExit(f"cannot start the units: {started.stderr}")
        # Smallest first; the builds alternate at each size, so both see the same machine.
        for size in sizes:
            for label, monitord, monitorctl in builds:
                print(f"{label}: {size} checks ...", file=sys.stderr)
                results["builds"][label].append(
                    measure_size(monitord, monitorctl, manager, work, size, arguments, label.split()[0]))
    finally:
        if manager:
            manager.stop()
        for descriptor in fifos:
            os.close(descriptor)
        shutil.rmtree(work, ignore_errors=True)

    results["growth"] = {label: growth(rows) for label, rows in results["builds"].items()}
    report(results)
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "scaling.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
