#!/usr/bin/env python3
"""monitor-server under load: many devices posting alerts at once, on SQLite and on
PostgreSQL, one alert per request and in batches of 16 (what the agent sends at most).

Method:
- For each engine and each scenario (alerts per request 1, then --batch), a fresh database:
  SQLite in a temp folder (WAL, the server's own settings), or a new PostgreSQL database
  made with `psql` on MONITOR_TEST_POSTGRES_URL (default
  postgres://monitor:monitor@127.0.0.1:5432/postgres, a role that may create databases;
  dropped afterwards). When PostgreSQL does not answer, that engine is skipped, and said so.
- `--devices` accepted devices are made straight in the database by the load generator
  (`examples/load.rs --create-devices`, through the server's library); the time it took
  is reported.
- The release server is started on 127.0.0.1:0 with MONITOR_SERVER_LOG=warn and a
  configuration that raises `device_requests_per_minute` to 1,000,000: the default 600 per
  device would answer 429 long before the server is busy, and that limit is not what is
  measured here.
- The load generator (release build, `--threads` tokio threads) keeps `--concurrency`
  requests in flight for `--seconds`, each from the next device in turn (every device
  posts), every alert with a timestamp unique for its device (so none is a duplicate the
  server would drop). Latency is from sending a request to the end of its answer. An error
  is any answer but 204, or a request without an answer.
- Around the load: the server's CPU time (/proc/<pid>/task/*/schedstat), its peak RSS
  (VmHWM), the CPU time of all `postgres` processes (the database's own work, outside the
  server's process), the generator's CPU time (its rusage) and how busy the machine's
  CPUs were (/proc/stat). The generator runs on the same machine and competes with the
  server (and PostgreSQL) for the same cores.
- Afterwards, the alerts stored in the database are counted: they must equal the alerts
  accepted.

`--fleet` (issue 20 point 7): a fleet as agents in `auth: token` mode talk to the server,
with the server's default settings (its per-device rate limit included):
- `--devices` (10,000 here) each send a heartbeat once a minute and their check list once an
  hour, spread evenly, each on its own connection kept as the agent's HTTP client keeps it
  (see `examples/load.rs`, "the fleet"); `--storm-devices` (100) drain an alert backlog in
  batches of 16, one request at a time, as fast as the server answers (or `--storm-rate`
  alerts a second each); `--silent-devices` (100) send one heartbeat, then nothing: the
  server must find each silent 3 missed heartbeats after it was last heard, and no other.
- Per engine: requests/s, p50/p99/max and errors (any non-2xx by status, or no answer) per
  kind of request; the server's CPU, peak RSS, open file descriptors (sampled each second),
  the database's CPU; afterwards, from the database: the devices found silent and how late,
  and the alerts stored against those accepted.
- `--before BINARY` runs that server binary too (main's, built before a change), alternating
  with this tree's, engine by engine.

Usage: bench/server_load.py [--devices 2000] [--concurrency 64] [--seconds 20] [--batch 16]
                            [--engines sqlite,postgres] [--threads 2] [--no-build]
       bench/server_load.py --fleet [--devices 10000] [--storm-devices 100] [--silent-devices 100]
                            [--storm-rate 0] [--seconds 270] [--before BINARY]
Prints a table; writes bench/results/server_load.json (server_fleet.json with --fleet).
"""

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import ROOT, cpu_seconds, machine_info

DEFAULT_ADMIN_URL = "postgres://monitor:monitor@127.0.0.1:5432/postgres"
RATE_LIMIT = 1_000_000


def build(skip):
    """The release server and load generator (the server's own profile, `release-server`: it unwinds)."""
    if not skip:
        subprocess.run(["cargo", "build", "--profile", "release-server", "--locked", "--quiet", "-p", "monitor-server",
                        "--bins", "--examples"], cwd=ROOT, check=True)
    target = Path(json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT,
                                            capture_output=True, text=True, check=True).stdout)["target_directory"])
    return str(target / "release-server/monitor-server"), str(target / "release-server/examples/load")


def psql(url, sql):
    """Runs SQL with psql; returns (ok, output or error)."""
    try:
        result = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, str(error)
    if result.returncode == 0:
        return True, result.stdout.strip()
    return False, result.stderr.strip()


