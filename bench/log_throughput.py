#!/usr/bin/env python3
"""Log scanning throughput: monitord catching up on a large log from offset 0, next to
`grep -c -E` (and `rg -c`, when it can be installed) on the same file.

Method:
- A syslog-like log of about --mb MB (decimal megabytes) is generated once into a temp
  folder: realistic lines (sshd, systemd, kernel, nginx, cron, dhcp, an app), a handful of
  planted matches (5 ERROR lines, one line for each of the nine other patterns), and a last
  line `BENCH-END`. The file is read once before any timing, so every reader reads it from
  the page cache.
- "one pattern" is the check `ERROR`; "ten patterns" adds nine typical alert patterns
  (segfault, OOM killer, I/O error, failed logins, ...). The agent also needs a check on
  `^BENCH-END$` to see the end; grep and rg are given only the real 1 (or 10) patterns, so
  the agent does a little more work than they do.
- monitord: the checks are enabled on a path that does not exist yet, the agent is started
  and waited for (`monitorctl status` answers), then the file is renamed into that path.
  A file that appears after its checks are enabled is read from its start, so the agent
  reads all of it. Scan time = the BENCH-END alert's timestamp (made by the engine when it
  saw the line; millisecond resolution) minus the time just before the rename. It includes
  noticing the new file (inotify), reading, splitting into lines, matching every check on
  every line, and the engine making the alerts. The agent's CPU time over the scan comes
  from /proc/<pid>/task/*/schedstat (nanoseconds).
- grep: `LC_ALL=C grep -c -E -e P1 -e P2 ... file` (C locale: grep's fastest mode), timed
  from just before the process starts to its exit. rg likewise (`rg -c --no-config`).
  Both must count the planted lines, or the run stops. Their CPU time is the child's
  rusage (os.wait4).
- Besides MB/s (wall clock), "MB per CPU s" is the file size over the CPU time the reader
  used: on a machine busy with other work, wall-clock speed mostly measures how much CPU
  the scheduler gave each reader, and MB per CPU second is the steadier figure.
- Each reader runs --runs times, interleaved (agent, grep, rg, agent, ...), so all see the
  same machine conditions. Reported: median MB/s, the spread (min..max) and the ratio of the
  medians to grep's. Target of the benchmark issue: the agent at >= 50% of grep's speed.

- --before DIR runs that folder's monitord and monitorctl (another build, e.g. main's) as
  one more reader, interleaved with the others, so a change is measured against what it
  replaces in the same run.

Usage: bench/log_throughput.py [--mb 300] [--runs 3] [--no-build] [--keep-file] [--before DIR]
Prints a table; writes bench/results/log_throughput.json.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from common import ROOT, build, cpu_seconds, machine_info


# The first one is the "one pattern" case. Every pattern is valid for grep -E, rg and the
# agent (Rust regex), and matches only the lines planted for it.
PATTERNS = [
    ("error", "ERROR"),
    ("segfault", "segfault at [0-9a-f]+ ip"),
    ("oom", "Out of memory: Killed process [0-9]+"),
    ("io_error", "I/O error, dev sd[a-z]+"),
    ("panic", "Kernel panic - not syncing"),
    ("auth_root", "authentication failure;.*user=root"),
    ("bad_password", "Failed password for (invalid user )?[a-z]+"),
    ("link_down", "Link is Down|link is not ready"),
    ("lockup", "watchdog: BUG: soft lockup"),
    ("disk_full", "No space left on device"),
]
END_CHECK = ("end", "^BENCH-END$")
ERROR_LINES = 5

# Lines planted at even intervals through the file: five ERRORs, one for each other pattern.
PLANTED = (
    ["app[{pid}]: ERROR payment gateway timeout after 30000ms (order {n})"] * ERROR_LINES + [
        "kernel: [{n}.123456] collector[{pid}]: segfault at 7f3a2c ip 00007f3a2c1b4e2a sp 00007ffd9e8 error 4",
        "kernel: [{n}.223344] Out of memory: Killed process {pid} (java) total-vm:4123456kB",
        "kernel: [{n}.334455] blk_update_request: I/O error, dev sdb, sector 123456 op 0x0:(READ)",
        "kernel: [{n}.445566] Kernel panic - not syncing: Fatal exception in interrupt",
        "sshd[{pid}]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.9  user=root",
        "sshd[{pid}]: Failed password for invalid user admin from 203.0.113.9 port 40022 ssh2",
        "kernel: [{n}.556677] e1000e: eth0 NIC Link is Down",
        "kernel: [{n}.667788] watchdog: BUG: soft lockup - CPU#1 stuck for 23s! [kworker/1:2:{pid}]",
        "app[{pid}]: cannot write /var/lib/app/cache/{n}.tmp: No space left on device",
    ])


def find_rg():
    """rg if it is installed or apt can install it (as root); None otherwise."""
    if shutil.which("rg"):
        return shutil.which("rg")
    if os.geteuid() == 0 and shutil.which("apt-get"):
        environment = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        installed = subprocess.run(["apt-get", "install", "-y", "-qq", "ripgrep"], env=environment,
                                   capture_output=True).returncode == 0
        if not installed:  # maybe the package lists are missing
            subprocess.run(["apt-get", "update", "-qq"], env=environment, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "ripgrep"], env=environment, capture_output=True)
    return shutil.which("rg")


def filler_lines(count, seed=7):
    """`count` varied syslog message bodies (after "host "), none matching a pattern."""
    rng = random.Random(seed)
    users = ["deploy", "pi", "ubuntu", "backup", "monitor", "git"]
    paths = ["/", "/api/v1/status", "/api/v1/metrics", "/static/app.js", "/login", "/health", "/api/v2/devices/42"]
    templates = [
        lambda: f"sshd[{rng.randint(300, 65000)}]: Accepted publickey for {rng.choice(users)} from "
                f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)} port {rng.randint(1024, 65535)} ssh2: "
                f"ED25519 SHA256:{rng.getrandbits(128):032x}",
        lambda: f"sshd[{rng.randint(300, 65000)}]: pam_unix(sshd:session): session opened for user "
                f"{rng.choice(users)}(uid={rng.randint(1000, 1010)}) by (uid=0)",
        lambda: f"systemd[1]: Started session-{rng.randint(1, 9999)}.scope - Session {rng.randint(1, 9999)} "
                f"of User {rng.choice(users)}.",
        lambda: f"systemd[1]: {rng.choice(['logrotate', 'apt-daily', 'man-db', 'fstrim'])}.service: "
                f"Deactivated successfully.",
        lambda: f"CRON[{rng.randint(300, 65000)}]: (root) CMD (command -v debian-sa1 > /dev/null && "
                f"debian-sa1 1 1)",
        lambda: f"kernel: [{rng.randint(1, 999999)}.{rng.randint(0, 999999):06d}] usb 1-1.{rng.randint(1, 4)}: "
                f"new high-speed USB device number {rng.randint(2, 30)} using dwc_otg",
        lambda: f"nginx[{rng.randint(300, 65000)}]: 10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)} - - "
                f"\"GET {rng.choice(paths)} HTTP/1.1\" {rng.choice([200, 200, 200, 304, 404])} "
                f"{rng.randint(100, 90000)} \"-\" \"curl/7.88.1\"",
        lambda: f"dhcpcd[{rng.randint(300, 65000)}]: eth0: leased 192.168.1.{rng.randint(2, 254)} for "
                f"86400 seconds",
        lambda: f"app[{rng.randint(300, 65000)}]: INFO request {rng.getrandbits(64):016x} served in "
                f"{rng.randint(1, 900)}ms (status=200, bytes={rng.randint(100, 90000)})",
        lambda: f"app[{rng.randint(300, 65000)}]: DEBUG cache hit ratio 0.{rng.randint(0, 99):02d} over "
                f"{rng.randint(100, 10000)} lookups",
        lambda: f"chronyd[{rng.randint(300, 65000)}]: Selected source 162.159.200.{rng.randint(1, 254)} "
                f"(pool.ntp.org)",
        lambda: f"rngd[{rng.randint(300, 65000)}]: stats: FIPS 140-2 successes: {rng.randint(1, 99999)}",
    ]
    return [rng.choice(templates)() for _ in range(count)]


def generate_log(path, megabytes):
    """Write about `megabytes` MB of syslog lines to `path`; return (bytes, lines)."""
    target = megabytes * 1_000_000
    bodies = filler_lines(65536)
    hosts = ["edge-gw-07"]
    # Where the planted lines go: evenly spread over the file, by byte offset.
    plant_at = [target * (index + 1) // (len(PLANTED) + 1) for index in range(len(PLANTED))]
    start = datetime(2026, 11, 22, 0, 0, 0, tzinfo=timezone.utc).timestamp()
    written = lines = planted = 0
    chunk = []
    chunk_bytes = 0
    with open(path, "w", buffering=1 << 20) as out:
        second = -1
        stamp = ""
        while written + chunk_bytes < target:
            # About 400 lines per second of log time; the stamp only changes once a second.
            if lines // 400 != second:
                second = lines // 400
                stamp = time.strftime("%b %d %H:%M:%S", time.gmtime(start + second))
            if planted < len(plant_at) and written + chunk_bytes >= plant_at[planted]:
                body = PLANTED[planted].format(pid=1000 + planted, n=lines)
                planted += 1
            else:
                body = bodies[lines & 0xFFFF]
            line = f"{stamp} {hosts[0]} {body}\n"
            chunk.append(line)
            chunk_bytes += len(line)
            lines += 1
            if chunk_bytes >= 1 << 20:
                out.write("".join(chunk))
                written += chunk_bytes
                chunk, chunk_bytes = [], 0
        chunk.append("BENCH-END\n")
        chunk_bytes += len("BENCH-END\n")
        out.write("".join(chunk))
        written += chunk_bytes
        lines += 1
    assert planted == len(PLANTED), "the file is too small for the planted lines"
    return written, lines


def read_once(path):
    """Read the whole file, so that every reader finds it in the page cache."""
    with open(path, "rb", buffering=0) as source:
        while source.read(8 << 20):
            pass


def timestamp(alert):
    return datetime.strptime(alert["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def alerts(state_dir):
    path = state_dir / "alerts.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]



def agent_run(monitord, monitorctl, held_file, patterns, work_dir):
    """One catch-up of the whole file by a fresh agent; the file is moved back afterwards."""
    sandbox = Path(tempfile.mkdtemp(prefix="agent-", dir=work_dir))
    logs = sandbox / "logs"
    logs.mkdir()
    watched = logs / "big.log"
    env = dict(os.environ, MONITOR_DEFAULT_CHECKS="false", MONITOR_CONFIG_DIR=str(sandbox / "config"), MONITOR_STATE_DIR=str(sandbox / "state"),
               MONITOR_RUNTIME_DIR=str(sandbox / "run"), RUST_LOG="warn")
    for folder in ("config", "state", "run"):
        (sandbox / folder).mkdir()
    for name, pattern in patterns:
        subprocess.run([monitorctl, "create", "log", name, pattern, str(watched), "never"], env=env, check=True,
                       capture_output=True)
        subprocess.run([monitorctl, "enable", "log", name], env=env, check=True, capture_output=True)
    agent = subprocess.Popen([monitord], env=env, stderr=subprocess.DEVNULL)
    renamed = False
    try:
        deadline = time.monotonic() + 30
        while subprocess.run([monitorctl, "status"], env=env, capture_output=True).returncode != 0:
            if agent.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("monitord did not become ready")
            time.sleep(0.02)
        cpu_before = cpu_seconds(agent.pid)
        started = time.time()
        os.rename(held_file, watched)
        renamed = True
        deadline = time.monotonic() + 600
        while True:
            seen = {alert["check"]["name"]: alert for alert in alerts(sandbox / "state")
                    if alert["level"] == "CRITICAL"}
            if "end" in seen:
                break
            if agent.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("monitord did not reach the end of the file")
            time.sleep(0.005)
        cpu = cpu_seconds(agent.pid) - cpu_before
        status = Path(f"/proc/{agent.pid}/status").read_text()
        hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    finally:
        agent.terminate()
        agent.wait()
        if renamed:
            os.rename(watched, held_file)
        shutil.rmtree(sandbox, ignore_errors=True)
    missing = [name for name, _ in patterns if name not in seen]
    if missing:
        raise SystemExit(f"monitord reached the end but did not alert for {missing}")
    return {"seconds": timestamp(seen["end"]) - started, "cpu_seconds": cpu, "peak_rss_kib": hwm}


def tool_run(command, patterns, path, expected):
    arguments = list(command)
    for _, pattern in patterns:
        arguments += ["-e", pattern]
    arguments.append(str(path))
    started = time.perf_counter()
    # Popen and wait4 rather than subprocess.run: wait4 also returns the child's CPU time.
    process = subprocess.Popen(arguments, env=dict(os.environ, LC_ALL="C"), stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stdout.close()
    if int(output.strip() or -1) != expected:
        raise SystemExit(f"`{' '.join(arguments)}` counted {output.strip()!r} lines, expected {expected}")
    return {"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=300, help="size of the generated log in MB (default 300)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each reader (default 3)")
    parser.add_argument("--no-build", action="store_true", help="use the release binaries as they are")
    parser.add_argument("--keep-file", action="store_true", help="leave the generated log in its temp folder")
    parser.add_argument("--before", metavar="DIR",
                        help="also run DIR/monitord and DIR/monitorctl (another build) as the reader 'before'")
    arguments = parser.parse_args()
    monitord, monitorctl = build(arguments.no_build)
    rg = find_rg()

    work_dir = Path(tempfile.mkdtemp(prefix="monitor-bench-scan-"))
    log = work_dir / "syslog"
    try:
        began = time.monotonic()
        size, line_count = generate_log(log, arguments.mb)
        print(f"generated {size / 1e6:.0f} MB, {line_count:,} lines in {time.monotonic() - began:.1f} s ({log})",
              file=sys.stderr)
        read_once(log)

        # The real patterns of each case; the agent gets the BENCH-END check on top.
        cases = {"1 pattern": PATTERNS[:1], "10 patterns": PATTERNS}
        # Lines grep and rg must count: the planted lines their patterns cover.
        expected = {"1 pattern": ERROR_LINES, "10 patterns": len(PLANTED)}
        readers = ["monitord"] + (["before"] if arguments.before else []) + ["grep -c -E"] + (["rg -c"] if rg else [])
        runs = {case: {reader: [] for reader in readers} for case in cases}
        for case, patterns in cases.items():
            for run in range(arguments.runs):
                print(f"{case}: run {run + 1} of {arguments.runs}", file=sys.stderr)
                runs[case]["monitord"].append(
                    agent_run(monitord, monitorctl, log, patterns + [END_CHECK], work_dir))
                if arguments.before:
                    before = Path(arguments.before)
                    runs[case]["before"].append(agent_run(str(before / "monitord"), str(before / "monitorctl"), log,
                                                          patterns + [END_CHECK], work_dir))
                runs[case]["grep -c -E"].append(tool_run(["grep", "-c", "-E"], patterns, log, expected[case]))
                if rg:
                    runs[case]["rg -c"].append(tool_run([rg, "-c", "--no-config"], patterns, log, expected[case]))
    finally:
        if arguments.keep_file:
            print(f"kept {log}", file=sys.stderr)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)

    results = {"machine": machine_info(), "megabytes": size / 1e6, "lines": line_count, "runs": arguments.runs,
               "rg": rg is not None, "cases": {}}
    print(f"Log scanning throughput: {size / 1e6:.0f} MB, {line_count:,} lines, from the page cache; "
          f"median of {arguments.runs} runs")
    if not rg:
        print("rg: not installed")
    print(f"{'case':12} {'reader':11} {'MB/s':>7} {'spread (min..max)':>18} {'ratio to grep':>14} "
          f"{'to rg':>6} {'MB per CPU s':>13} {'ratio':>6} {'peak RSS':>9}")
    for case in cases:
        def median_of(reader, value):
            return statistics.median(value(run) for run in runs[case][reader])

        def per_cpu(run):
            return size / 1e6 / max(run["cpu_seconds"], 1e-6)

        grep_speed = median_of("grep -c -E", lambda run: size / 1e6 / run["seconds"])
        grep_per_cpu = median_of("grep -c -E", per_cpu)
        rg_speed = median_of("rg -c", lambda run: size / 1e6 / run["seconds"]) if rg else float("nan")
        results["cases"][case] = {"patterns": [pattern for _, pattern in cases[case]], "readers": {}}
        for reader in readers:
            speeds = [size / 1e6 / run["seconds"] for run in runs[case][reader]]
            speed = statistics.median(speeds)
            cpu_speed = median_of(reader, per_cpu)
            memory = ""
            if reader in ("monitord", "before"):
                memory = f"{median_of(reader, lambda run: run['peak_rss_kib']) / 1024:>5.1f} MiB"
            print(f"{case:12} {reader:11} {speed:>7.0f} {f'{min(speeds):.0f}..{max(speeds):.0f}':>18} "
                  f"{speed / grep_speed:>14.2f} {speed / rg_speed:>6.2f} {cpu_speed:>13.0f} {cpu_speed / grep_per_cpu:>6.2f} {memory:>9}")
            results["cases"][case]["readers"][reader] = {
                "mb_per_s_median": speed, "mb_per_s_min": min(speeds), "mb_per_s_max": max(speeds),
                "ratio_to_grep": speed / grep_speed, "ratio_to_rg": speed / rg_speed if rg else None,
                "mb_per_cpu_second_median": cpu_speed,
                "cpu_ratio_to_grep": cpu_speed / grep_per_cpu, "runs": runs[case][reader]}
    agent_ratio = min(results["cases"][case]["readers"]["monitord"]["ratio_to_grep"] for case in cases)
    print(f"target: monitord >= 0.50 of grep's speed; worst case here {agent_ratio:.2f} "
          f"({'met' if agent_ratio >= 0.5 else 'NOT met'})")
    # Issue 20: one pattern as fast as grep, ten at 80% of ripgrep's speed.
    one = results["cases"]["1 pattern"]["readers"]["monitord"]["ratio_to_grep"]
    print(f"target (issue 20): 1 pattern >= 1.00x grep: {one:.2f} ({'met' if one >= 1.0 else 'NOT met'})")
    if rg:
        ten = results["cases"]["10 patterns"]["readers"]["monitord"]["ratio_to_rg"]
        print(f"target (issue 20): 10 patterns >= 0.80x rg: {ten:.2f} ({'met' if ten >= 0.8 else 'NOT met'})")
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "log_throughput.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
