#!/usr/bin/env python3
"""Service failure latency: from a unit's crash to the alert, monitord vs polling.

Runs a real `systemd --user` manager (private mount namespace, as in the tests), a unit
that `kill -9` takes down (no Restart=, so it stays down until the next round), and
measures, over many crashes:

- monitord: crash (the main process killed with SIGKILL by pid) -> the CRITICAL's timestamp
  (when the engine made it), split into stages by the unit's own timestamps;
- `systemctl --user is-active` polled every 1 s and every 2 s (Mender Monitor's approach):
  crash -> the first poll that sees it not active;
- seed 000's `OnFailure=` handler unit: crash -> the handler script running.

Then a `Restart=always`, `RestartSec=100ms` unit is killed repeatedly: how many of the
crashes each approach notices.

Usage: bench/service_latency.py [--crashes N]   (builds monitord in release mode first)
Prints a table; writes bench/results/service_latency.json.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

from common import ROOT, UserManager, build, percentile


class Poller(threading.Thread):
    """`systemctl --user is-active` every `interval` seconds; remembers when it saw 'down'."""

    def __init__(self, manager, unit, interval):
        super().__init__(daemon=True)
        self.manager, self.unit, self.interval = manager, unit, interval
        self.down_seen = []  # wall-clock times of polls that saw a new down
        self.stopped = threading.Event()

    def run(self):
        was_active = True
        next_poll = time.monotonic()
        while not self.stopped.is_set():
            active = self.manager.systemctl("is-active", self.unit).stdout.strip() == "active"
            if was_active and not active:
                self.down_seen.append(time.time())
            was_active = active
            next_poll += self.interval
            self.stopped.wait(max(0, next_poll - time.monotonic()))


def alerts(sandbox):
    path = sandbox / "state/alerts.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def timestamp(alert):
    from datetime import datetime
    return datetime.strptime(alert["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=__import__("datetime").timezone.utc).timestamp()


def unit_time(manager, unit, interface, name):
    """A timestamp property of `unit` as systemd recorded it (microseconds, wall clock), in
    seconds; None when unset."""
    path = "/org/freedesktop/systemd1/unit/" + unit.replace(".", "_2e").replace("-", "_2d")
    answer = subprocess.run(["busctl", "--user", "get-property", "org.freedesktop.systemd1", path,
                             f"org.freedesktop.systemd1.{interface}", name],
                            env=manager.env, capture_output=True, text=True)
    value = int(answer.stdout.split()[1]) if answer.returncode == 0 else 0
    return value / 1e6 if value else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--crashes", type=int, default=20)
    arguments = parser.parse_args()

    monitord, monitorctl = build(skip=False)

    manager = UserManager()
    sandbox = manager.dir / "sandbox"
    for folder in ("config", "state", "run"):
        (sandbox / folder).mkdir(parents=True)
    (sandbox / "config/monitor.yaml").write_text("systemd:\n  bus: user\nflapping_count_threshold: 1000000\n")
    env = dict(manager.env, MONITOR_DEFAULT_CHECKS="false", MONITOR_CONFIG_DIR=str(sandbox / "config"), MONITOR_STATE_DIR=str(sandbox / "state"),
               MONITOR_RUNTIME_DIR=str(sandbox / "run"))
    handler_log = manager.dir / "onfailure.log"
    manager.install("victim.service", "[Unit]\nDescription=Victim\nOnFailure=handler@%n.service\n"
                                      "[Service]\nExecStart=/bin/sleep infinity\n")
    # Seed 000's approach: a oneshot handler unit running a script on failure.
    manager.install("handler@.service", f"[Service]\nType=oneshot\nExecStart=/bin/sh -c 'date +%%s.%%N >> {handler_log}'\n")
    manager.install("looper.service", "[Service]\nExecStart=/bin/sleep infinity\nRestart=always\nRestartSec=100ms\n"
                                      "[Unit]\nStartLimitIntervalSec=0\nOnFailure=handler@%n.service\n")
    for unit in ("victim", "looper"):
        subprocess.run([str(monitorctl), "create", "service", unit, "systemd"], env=env, check=True)
        subprocess.run([str(monitorctl), "enable", "service", unit], env=env, check=True)
    agent = subprocess.Popen([str(monitord)], env=env, stderr=subprocess.DEVNULL)
    try:
        while subprocess.run([str(monitorctl), "status"], env=env, capture_output=True).returncode != 0:
            time.sleep(0.05)

        # Part 1: latency, a unit that stays down.
        pollers = {interval: Poller(manager, "victim", interval) for interval in (1.0, 2.0)}
        manager.systemctl("start", "victim")
        manager.wait_active("victim")
        for poller in pollers.values():
            poller.start()
        crash_times = []
        agent_latency = []
        # Where the time goes, per crash: from the kill to systemd handling the main process's
        # exit (ExecMainExitTimestamp), to the unit's state change (StateChangeTimestamp), to
        # the alert.
        stages = {"systemd handled the exit": [],
                  "unit entered failed": [], "alert made (engine)": []}
        # The agent's own part: the unit's state change to the alert (the signal's way
        # through the bus, the watcher, the loop and the engine).
        agent_part = []
        for _ in range(arguments.crashes):
            manager.systemctl("start", "victim")
            manager.wait_active("victim")
            time.sleep(2.2)  # every poller has seen it up again
            before = len([a for a in alerts(sandbox) if a["check"]["name"] == "victim" and a["level"] == "CRITICAL"])
            # The crash itself: the main process killed by a signal, as a segfault or the OOM
            # killer would (systemd learns it by SIGCHLD). Through `systemctl kill` the clock
            # would also count systemctl's start and its call to systemd (~10-25 ms here).
            main_pid = int(manager.systemctl("show", "-p", "MainPID", "--value", "victim").stdout.strip())
            crashed = time.time()
            os.kill(main_pid, signal.SIGKILL)
            crash_times.append(crashed)
            deadline = time.monotonic() + 10
            while True:
                critical = [a for a in alerts(sandbox) if a["check"]["name"] == "victim" and a["level"] == "CRITICAL"]
                if len(critical) > before:
                    agent_latency.append((timestamp(critical[-1]) - crashed) * 1000)
                    exited = unit_time(manager, "victim.service", "Service", "ExecMainExitTimestamp")
                    failed = unit_time(manager, "victim.service", "Unit", "StateChangeTimestamp")
                    made = timestamp(critical[-1])
                    for stage, at in (("systemd handled the exit", exited),
                                      ("unit entered failed", failed), ("alert made (engine)", made)):
                        if at:
                            stages[stage].append((at - crashed) * 1000)
                    if failed:
                        agent_part.append((made - failed) * 1000)
                    break
                if time.monotonic() > deadline:
                    raise SystemExit("monitord did not report a crash within 10 s")
                time.sleep(0.01)
            time.sleep(2.5)  # stays down long enough for every poller to have its chance
        time.sleep(2.2)
        for poller in pollers.values():
            poller.stopped.set()

        def latencies(seen):
            result = []
            for crashed in crash_times:
                later = [t for t in seen if t >= crashed]
                if later:
                    result.append((min(later) - crashed) * 1000)
            return result

        handler_times = [float(line) for line in handler_log.read_text().split()] if handler_log.exists() else []
        rows = {"monitord (D-Bus signals)": agent_latency}
        for interval, poller in pollers.items():
            rows[f"systemctl is-active every {interval:g} s"] = latencies(poller.down_seen)
        rows["OnFailure= handler script (seed 000)"] = latencies(handler_times)

        # Part 2: a Restart=always, RestartSec=100ms unit killed repeatedly.
        manager.systemctl("start", "looper")
        manager.wait_active("looper")
        loop_pollers = {interval: Poller(manager, "looper", interval) for interval in (1.0, 2.0)}
        for poller in loop_pollers.values():
            poller.start()
        before = len([a for a in alerts(sandbox) if a["check"]["name"] == "looper" and a["level"] == "CRITICAL"])
        handler_runs_before = len(handler_log.read_text().split()) if handler_log.exists() else 0
        restarts_before = int(manager.systemctl("show", "-p", "NRestarts", "--value", "looper").stdout.strip() or 0)
        kills = arguments.crashes
        for _ in range(kills):
            manager.systemctl("kill", "-s", "KILL", "looper")
            time.sleep(0.5)
        time.sleep(2.5)
        for poller in loop_pollers.values():
            poller.stopped.set()
        restarts = int(manager.systemctl("show", "-p", "NRestarts", "--value", "looper").stdout.strip() or 0) - restarts_before
        noticed = {"monitord (D-Bus signals)": len([a for a in alerts(sandbox) if a["check"]["name"] == "looper"
                                                     and a["level"] == "CRITICAL"]) - before}
        for interval, poller in loop_pollers.items():
            noticed[f"systemctl is-active every {interval:g} s"] = len(poller.down_seen)
        handler_runs = len(handler_log.read_text().split()) if handler_log.exists() else 0
        noticed["OnFailure= handler script (seed 000)"] = handler_runs - handler_runs_before
    finally:
        agent.terminate()
        agent.wait()
        manager.stop()

    print(f"Service failure latency over {arguments.crashes} crashes (kill -9, unit stays down), milliseconds")
    print(f"{'approach':42} {'seen':>6} {'median':>9} {'p99':>9} {'min':>8} {'max':>8}   (p99 of few runs is near the max)")
    results = {"crashes": arguments.crashes, "latency_ms": {}, "restart_loop": {"kills": kills, "restarts": restarts, "noticed": noticed}}
    for name, values in rows.items():
        results["latency_ms"][name] = {"seen": len(values), "median": statistics.median(values) if values else None,
                                       "p99": percentile(values, 0.99) if values else None}
        if values:
            print(f"{name:42} {len(values):>6} {statistics.median(values):>9.1f} {percentile(values, 0.99):>9.1f} "
                  f"{min(values):>8.1f} {max(values):>8.1f}")
        else:
            print(f"{name:42} {0:>6} {'-':>9} {'-':>9} {'-':>8} {'-':>8}")
    print()
    print("Where the time goes (ms after the kill)")
    print(f"{'stage':42} {'seen':>6} {'median':>9} {'p99':>9} {'min':>8} {'max':>8}")
    results["stages_ms"] = {}
    for name, values in stages.items():
        if values:
            results["stages_ms"][name] = {"median": statistics.median(values), "p99": percentile(values, 0.99)}
            print(f"{name:42} {len(values):>6} {statistics.median(values):>9.1f} {percentile(values, 0.99):>9.1f} "
                  f"{min(values):>8.1f} {max(values):>8.1f}")
    if agent_part:
        results["stages_ms"]["unit failed -> alert (the agent's part)"] = {
            "median": statistics.median(agent_part), "p99": percentile(agent_part, 0.99), "values": agent_part}
        print(f"{'unit failed -> alert (the agent part)':42} {len(agent_part):>6} {statistics.median(agent_part):>9.1f} "
              f"{percentile(agent_part, 0.99):>9.1f} {min(agent_part):>8.1f} {max(agent_part):>8.1f}")
    print()
    print(f"Restart=always, RestartSec=100ms: {kills} kills, {restarts} restarts counted by systemd")
    for name, count in noticed.items():
        print(f"{name:42} noticed {count:>4} crashes")
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "service_latency.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