class PostgresDatabase:
    """A new database on the server of admin_url, dropped by drop()."""
    count = 0

    def __init__(self, admin_url):
        PostgresDatabase.count += 1
        self.admin_url = admin_url
        self.name = f"monitor_bench_{os.getpid()}_{PostgresDatabase.count}"
        ok, output = psql(admin_url, f"CREATE DATABASE {self.name}")
        if not ok:
            raise RuntimeError(output)
        self.url = f"{admin_url.rsplit('/', 1)[0]}/{self.name}"

    def drop(self):
        psql(self.admin_url, f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def postgres_pids():
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def postgres_cpu():
    """CPU seconds of every postgres process by pid (backends come and go)."""
    seconds = {}
    for pid in postgres_pids():
        try:
            seconds[pid] = cpu_seconds(pid)
        except (OSError, ValueError, IndexError):
            pass
    return seconds


def machine_ticks():
    """(busy, total) jiffies of all CPUs; iowait counts as idle."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return total - idle, total


def peak_rss_kib(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))


class Sampler:
    """Samples a process's RSS and open file descriptors every second, in a thread."""

    def __init__(self, pid):
        self.pid = pid
        self.peak_fds = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.wait(1.0):
            try:
                self.peak_fds = max(self.peak_fds, len(os.listdir(f"/proc/{self.pid}/fd")))
            except OSError:
                return

    def finish(self):
        self.stop.set()
        self.thread.join()


def start_server(server, database_args, config, log_path):
    env = dict(os.environ, MONITOR_SERVER_LOG="warn")
    for name in ("MONITOR_SERVER_DATABASE_URL", "MONITOR_SERVER_DATA_DIR", "MONITOR_SERVER_CONFIG",
                 "MONITOR_SERVER_LISTEN"):
        env.pop(name, None)
    log = open(log_path, "w")
    process = subprocess.Popen([server, "--config", str(config), *database_args, "--listen", "127.0.0.1:0"],
                               env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    log.close()
    line = process.stdout.readline().strip()
    if not line.startswith("listening on "):
        process.kill()
        process.wait()
        raise SystemExit(f"monitor-server did not start: {line!r}; its log: {Path(log_path).read_text()[-2000:]}")
    return process, line.removeprefix("listening on ")


def stop_server(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return "killed after 30 s"
    return process.returncode


def stored_alerts(engine, location):
    """How many alerts the database holds (None if it cannot tell)."""
    try:
        if engine == "sqlite":
            with sqlite3.connect(f"file:{location}?mode=ro", uri=True) as connection:
                return connection.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]
        ok, output = psql(location, "SELECT COUNT(*) FROM alerts")
        return int(output) if ok else None
    except (sqlite3.Error, ValueError):
        return None


def scenario(engine, alerts_per_request, arguments, server, load, admin_url, work_dir):
    """One fresh database, one server, one load run: the figures."""
    folder = Path(tempfile.mkdtemp(prefix=f"{engine}-{alerts_per_request}-", dir=work_dir))
    config = folder / "server.yaml"
    config.write_text(f"device_requests_per_minute: {RATE_LIMIT}\n")
    tokens = folder / "tokens"
    database = None
    try:
        if engine == "sqlite":
            data_dir = folder / "data"
            database_args = ["--data-dir", str(data_dir)]
            count_location = data_dir / "monitor-server.db"
        else:
            database = PostgresDatabase(admin_url)
            database_args = ["--database-url", database.url]
            count_location = database.url
        created = folder / "created.json"
        subprocess.run([load, "--create-devices", str(arguments.devices), *database_args, "--tokens-file",
                        str(tokens), "--json", str(created)], check=True, stdout=subprocess.DEVNULL)
        creation_seconds = json.loads(created.read_text())["seconds"]

        process, url = start_server(server, database_args, config, folder / "server.log")
        try:
            figures_path = folder / "load.json"
            server_cpu = cpu_seconds(process.pid)
            database_cpu = postgres_cpu()
            busy, total = machine_ticks()
            began = time.monotonic()
            generator = subprocess.Popen(
                [load, "--url", url, "--tokens-file", str(tokens), "--devices", str(arguments.devices),
                 "--concurrency", str(arguments.concurrency), "--duration", f"{arguments.seconds}s",
                 "--alerts-per-request", str(alerts_per_request), "--threads", str(arguments.threads),
                 "--json", str(figures_path)], stdout=subprocess.PIPE, text=True)
            output = generator.stdout.read()
            _, status, usage = os.wait4(generator.pid, 0)
            wall = time.monotonic() - began
            busy_after, total_after = machine_ticks()
            server_cpu = cpu_seconds(process.pid) - server_cpu
            database_after = postgres_cpu()
            rss = peak_rss_kib(process.pid)
        finally:
            stopped = stop_server(process)
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 1) or not figures_path.exists():
            raise SystemExit(f"the load generator failed (exit {code}): {output}")
        sys.stderr.write(output)
        figures = json.loads(figures_path.read_text())
        stored = stored_alerts(engine, count_location)
        server_log = (folder / "server.log").read_text(errors="replace")
        if figures["errors"] and server_log:
            print(f"the server's log (last lines):\n{server_log[-1500:]}", file=sys.stderr)
        return {
            "engine": engine, "devices": arguments.devices, "concurrency": arguments.concurrency,
            "alerts_per_request": alerts_per_request, "device_creation_seconds": creation_seconds,
            "load": figures, "stored_alerts": stored,
            "server_cpu_seconds": server_cpu, "server_peak_rss_kib": rss, "server_exit": stopped,
            "postgres_cpu_seconds": sum(seconds - database_cpu.get(pid, 0.0)
                                        for pid, seconds in database_after.items()) if engine == "postgres" else None,
            "generator_cpu_seconds": usage.ru_utime + usage.ru_stime,
            "machine_busy_fraction": (busy_after - busy) / max(1, total_after - total),
            "wall_seconds": wall, "server_log_tail": server_log[-1500:] if figures["errors"] else "",
        }
    finally:
        if database is not None:
            database.drop()
        shutil.rmtree(folder, ignore_errors=True)


def query(engine, location, sql):
    """Rows of a query on the run's database (SQLite file or PostgreSQL URL)."""
    if engine == "sqlite":
        with sqlite3.connect(f"file:{location}?mode=ro", uri=True) as connection:
            return connection.execute(sql).fetchall()
    ok, output = psql(location, sql)
    if not ok:
        raise RuntimeError(output)
    return [tuple(line.split("|")) for line in output.splitlines() if line]


def silences(engine, location, silent_after=3):
    """The devices found silent: (how many, of them named load-silent, lateness ms p50/max)."""
    rows = query(engine, location,
                 f"SELECT name, silent_at - (last_seen_at + heartbeat_interval_ms * {silent_after}) "
                 "FROM devices WHERE silent_at IS NOT NULL")
    late = sorted(int(row[1]) for row in rows)
    expected = sum(1 for row in rows if str(row[0]).startswith("load-silent-"))
    return {"silent": len(rows), "silent_of_those_stopped": expected, "silent_wrongly": len(rows) - expected,
            "late_ms_p50": late[len(late) // 2] if late else None, "late_ms_max": late[-1] if late else None}


def fleet_scenario(engine, label, server, load, arguments, admin_url, work_dir):
    """One fresh database with the fleet's devices, one server with default settings, the
    fleet's load: the figures."""
    folder = Path(tempfile.mkdtemp(prefix=f"fleet-{engine}-", dir=work_dir))
    config = folder / "server.yaml"
    config.write_text("{}\n")
    tokens, silent_tokens = folder / "tokens", folder / "silent-tokens"
    database = None
    try:
        if engine == "sqlite":
            data_dir = folder / "data"
            database_args = ["--data-dir", str(data_dir)]
            location = data_dir / "monitor-server.db"
        else:
            database = PostgresDatabase(admin_url)
            database_args = ["--database-url", database.url]
            location = database.url
        active = arguments.devices - arguments.silent_devices
        created = folder / "created.json"
        subprocess.run([load, "--create-devices", str(active), *database_args, "--tokens-file", str(tokens),
                        "--json", str(created)], check=True, stdout=subprocess.DEVNULL)
        creation_seconds = json.loads(created.read_text())["seconds"]
        if arguments.silent_devices:
            subprocess.run([load, "--create-devices", str(arguments.silent_devices), *database_args,
                            "--name-prefix", "load-silent-", "--tokens-file", str(silent_tokens)],
                           check=True, stdout=subprocess.DEVNULL)

        process, url = start_server(server, database_args, config, folder / "server.log")
        try:
            sampler = Sampler(process.pid)
            server_cpu = cpu_seconds(process.pid)
            database_cpu = postgres_cpu()
            busy, total = machine_ticks()
            began = time.monotonic()
            # The silent devices: one heartbeat each, spread over the first minute, then nothing.
            quiet = subprocess.Popen([load, "--fleet", "--url", url, "--tokens-file", str(silent_tokens),
                                      "--devices", str(arguments.silent_devices), "--duration", "60s",
                                      "--threads", "1"], stdout=subprocess.DEVNULL) if arguments.silent_devices else None
            figures_path = folder / "fleet.json"
            generator = subprocess.Popen(
                [load, "--fleet", "--url", url, "--tokens-file", str(tokens), "--devices", str(active),
                 "--storm-devices", str(arguments.storm_devices), "--storm-rate", str(arguments.storm_rate),
                 "--duration", f"{arguments.seconds}s", "--threads", str(arguments.threads),
                 "--json", str(figures_path)], stdout=subprocess.PIPE, text=True)
            output = generator.stdout.read()
            _, status, usage = os.wait4(generator.pid, 0)
            if quiet is not None:
                quiet.wait()
            wall = time.monotonic() - began
            busy_after, total_after = machine_ticks()
            server_cpu = cpu_seconds(process.pid) - server_cpu
            database_after = postgres_cpu()
            rss = peak_rss_kib(process.pid)
            sampler.finish()
        finally:
            stopped = stop_server(process)
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 1) or not figures_path.exists():
            raise SystemExit(f"the fleet generator failed (exit {code}): {output}")
        sys.stderr.write(output)
        figures = json.loads(figures_path.read_text())
        server_log = (folder / "server.log").read_text(errors="replace")
        warnings = [line for line in server_log.splitlines() if " WARN " in line or " ERROR " in line]
        accepted = figures["kinds"]["alerts"]["alerts_accepted"]
        return {
            "engine": engine, "server": label, "devices": arguments.devices,
            "storm_devices": arguments.storm_devices, "silent_devices": arguments.silent_devices,
            "device_creation_seconds": creation_seconds, "load": figures,
            "stored_alerts": stored_alerts(engine, location), "alerts_accepted": accepted,
            "silences": silences(engine, location),
            "server_cpu_seconds": server_cpu, "server_peak_rss_kib": rss, "server_peak_fds": sampler.peak_fds,
            "server_exit": stopped,
            "postgres_cpu_seconds": sum(seconds - database_cpu.get(pid, 0.0)
                                        for pid, seconds in database_after.items()) if engine == "postgres" else None,
            "generator_cpu_seconds": usage.ru_utime + usage.ru_stime,
            "machine_busy_fraction": (busy_after - busy) / max(1, total_after - total),
            "wall_seconds": wall, "server_warnings": len(warnings), "server_warnings_first": warnings[:5],
        }
    finally:
        if database is not None:
            database.drop()
        shutil.rmtree(folder, ignore_errors=True)


def fleet_main(arguments, server, load, admin_url, engines, skipped):
    servers = [("this tree", server)] + ([("before", arguments.before)] if arguments.before else [])
    work_dir = Path(tempfile.mkdtemp(prefix="monitor-bench-fleet-"))
    runs = []
    try:
        for engine in engines:
            for label, binary in (servers if len(runs) % 2 == 0 else list(reversed(servers))):
                print(f"{engine} ({label}): {arguments.devices} devices, {arguments.storm_devices} storming, "
                      f"{arguments.silent_devices} going silent, {arguments.seconds:g} s", file=sys.stderr)
                runs.append(fleet_scenario(engine, label, binary, load, arguments, admin_url, work_dir))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    results = {"machine": machine_info(), "arguments": vars(arguments), "skipped": skipped, "runs": runs}
    print(f"monitor-server, a fleet: {arguments.devices:,} devices (a heartbeat a minute, the check list an hour), "
          f"{arguments.storm_devices} of them in an alert storm (batches of 16, "
          f"{'as fast as answered' if not arguments.storm_rate else f'{arguments.storm_rate:g} alerts/s each'}), "
          f"{arguments.silent_devices} going silent; {arguments.seconds:g} s; default server settings; "
          f"generator on the same {os.cpu_count()} cores")
    print(f"{'engine':9} {'server':10} {'kind':9} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'errors':>24}")
    for run in runs:
        for kind, figures in run["load"]["kinds"].items():
            latency = figures["latency_ms"]
            errors = ", ".join(f"{count} × {status}" for status, count in figures["non_2xx"].items())
            if figures["transport_errors"]:
                errors = ", ".join(filter(None, [errors, f"{figures['transport_errors']} no answer"]))
            print(f"{run['engine']:9} {run['server']:10} {kind:9} {figures['requests_per_s']:>7.1f} "
                  f"{latency['p50']:>8.1f} {latency['p99']:>8.1f} {latency['max']:>8.1f} {errors or '0':>24}")
    print(f"{'engine':9} {'server':10} {'alerts/s':>8} {'server CPU s':>12} {'pg CPU s':>8} {'peak RSS':>9} "
          f"{'peak fds':>8} {'conns':>6} {'silent+wrong':>10} {'late ms':>9} {'stored':>9} {'warn':>5}")
    for run in runs:
        figures = run["load"]
        pg = "-" if run["postgres_cpu_seconds"] is None else f"{run['postgres_cpu_seconds']:.1f}"
        silence = run["silences"]
        late = "-" if silence["late_ms_max"] is None else f"{silence['late_ms_max']}"
        stored = "ok" if run["stored_alerts"] == run["alerts_accepted"] else f"{run['stored_alerts']}≠"
        print(f"{run['engine']:9} {run['server']:10} {run['alerts_accepted'] / figures['seconds']:>8.0f} "
              f"{run['server_cpu_seconds']:>12.1f} {pg:>8} {run['server_peak_rss_kib'] / 1024:>5.1f} MiB "
              f"{run['server_peak_fds']:>8} {figures['connections_open_peak']:>6} "
              f"{silence['silent_of_those_stopped']:>4}/{run['silent_devices']:<3}+{silence['silent_wrongly']:<2} {late:>9} {stored:>9} {run['server_warnings']:>5}")
    for run in runs:
        if run["server_warnings"]:
            print(f"{run['engine']} ({run['server']}): the server's first warnings: {run['server_warnings_first']}")
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "server_fleet.json").write_text(json.dumps(results, indent=2) + "\n")
    if any(run["load"]["errors"] for run in runs):
        return 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=2000, help="devices posting (default 2000)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight (default 64)")
    parser.add_argument("--seconds", type=float, default=20, help="load per scenario, in seconds (default 20)")
    parser.add_argument("--batch", type=int, default=16, help="alerts per request of the batched scenario (16)")
    parser.add_argument("--engines", default="sqlite,postgres",
                        help="sqlite, postgres, or both as sqlite,postgres (the default)")
    parser.add_argument("--threads", type=int, default=2, help="the load generator's threads (default 2)")
    parser.add_argument("--no-build", action="store_true", help="use the release binaries as they are")
    parser.add_argument("--fleet", action="store_true",
                        help="the fleet scenario: heartbeats, config pushes, a storm, silent devices")
    parser.add_argument("--storm-devices", type=int, default=100, help="--fleet: devices in a storm (100)")
    parser.add_argument("--storm-rate", type=float, default=0,
                        help="--fleet: alerts a second per storming device; 0 (default): as fast as answered")
    parser.add_argument("--silent-devices", type=int, default=100,
                        help="--fleet: devices that send one heartbeat, then nothing (100)")
    parser.add_argument("--before", help="--fleet: another server binary to run too (main's)")
    arguments = parser.parse_args()
    server, load = build(arguments.no_build)

    admin_url = os.environ.get("MONITOR_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL)
    engines = [engine.strip() for engine in arguments.engines.split(",") if engine.strip()]
    unknown = [engine for engine in engines if engine not in ("sqlite", "postgres")]
    if unknown or not engines:
        parser.error(f"--engines: {', '.join(unknown) or 'none given'}: use sqlite, postgres or sqlite,postgres")
    skipped = {}
    if "postgres" in engines:
        ok, answer = psql(admin_url, "SELECT current_setting('server_version')")
        if not ok:
            skipped["postgres"] = f"PostgreSQL does not answer at {admin_url.split('@')[-1]}: {answer}"
            print(f"postgres: skipped ({skipped['postgres']})", file=sys.stderr)
            engines.remove("postgres")
        else:
            postgres_version = answer

    if arguments.fleet:
        return fleet_main(arguments, server, load, admin_url, engines, skipped)

    work_dir = Path(tempfile.mkdtemp(prefix="monitor-bench-server-"))
    runs = []
    try:
        for engine in engines:
            for alerts_per_request in (1, arguments.batch):
                print(f"{engine}: {arguments.devices} devices, {alerts_per_request} alert(s) per request, "
                      f"{arguments.seconds:g} s", file=sys.stderr)
                runs.append(scenario(engine, alerts_per_request, arguments, server, load, admin_url, work_dir))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    results = {"machine": machine_info(), "devices": arguments.devices, "concurrency": arguments.concurrency,
               "seconds": arguments.seconds, "generator_threads": arguments.threads,
               "device_requests_per_minute": RATE_LIMIT, "skipped": skipped, "runs": runs}
    if "postgres" in engines:
        results["postgres_version"] = postgres_version
    print(f"monitor-server under load: {arguments.devices} devices, {arguments.concurrency} requests in flight, "
          f"{arguments.seconds:g} s per scenario; generator on the same {os.cpu_count()} cores "
          f"({arguments.threads} threads); rate limit raised to {RATE_LIMIT:,}/min per device")
    print(f"{'engine':9} {'alerts/req':>10} {'req/s':>7} {'alerts/s':>9} {'p50 ms':>7} {'p90 ms':>7} "
          f"{'p99 ms':>7} {'max ms':>7} {'errors':>6} {'peak RSS':>9} {'server CPU s':>12} {'pg CPU s':>8} "
          f"{'gen CPU s':>9} {'CPU busy':>8}")
    for run in runs:
        figures = run["load"]
        latency = figures["latency_ms"]
        pg = "-" if run["postgres_cpu_seconds"] is None else f"{run['postgres_cpu_seconds']:.1f}"
        print(f"{run['engine']:9} {run['alerts_per_request']:>10} {figures['requests_per_s']:>7.0f} "
              f"{figures['alerts_per_s']:>9.0f} {latency['p50']:>7.1f} {latency['p90']:>7.1f} {latency['p99']:>7.1f} "
              f"{latency['max']:>7.1f} {figures['errors']:>6} {run['server_peak_rss_kib'] / 1024:>5.1f} MiB "
              f"{run['server_cpu_seconds']:>12.1f} {pg:>8} {run['generator_cpu_seconds']:>9.1f} "
              f"{run['machine_busy_fraction'] * 100:>7.0f}%")
    for run in runs:
        figures = run["load"]
        notes = [f"{run['engine']}, {run['alerts_per_request']}/req: {run['devices']} devices created in "
                 f"{run['device_creation_seconds']:.2f} s; {figures['devices_posted']} posted; "
                 f"{figures['alerts_accepted']:,} alerts accepted, {run['stored_alerts']} stored"]
        if figures["errors"]:
            notes.append(f"ERRORS: {figures['non_204']} non-204, {figures['transport_errors']} without answer; "
                         f"first: {figures['first_error']}")
        if run["stored_alerts"] is not None and run["stored_alerts"] != figures["alerts_accepted"]:
            notes.append("MISMATCH between accepted and stored alerts")
        print("; ".join(notes))
    for engine, reason in skipped.items():
        print(f"{engine}: skipped ({reason})")
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "server_load.json").write_text(json.dumps(results, indent=2) + "\n")
    if any(run["load"]["errors"] for run in runs):
        return 1


if __name__ == "__main__":
    sys.exit(main())
