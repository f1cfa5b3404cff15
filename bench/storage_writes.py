#!/usr/bin/env python3
"""State folder writes: what monitord writes to state_dir (fsyncs, renames, bytes) while a
watched log grows at 10 lines/s and matches nothing, and what one alert costs; per day.

The SD-card wear question of issue 14: offsets that made no alert are saved at most once
per `checkpoint_interval` (default 5m), with one fsync; an alert saves at once
(checkpoint, history, outbox: full durability). Target: under 1 MB and 500 fsyncs a day
in state_dir with the default interval and a log that matches nothing.

Method:
- Two log checks (patterns `STORAGE-BENCH-MATCH` and `-SLOW`, not in the lines) on a file
  outside state_dir; state_dir on a real disk folder (--folder, default /var/tmp: not a
  tmpfs, whose fsyncs cost nothing and say nothing). A backend destination (`auth: token`)
  points at an HTTP server here that answers 204, so that an alert costs what it costs
  on a device that delivers: the outbox, then the destination's progress once taken.
- monitord runs under `strace -ff -qq -ttt -y -e trace=fsync,fdatasync,rename,renameat,
  renameat2,write,writev,pwrite64,openat` (every thread; `-y` names the file of each fd),
  from its exec to its exit. Only the calls on files in state_dir (or state_dir itself: a
  folder fsync) are counted: fsyncs (fsync + fdatasync), renames, bytes written (the
  return values of write/writev/pwrite64), opens. Calls are put in buckets by their
  timestamp: start (exec to the measured window), the window(s), shutdown (from SIGTERM
  to exit: the final checkpoint, reported on its own line, not in any per-day figure).
  /proc/<pid>/io `write_bytes` over the window is reported too: the bytes the agent sent
  to the block layer (page-sized: a small file rewrite dirties a whole 4 KiB page; the
  filesystem's journal is not in it).
- A writer thread here appends one ~90-byte line every 100 ms (--rate 10) from before the
  window until the agent stops.
- Case A: `checkpoint_interval: 10s` (--interval), --seconds window (default 60): the
  writes per checkpoint (a checkpoint = a rename onto checkpoint.json), extrapolated to a
  day at the default 5 minutes (288 checkpoints) and at 10 s (8,640).
- Case B: the default interval (no key: 5m), same window: no write is expected.
- Case C: in case B's agent after its window, one matching line: everything written in
  state_dir from that write() until 2 s after the backend answered (the outbox progress
  is written after it). Twice, with a check each (a log check alerts once, then stays
  CRITICAL): the backend answering at once, then after 1 s (a slow link). An alert the
  backend has taken before the persist thread gets to the outbox is not written to the
  outbox's records file at all; a slower answer adds that append and its fdatasync.
- Baseline (--baseline-monitord PATH, e.g. the release monitord of commit 09a5579, which
  checkpointed as it read): cases B then C run with that binary, in the same run. Without
  it, the issue's figures for that commit (164,000 fsyncs, 80,000 renames, ~47 MB a day
  at ~9 lines/s, extrapolated from 30 s under strace) are printed, labelled as such.
  To build it: `git worktree add /work/wt/oldmon 09a5579` and, there,
  `CARGO_TARGET_DIR=<its own> cargo build --release -p monitor --bin monitord`.
strace slows every traced syscall; the counts do not depend on it.

Usage: bench/storage_writes.py [--seconds 60] [--interval 10s] [--rate 10] [--folder /var/tmp]
       [--baseline-monitord PATH [--baseline-label 09a5579]] [--no-build]
Prints a table; writes bench/results/storage_writes.json.
"""

import argparse
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import ROOT, build, machine_info

DAY = 86400
SYSCALLS = "fsync,fdatasync,rename,renameat,renameat2,write,writev,pwrite64,openat"
FD_CALLS = {"fsync", "fdatasync", "write", "writev", "pwrite64"}
# Two checks on the file: each alerts once (then stays CRITICAL), so each alert case has its own.
PATTERNS = {"fast": "STORAGE-BENCH-MATCH", "slow": "STORAGE-BENCH-SLOW"}
SLOW_BACKEND_SECONDS = 1.0
ISSUE_BEFORE = {"commit": "09a5579", "lines_per_second": 9, "fsyncs_per_day": 164_000,
                "renames_per_day": 80_000, "bytes_per_day": 47_000_000,
                "how": "issue 14: extrapolated from 30 s under strace, not measured in this run"}


