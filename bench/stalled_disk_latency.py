#!/usr/bin/env python3
"""Alert latency while the state folder's fsyncs stall: from the write() of a matching log
line to a Discord stand-in's receipt of the alert, and to `monitorctl alerts --follow`
printing it, with state_dir healthy and with every fsync in it stalled 5 s.

Issue 14, item 1: "Delivery never waits on an fsync. An alert goes to every destination
from memory as soon as the engine makes it; durability proceeds in parallel." Target: with
every fsync in state_dir stalled for 5 s, log line -> Discord stand-in p99 under 100 ms,
and `monitorctl alerts --follow` shows it as fast.

Method:
- state_dir is a FUSE pass-through (`tests/support/faultfs.rs`, served by the example
  binary `crates/monitor/examples/faultfs.rs`, release build) over a folder on a real disk
  (--folder, default /var/tmp); the faults are set at run time through its stdin. Needs
  /dev/fuse and root (or fusermount3).
- The release monitord has one log check per sample (a log check alerts once, then stays
  CRITICAL): check `h17` matches `MARK-h17;`, never expiring; and one Discord destination
  (`webhook_url: http://127.0.0.1:PORT/api/webhooks/1/token`) on an HTTP server here that
  answers 204 at once, sends no rate-limit headers (so the client never waits on a bucket)
  and notes the time each request arrived and the checks of its embeds.
  `monitorctl alerts --follow --json` runs alongside; a reader thread here notes the time
  each of its lines arrives.
- One sample: the time just before the write() of the line `... ERROR crash MARK-h17;`
  (O_APPEND), then the time the stand-in got the embed for `log h17`, and the time the
  follower printed that alert. Samples are paced: the next line is written --interval
  (default 0.1 s) after the one before, or once both arrived (or --timeout passed) if that
  is later; so 100 samples span 10 s, two 5 s stalls in a row of the persist thread.
  Times are the wall clock of this machine, read in this process.
- One warm-up alert first (not counted): the HTTP connection is open and the follower is
  live before the first sample.
- Cases, in this order:
  - healthy: the agent on the pass-through, no fault (--samples, default 100);
  - stalled: the same agent, after `stall 5s` (--stall): every fsync and fsyncdir in
    state_dir waits 5 s then succeeds (--samples). The file system's counters say how many
    fsyncs reached the backing folder and how many were waiting at the end of the case.
  - before (--baseline-monitord PATH, e.g. the release monitord of commit 09a5579, whose
    alerts waited on fsyncs): a fresh agent on a fresh mount, started healthy, then the
    same stall, --baseline-samples (default 5, each takes seconds) with a longer timeout.
  Before the agent stops the stall is healed, so its shutdown does not wait.
All the processes share the machine; p99 of 100 samples is the second-highest.

Usage: bench/stalled_disk_latency.py [--samples 100] [--interval 0.1] [--stall 5s] [--folder /var/tmp]
       [--baseline-monitord PATH [--baseline-label 09a5579] [--baseline-samples 5]] [--no-build]
Prints a table; writes bench/results/stalled_disk_latency.json.
"""

import argparse
import http.server
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import ROOT, build, machine_info, percentile

TARGET_MS = 100
MARK = re.compile(r"MARK-(\w+);")


class Arrivals:
    """Marks seen by a reader, with the wall-clock time (ns) each was first seen."""

    def __init__(self):
        self.first_seen = {}
        self.changed = threading.Condition()

    def saw(self, at, mark):
        with self.changed:
            self.first_seen.setdefault(mark, at)
            self.changed.notify_all()

    def wait_for(self, marks, deadline):
        """True once every mark in `marks` was seen, False at the deadline (monotonic)."""
        with self.changed:
            while not all(mark in self.first_seen for mark in marks):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
            return True


class DiscordStandIn:
    """An HTTP server on 127.0.0.1 that takes webhook posts: 204 at once, no rate-limit
    headers; notes the arrival of each embed by the mark of its check (`log h17` -> h17)."""

    def __init__(self):
        self.arrivals = Arrivals()
        self.requests = 0
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Discord

            def do_POST(self):
                at = time.time_ns()
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()
                stand_in.requests += 1
                try:
                    embeds = json.loads(body).get("embeds", [])
                except ValueError:
                    embeds = []
                for embed in embeds:
                    for field in embed.get("fields", []):
                        if field.get("name") == "Check" and field.get("value", "").startswith("log "):
                            stand_in.arrivals.saw(at, field["value"][len("log "):])

            def log_message(self, *arguments):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.webhook_url = f"http://127.0.0.1:{self.server.server_address[1]}/api/webhooks/1/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