# --- What the agent does to state_dir, from strace ---------------------------------------

def parse_trace(folder, state_dir):
    """[(time, syscall, path, result)] for the calls on state_dir, from strace -ff files."""
    inside = str(state_dir)
    calls = []
    for trace in Path(folder).iterdir():
        for line in trace.read_text(errors="replace").splitlines():
            match = re.match(r"^(\d+\.\d+) (\w+)\((.*)\) += (-?\d+)", line)
            if not match:
                continue  # a signal, an exit, or a call strace could not finish
            stamp, name, arguments, result = float(match[1]), match[2], match[3], int(match[4])
            if name in FD_CALLS:
                descriptor = re.match(r"\d+<([^>]*)>", arguments)
                paths = [descriptor[1]] if descriptor else []
            else:
                # openat and the renames: the quoted paths, relative ones joined to their dirfd.
                folders = re.findall(r"(?:AT_FDCWD|\d+)<([^>]*)>", arguments)
                paths = [name if name.startswith("/") else os.path.join(folders[0] if folders else "", name)
                         for name in re.findall(r'"([^"]*)"', arguments)]
            touched = [path for path in paths if path == inside or path.startswith(inside + "/")]
            if touched:
                calls.append((stamp, name, touched[-1][len(inside):].lstrip("/") or ".", result))
    return sorted(calls)


def tally(calls, start, end):
    """fsyncs, renames, bytes written, write calls and opens between `start` and `end`, and
    the bytes and fsyncs per file."""
    total = {"fsyncs": 0, "renames": 0, "bytes": 0, "writes": 0, "opens": 0, "checkpoints": 0, "per_file": {}}
    for stamp, name, path, result in calls:
        if not start <= stamp < end or result < 0:
            continue
        # Temporary files are named after the file they replace: group them with it.
        key = re.sub(r"\.tmp[^/]*$", "", path)
        per_file = total["per_file"].setdefault(key, {"fsyncs": 0, "renames": 0, "bytes": 0})
        if name in ("fsync", "fdatasync"):
            total["fsyncs"] += 1
            per_file["fsyncs"] += 1
        elif name.startswith("rename"):
            total["renames"] += 1
            per_file["renames"] += 1
            if path == "checkpoint.json":
                total["checkpoints"] += 1
        elif name == "openat":
            total["opens"] += 1
        else:
            total["writes"] += 1
            total["bytes"] += result
            per_file["bytes"] += result
    return total


def io_write_bytes(pid):
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


# --- The world around the agent -----------------------------------------------------------

class Backend:
    """An HTTP server on 127.0.0.1 that answers 204 to every POST and notes when alerts come."""

    def __init__(self):
        self.alert_posts = []
        self.delay = 0.0
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path.endswith("/alert"):
                    backend.alert_posts.append(time.time())
                    time.sleep(backend.delay)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *arguments):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


class Writer:
    """Appends one log line every 1/rate s to `path`, paced on the clock; `match(pattern)`
    makes the next line one that contains `pattern` and returns the time just before its
    write()."""

    def __init__(self, path, rate):
        self.path, self.rate = path, rate
        self.lines = 0
        self.stopping = threading.Event()
        self.matching = None
        self.matched_at = None
        self.matched = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        started = time.monotonic()
        while not self.stopping.is_set():
            self.lines += 1
            pattern, self.matching = self.matching, None
            if pattern:
                line = f"Nov 22 00:21:21 edge-gw-07 app[4242]: ERROR {pattern} id={self.lines:010d}\n"
                self.matched_at = time.time()
                os.write(descriptor, line.encode())
                self.matched.set()
            else:
                os.write(descriptor, f"Nov 22 00:21:21 edge-gw-07 app[4242]: INFO request served "
                                     f"id={self.lines:010d} in 3ms status=200\n".encode())
            wake_at = started + self.lines / self.rate
            self.stopping.wait(max(0.0, wake_at - time.monotonic()))
        os.close(descriptor)

    def match(self, pattern):
        self.matched.clear()
        self.matching = pattern
        self.matched.wait(timeout=10)
        return self.matched_at

    def stop(self):
        self.stopping.set()
        self.thread.join()


def prepare(work, monitorctl, backend, interval):
    """A sandbox (config, state, run, logs) with the log checks; returns its environment."""
    for folder in ("config", "state", "run", "logs"):
        (work / folder).mkdir(parents=True)
    log = work / "logs/app.log"
    log.touch()
    settings = f"checkpoint_interval: {interval}\n" if interval else ""
    settings += (f"delivery:\n  backend:\n    auth: token\n    url: {backend.url}\n"
                 f"    token_env: MONITOR_BENCH_TOKEN\n")
    (work / "config/monitor.yaml").write_text(settings)
    env = dict(os.environ, MONITOR_DEFAULT_CHECKS="false", MONITOR_CONFIG_DIR=str(work / "config"), MONITOR_STATE_DIR=str(work / "state"),
               MONITOR_RUNTIME_DIR=str(work / "run"), MONITOR_BENCH_TOKEN="bench", RUST_LOG="warn")
    for name, pattern in PATTERNS.items():
        for command in (["create", "log", f"app-{name}", pattern, str(log), "5m"], ["enable", "log", f"app-{name}"]):
            subprocess.run([monitorctl, *command], env=env, check=True, capture_output=True)
    return env, log


def run_agent(monitord, monitorctl, work, backend, interval, arguments, alert):
    """One agent under strace: the window, then (with `alert`) one matching line; SIGTERM."""
    env, log = prepare(work, monitorctl, backend, interval)
    traces = work / "trace"
    traces.mkdir()
    started = time.time()
    tracer = subprocess.Popen(["strace", "-ff", "-qq", "-ttt", "-y", "-e", f"trace={SYSCALLS}",
                               "-o", str(traces / "t"), "--", monitord], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    writer = None
    marks = {"exec": started}
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([monitorctl, "status"], env=env, capture_output=True).returncode != 0:
            if tracer.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("monitord did not become ready under strace")
            time.sleep(0.05)
        agent = int(Path(f"/proc/{tracer.pid}/task/{tracer.pid}/children").read_text().split()[0])
        writer = Writer(log, arguments.rate)
        time.sleep(arguments.settle)  # the start's own writes and the first lines are behind us
        io_before = io_write_bytes(agent)
        marks["window"] = time.time()
        time.sleep(arguments.seconds)
        marks["window_end"] = time.time()
        io_window = io_write_bytes(agent) - io_before
        if alert:
            for name, pattern in PATTERNS.items():
                backend.delay = SLOW_BACKEND_SECONDS if name == "slow" else 0.0
                posts = len(backend.alert_posts)
                marks[f"alert_{name}"] = writer.match(pattern)
                while len(backend.alert_posts) == posts:
                    if time.monotonic() > deadline + arguments.seconds + 60:
                        raise SystemExit("the backend got no alert")
                    time.sleep(0.01)
                marks[f"alert_{name}_delivered"] = backend.alert_posts[-1]
                # The destination's progress is written after the answer.
                time.sleep(backend.delay + 2)
                marks[f"alert_{name}_end"] = time.time()
            backend.delay = 0.0
        lines = writer.lines
        marks["sigterm"] = time.time()
        os.kill(agent, signal.SIGTERM)
        tracer.wait(timeout=60)
        marks["exit"] = time.time()
    finally:
        if writer:
            writer.stop()
        if tracer.poll() is None:
            tracer.kill()
            tracer.wait()
    calls = parse_trace(traces, work / "state")
    result = {"interval": interval or "5m (default)", "lines_written": lines, "marks": marks,
              "start": tally(calls, marks["exec"], marks["window"]),
              "window": tally(calls, marks["window"], marks["window_end"]),
              "window_seconds": marks["window_end"] - marks["window"],
              "window_io_write_bytes": io_window,
              "shutdown": tally(calls, marks["sigterm"], marks["exit"] + 1)}
    if alert:
        for name in PATTERNS:
            result[f"alert_{name}"] = tally(calls, marks[f"alert_{name}"], marks[f"alert_{name}_end"])
            result[f"alert_{name}_posted_ms"] = 1000 * (marks[f"alert_{name}_delivered"] - marks[f"alert_{name}"])
        # Anything outside the buckets (between the window and the first alert) is kept too.
        result["between"] = tally(calls, marks["window_end"], marks["alert_fast"])
    shutil.rmtree(traces)
    return result


def per_day(sample, seconds):
    return {key: sample[key] * DAY / seconds for key in ("fsyncs", "renames", "bytes")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="measured window of each case (default 60)")
    parser.add_argument("--interval", default="10s", help="checkpoint_interval of case A (default 10s)")
    parser.add_argument("--rate", type=float, default=10, help="lines/s written to the log (default 10)")
    parser.add_argument("--settle", type=float, default=2, help="seconds after ready before the window (default 2)")
    parser.add_argument("--folder", default="/var/tmp", help="where state_dir goes (a real disk; default /var/tmp)")
    parser.add_argument("--baseline-monitord", help="another monitord (commit 09a5579) to measure in the same run")
    parser.add_argument("--baseline-label", default="09a5579", help="what the baseline is (default 09a5579)")
    parser.add_argument("--no-build", action="store_true", help="use the release binaries as they are")
    arguments = parser.parse_args()
    if not shutil.which("strace"):
        raise SystemExit("strace is needed: apt-get install strace")
    monitord, monitorctl = build(arguments.no_build)
    filesystem = subprocess.run(["stat", "-f", "-c", "%T", arguments.folder], capture_output=True,
                                text=True).stdout.strip()
    if filesystem == "tmpfs":
        print(f"warning: {arguments.folder} is a tmpfs; pass --folder on a real disk", file=sys.stderr)
    interval_seconds = parse_duration(arguments.interval)

    results = {"machine": machine_info(), "seconds": arguments.seconds, "rate": arguments.rate,
               "folder": arguments.folder, "filesystem": filesystem, "interval": arguments.interval,
               "interval_seconds": interval_seconds, "issue_before": ISSUE_BEFORE}
    backend = Backend()
    work = Path(tempfile.mkdtemp(prefix="monitor-bench-storage-", dir=arguments.folder))
    try:
        print(f"case A: checkpoint_interval {arguments.interval}, {arguments.seconds:g} s ...", file=sys.stderr)
        results["a"] = run_agent(monitord, monitorctl, work / "a", backend, arguments.interval, arguments, False)
        print(f"cases B and C: default interval, {arguments.seconds:g} s, then one alert ...", file=sys.stderr)
        results["b"] = run_agent(monitord, monitorctl, work / "b", backend, None, arguments, True)
        if arguments.baseline_monitord:
            print(f"baseline {arguments.baseline_monitord} ({arguments.baseline_label}): "
                  f"{arguments.seconds:g} s, then one alert ...", file=sys.stderr)
            results["baseline"] = run_agent(arguments.baseline_monitord, monitorctl, work / "baseline", backend,
                                            None, arguments, True)
            results["baseline"]["binary"] = arguments.baseline_monitord
            results["baseline"]["label"] = arguments.baseline_label
    finally:
        backend.stop()
        shutil.rmtree(work, ignore_errors=True)

    report(results)
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "storage_writes.json").write_text(json.dumps(results, indent=2) + "\n")