class Follower(threading.Thread):
    """`monitorctl alerts --follow --json`: notes when each alert's line arrived, by mark."""

    def __init__(self, monitorctl, env):
        super().__init__(daemon=True)
        self.arrivals = Arrivals()
        self.process = subprocess.Popen([monitorctl, "alerts", "--follow", "--json"], env=env,
                                        stdout=subprocess.PIPE, text=True, bufsize=1)
        self.start()

    def run(self):
        for line in self.process.stdout:
            at = time.time_ns()
            try:
                record = json.loads(line)
                data = record["subject"]["details"]["line_matching"]["data"]
            except (ValueError, KeyError, TypeError):
                continue
            found = MARK.search(data)
            if found and record.get("level") == "CRITICAL":
                self.arrivals.saw(at, found[1])

    def stop(self):
        self.process.terminate()
        self.process.wait()


class FaultFsMount:
    """The faultfs example serving `backing` on `mountpoint`; `command()` talks to it."""

    def __init__(self, binary, backing, mountpoint):
        self.mountpoint = mountpoint
        self.process = subprocess.Popen([binary, str(backing), str(mountpoint)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, bufsize=1)
        first = self.process.stdout.readline()
        if not first.startswith("mounted "):
            self.process.wait()
            raise SystemExit(f"faultfs did not mount {mountpoint} (exit {self.process.returncode}): it needs "
                             "/dev/fuse, and root or fusermount3")

    def command(self, line):
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().strip()
        if answer.startswith("error") or not answer:
            raise SystemExit(f"faultfs: `{line}`: {answer or 'no answer'}")
        return answer

    def counters(self):
        answer = self.command("counters")
        return {key: int(value) for key, value in (part.split("=") for part in answer.split()[1:])}

    def unmount(self):
        if self.process.poll() is None:
            try:
                self.process.stdin.close()  # the end of stdin: heal and unmount
            except OSError:
                pass
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                self.process.wait()
        # Left mounted only if the server died; detach it then.
        if os.path.ismount(self.mountpoint):
            subprocess.run(["umount", "--lazy", str(self.mountpoint)], check=False)


class Agent:
    """A monitord with its state folder on faultfs, a log check per mark, Discord, a follower."""

    def __init__(self, monitord, monitorctl, faultfs, work, discord, marks):
        self.monitorctl = monitorctl
        self.work = work
        for folder in ("config", "run", "logs", "state", "state-backing"):
            (work / folder).mkdir(parents=True)
        self.log = work / "logs/app.log"
        self.log.touch()
        (work / "config/monitor.yaml").write_text(
            f"delivery:\n  discord:\n    - webhook_url: {discord.webhook_url}\n")
        self.env = dict(os.environ, MONITOR_DEFAULT_CHECKS="false", MONITOR_CONFIG_DIR=str(work / "config"), MONITOR_STATE_DIR=str(work / "state"),
                        MONITOR_RUNTIME_DIR=str(work / "run"), RUST_LOG="warn")
        for mark in marks:
            for command in (["create", "log", mark, f"MARK-{mark};", str(self.log), "never"],
                            ["enable", "log", mark]):
                subprocess.run([monitorctl, *command], env=self.env, check=True, capture_output=True)
        self.discord = discord
        self.mount = self.agent = self.follower = self.stderr = self.descriptor = None
        self.binaries = monitord, faultfs

    def start(self):
        """Mount, start the agent and the follower; `stop()` undoes what was done, also after
        a failure half-way."""
        monitord, faultfs = self.binaries
        self.mount = FaultFsMount(faultfs, self.work / "state-backing", self.work / "state")
        self.stderr = open(self.work / "monitord.stderr", "w")
        self.agent = subprocess.Popen([monitord], env=self.env, stderr=self.stderr, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while subprocess.run([self.monitorctl, "status"], env=self.env, capture_output=True).returncode != 0:
            if self.agent.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"monitord did not become ready: {self.stderr_tail()}")
            time.sleep(0.02)
        self.follower = Follower(self.monitorctl, self.env)
        self.descriptor = os.open(self.log, os.O_WRONLY | os.O_APPEND)

    def stderr_tail(self):
        self.stderr.flush()
        return (self.work / "monitord.stderr").read_text()[-2000:]

    def sample(self, mark, timeout):
        """(ms to Discord, ms to the follower) for one line; None for what did not arrive."""
        written = time.time_ns()
        os.write(self.descriptor, f"Dec 01 10:00:00 edge-gw-07 app[4242]: ERROR crash MARK-{mark};\n".encode())
        deadline = time.monotonic() + timeout
        self.discord.arrivals.wait_for([mark], deadline)
        self.follower.arrivals.wait_for([mark], deadline)
        took = []
        for arrivals in (self.discord.arrivals, self.follower.arrivals):
            at = arrivals.first_seen.get(mark)
            took.append((at - written) / 1e6 if at is not None else None)
        return took

    def stop(self):
        """Heal (nothing waits on a stall), stop the follower and the agent, unmount."""
        if self.mount and self.mount.process.poll() is None:
            try:
                self.mount.command("heal")
            except (OSError, SystemExit):
                pass
        if self.follower:
            self.follower.stop()
        if self.agent and self.agent.poll() is None:
            self.agent.send_signal(signal.SIGTERM)
            try:
                self.agent.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.agent.kill()
                self.agent.wait()
        if self.descriptor is not None:
            os.close(self.descriptor)
        if self.mount:
            self.mount.unmount()
        if self.stderr:
            self.stderr.close()


def run_case(agent, name, marks, timeout, interval):
    print(f"{name}: {len(marks)} samples ...", file=sys.stderr)
    to_discord, to_follower, missed = [], [], 0
    started = time.monotonic()
    for index, mark in enumerate(marks):
        # Paced: the samples of a case spread over several stalled fsyncs, not within the first.
        time.sleep(max(0.0, started + index * interval - time.monotonic()))
        discord, follower = agent.sample(mark, timeout)
        if discord is None or follower is None:
            missed += 1
            print(f"  {mark}: not seen within {timeout:g} s (Discord {discord}, follower {follower})",
                  file=sys.stderr)
        if discord is not None:
            to_discord.append(discord)
        if follower is not None:
            to_follower.append(follower)
    return {"case": name, "samples": len(marks), "missed": missed, "seconds": time.monotonic() - started,
            "to_discord_ms": to_discord, "to_follower_ms": to_follower}


def measure(monitord, monitorctl, faultfs, work, discord, cases, stall, timeout, interval):
    """One agent: a warm-up, then each (name, prefix, samples, stalled) case in turn."""
    marks = {name: [f"{prefix}{index}" for index in range(samples)] for name, prefix, samples, _ in cases}
    warmup = f"{cases[0][1]}warmup"
    agent = Agent(monitord, monitorctl, faultfs, work, discord,
                  [warmup] + [mark for names in marks.values() for mark in names])
    results = []
    try:
        agent.start()
        if None in agent.sample(warmup, 30):
            raise SystemExit(f"the warm-up alert did not arrive: {agent.stderr_tail()}")
        for name, _, _, stalled in cases:
            if stalled:
                agent.mount.command(f"stall {stall}")
            before = agent.mount.counters()
            result = run_case(agent, name, marks[name], timeout, interval)
            after = agent.mount.counters()
            result["stalled"] = stall if stalled else None
            result["faultfs"] = {"fsyncs": after["fsyncs"] - before["fsyncs"],
                                 "fsyncdirs": after["fsyncdirs"] - before["fsyncdirs"],
                                 "waiting_at_end": after["stalled_now"]}
            results.append(result)
    finally:
        agent.stop()
    return results


def summary(values):
    if not values:
        return {"seen": 0}
    return {"seen": len(values), "p50": statistics.median(values), "p99": percentile(values, 0.99),
            "min": min(values), "max": max(values)}


def build_faultfs(skip):
    if not skip:
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet", "-p", "monitor", "--example", "faultfs"],
                       cwd=ROOT, check=True)
    target = Path(json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT,
                                            capture_output=True, text=True, check=True).stdout)["target_directory"])
    binary = target / "release/examples/faultfs"
    if not binary.exists():
        raise SystemExit(f"{binary} is missing: cargo build --release -p monitor --example faultfs")
    return str(binary)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=100, help="alerts per case (default 100)")
    parser.add_argument("--stall", default="5s", help="how long every fsync waits when stalled (default 5s)")
    parser.add_argument("--interval", type=float, default=0.1,
                        help="seconds from one sample's line to the next at the least (default 0.1)")
    parser.add_argument("--timeout", type=float, default=10, help="seconds to wait for one alert (default 10)")
    parser.add_argument("--folder", default="/var/tmp", help="where the backing folder goes (default /var/tmp)")
    parser.add_argument("--baseline-monitord", help="another monitord (commit 09a5579) to measure stalled too")
    parser.add_argument("--baseline-label", default="09a5579", help="what the baseline is (default 09a5579)")
    parser.add_argument("--baseline-samples", type=int, default=5, help="alerts for the baseline (default 5)")
    parser.add_argument("--baseline-timeout", type=float, default=120,
                        help="seconds to wait for one baseline alert (default 120)")
    parser.add_argument("--no-build", action="store_true", help="use the release binaries as they are")
    arguments = parser.parse_args()
    monitord, monitorctl = build(arguments.no_build)
    faultfs = build_faultfs(arguments.no_build)

    results = {"machine": machine_info(), "samples": arguments.samples, "stall": arguments.stall,
               "interval": arguments.interval,
               "folder": arguments.folder, "target_ms": TARGET_MS, "cases": []}
    discord = DiscordStandIn()
    work = Path(tempfile.mkdtemp(prefix="monitor-bench-stalled-", dir=arguments.folder))
    try:
        cases = [("healthy (faultfs, no fault)", "h", arguments.samples, False),
                 (f"every fsync stalled {arguments.stall}", "s", arguments.samples, True)]
        results["cases"] += measure(monitord, monitorctl, faultfs, work / "current", discord, cases,
                                    arguments.stall, arguments.timeout, arguments.interval)
        if arguments.baseline_monitord:
            label = f"before ({arguments.baseline_label}), every fsync stalled {arguments.stall}"
            baseline = measure(arguments.baseline_monitord, monitorctl, faultfs, work / "baseline", discord,
                               [(label, "b", arguments.baseline_samples, True)], arguments.stall,
                               arguments.baseline_timeout, arguments.interval)
            baseline[0]["binary"] = arguments.baseline_monitord
            results["cases"] += baseline
    finally:
        discord.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"Alert latency, write() of a matching line -> Discord stand-in / `monitorctl alerts --follow`, "
          f"state_dir on faultfs over {arguments.folder}, milliseconds")
    print(f"{'case':46} {'samples':>7} {'missed':>6} | {'Discord p50':>11} {'p99':>8} {'max':>8} | "
          f"{'follow p50':>10} {'p99':>8} {'max':>8} | {'fsyncs':>6} {'waiting':>7}")
    for case in results["cases"]:
        case["discord"] = summary(case["to_discord_ms"])
        case["follower"] = summary(case["to_follower_ms"])

        def figures(stats, width):
            if not stats["seen"]:
                return f"{'-':>{width}} {'-':>8} {'-':>8}"
            return f"{stats['p50']:>{width}.1f} {stats['p99']:>8.1f} {stats['max']:>8.1f}"

        synced = case["faultfs"]["fsyncs"] + case["faultfs"]["fsyncdirs"]
        print(f"{case['case']:46} {case['samples']:>7} {case['missed']:>6} | {figures(case['discord'], 11)} | "
              f"{figures(case['follower'], 10)} | {synced:>6} {case['faultfs']['waiting_at_end']:>7}")
    print("fsyncs: fsyncs and fsyncdirs that reached the backing folder during the case; waiting: fsyncs "
          "stalled at its end")
    stalled = results["cases"][1]
    worst = max(stalled["discord"].get("p99", float("inf")), stalled["follower"].get("p99", float("inf")))
    met = stalled["missed"] == 0 and worst < TARGET_MS
    results["target_met"] = met
    print(f"target: with every fsync stalled {arguments.stall}, p99 under {TARGET_MS} ms to Discord and to the "
          f"follower; here {stalled['discord'].get('p99', float('nan')):.1f} and "
          f"{stalled['follower'].get('p99', float('nan')):.1f} ms ({'met' if met else 'NOT met'})")
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "stalled_disk_latency.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