def parse_duration(text):
    units = {"s": 1, "m": 60, "h": 3600, "d": DAY}
    return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)


def report(results):
    a, b = results["a"], results["b"]
    rate, interval = results["rate"], results["interval_seconds"]
    baseline = results.get("baseline")
    before = f"before ({baseline['label']})" if baseline else None
    print(f"Writes to state_dir ({results['folder']}, {results['filesystem']}), a log growing at {rate:g} lines/s "
          f"that match nothing; strace on every thread")
    print(f"{'case':56} {'seconds':>7} {'ckpts':>5} {'fsyncs':>6} {'renames':>7} {'writes':>6} {'bytes':>7} "
          f"{'opens':>5} {'io write_bytes':>14}")

    def row(name, sample, seconds=None, io=None):
        print(f"{name:56} {seconds if seconds is not None else '-':>7} {sample['checkpoints']:>5} "
              f"{sample['fsyncs']:>6} {sample['renames']:>7} {sample['writes']:>6} {sample['bytes']:>7} "
              f"{sample['opens']:>5} {io if io is not None else '-':>14}")

    row(f"A  checkpoint_interval {results['interval']}: window", a["window"], f"{a['window_seconds']:.1f}",
        a["window_io_write_bytes"])
    row("B  default interval (5m): window", b["window"], f"{b['window_seconds']:.1f}", b["window_io_write_bytes"])
    row("C  one alert, backend answers at once", b["alert_fast"])
    row(f"C' one alert, backend answers after {SLOW_BACKEND_SECONDS:g} s", b["alert_slow"])
    if baseline:
        row(f"{before}: window", baseline["window"], f"{baseline['window_seconds']:.1f}",
            baseline["window_io_write_bytes"])
        row(f"{before}: one alert, at once", baseline["alert_fast"])
        row(f"{before}: one alert, after {SLOW_BACKEND_SECONDS:g} s", baseline["alert_slow"])
    for name, sample in (("A", a), ("B", b), (before, baseline)):
        if sample:
            row(f"{name}: start, exec to window (not counted)", sample["start"])
            row(f"{name}: shutdown, SIGTERM to exit (not counted)", sample["shutdown"])

    window = a["window"]
    each = {key: window[key] / max(window["checkpoints"], 1) for key in ("fsyncs", "renames", "bytes")}
    pages = a["window_io_write_bytes"] / max(window["checkpoints"], 1)
    print(f"per checkpoint (case A, {window['checkpoints']} in {a['window_seconds']:.0f} s): "
          f"{each['fsyncs']:.1f} fsyncs, {each['renames']:.1f} renames, {each['bytes']:.0f} bytes written "
          f"({pages:,.0f} bytes of dirtied pages, /proc io write_bytes; x 288 = {pages * 288 / 1e6:.2f} MB a day)")
    for name in PATTERNS:
        print(f"alert ({name} backend): posted {b[f'alert_{name}_posted_ms']:.0f} ms after the write; by file: " +
              ", ".join(f"{path} {figures['bytes']} B {figures['fsyncs']} fsyncs {figures['renames']} renames"
                        for path, figures in sorted(b[f"alert_{name}"]["per_file"].items())))

    print(f"{'per day, log matching nothing':56} {'fsyncs':>10} {'renames':>10} {'bytes':>12}")

    def day_row(name, figures):
        print(f"{name:56} {figures['fsyncs']:>10,.0f} {figures['renames']:>10,.0f} {figures['bytes']:>12,.0f}")

    default_day = {key: value * DAY / 300 for key, value in each.items()}
    results["per_day"] = {
        "default_5m": default_day,
        "default_5m_io_write_bytes": pages * DAY / 300,
        "interval": {key: value * DAY / interval for key, value in each.items()},
        "a_window_extrapolated": per_day(window, a["window_seconds"]),
        "b_window_extrapolated": per_day(b["window"], b["window_seconds"]),
    }
    day_row("default 5m: 288 x case A's per checkpoint", default_day)
    day_row(f"checkpoint_interval {results['interval']}: {DAY / interval:,.0f} x per checkpoint",
            results["per_day"]["interval"])
    day_row(f"case A window x {DAY / a['window_seconds']:,.0f}", results["per_day"]["a_window_extrapolated"])
    day_row(f"case B window x {DAY / b['window_seconds']:,.0f}", results["per_day"]["b_window_extrapolated"])
    if baseline:
        results["per_day"]["baseline"] = per_day(baseline["window"], baseline["window_seconds"])
        day_row(f"{before} window x {DAY / baseline['window_seconds']:,.0f}", results["per_day"]["baseline"])
    issue = ISSUE_BEFORE
    print(f"{'before (09a5579) per issue 14, ~9 lines/s, NOT this run':56} {issue['fsyncs_per_day']:>10,} "
          f"{issue['renames_per_day']:>10,} {issue['bytes_per_day']:>12,}")
    met = default_day["bytes"] < 1_000_000 and default_day["fsyncs"] < 500
    print(f"target with the default interval, under 1 MB and 500 fsyncs a day: {default_day['bytes'] / 1e6:.3f} MB "
          f"and {default_day['fsyncs']:.0f} fsyncs: {'met' if met else 'NOT met'} (case B: {b['window']['fsyncs']} "
          f"fsyncs, {b['window']['bytes']} bytes in {b['window_seconds']:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
