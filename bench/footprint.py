#!/usr/bin/env python3
"""Footprint: memory, CPU, wake-ups and file descriptors of monitord with 50 checks, idle
and under load, next to `monit` doing the equivalent checks; and monitord's startup time.

The 50 checks:
- 20 log checks, one per file (`ERROR` in logs/app-N.log);
- 20 service checks on a real `systemd --user` manager started here (private mount
  namespace, as in service_latency.py), units `bench-svc-N` running `sleep infinity`
  (argv[0] set to the unit name with ExecStart=@, so that monit can tell them apart);
- 10 command checks `@tail -F -n0 logs/app-N.log` (`panic`), N = 0..9: long-running
  commands whose output the agent reads.
monit gets the same with what it has: 20 `check file ... if content = "ERROR"`, 20
`check process ... matching "^bench-svc-N "`, 10 `check program` running
`tail -n 5 logs/app-N.log`, with `set daemon 2` (a poll every 2 s, like Mender Monitor's
loop). It runs as `monit -I -c <control file>`; it is installed from apt when missing
(as root), otherwise the comparison says it is missing.

Method:
- Startup: from just before the exec of monitord to the first `monitorctl status` that
  answers (the agent answers only after its first catch-up of every log source), and to
  the first `monitorctl status --json` in which no check is `unknown` any more (service
  states come from the manager a little later), --starts times (default 5); median, min
  and max. The state folder is kept between starts, as on a device.
- Idle: the agent (or monit) is started, left alone for a few seconds to settle, then
  measured over --idle-seconds (default 60): CPU time of all its threads (schedstat, ns),
  wake-ups per second (the sum of voluntary + nonvoluntary context switches over
  /proc/<pid>/task/*/status), VmRSS and VmHWM, PSS (smaps_rollup: shared pages split
  among their users, so that it adds up over processes), open file descriptors
  (/proc/<pid>/fd), threads. The agent's 10 command children (one `tail` each: the shell
  execs a simple command) are reported on their own line;
  monit's `check program` children are short-lived, so only their CPU (cutime + cstime
  of monit, 10 ms ticks) can be counted.
- Under load: a writer process appends 10k lines/s (--load-rate) spread round-robin over
  the 20 files (each millisecond's lines to the next file), about one line in 1000 with
  ERROR, for --load-seconds (default 30; measured after
  1 s of warm-up): CPU %, wake-ups/s, RSS. The writer's own CPU is not counted.
- Ratios compare monitord with monit measured in the same run. --before DIR measures an
  older build (its monitord and monitorctl in DIR) with the same checks, in a state folder of
  its own, right after this build: the same idle and load windows, on log files reset to
  what this build found (--backlog-lines N: N lines in each file before the start, which
  a new check reads; empty by default). The threads of each, by
  name, are printed and kept in the JSON.
- Command processes (also alone, --commands-only): an agent with only the 10
  `@tail -F -n0` checks, then the same with `; :` after each command, which keeps `sh -c`
  waiting as tail's parent (the agent's shape before issue 20, when every command was
  run that way): the processes below monitord, by name, and the sum of their PSS and RSS,
  once every `tail` runs (and 1 s more). --before DIR adds the 10 checks as written run
  by an older build (its monitord and monitorctl in DIR). And what a start costs (CPU of the
  children, wall time; 400 starts of `tail --version`): run directly, through
  `sh -c 'exec …'`, and through `sh -c` alone.
Targets of the benchmark issue: idle CPU ~ 0 with no periodic wake-ups; RSS under 10 MiB
with 50 checks. The per-thread wake-ups are in the JSON, to find what wakes up.

- Load only (--load-only, issue 20): the load window alone, for this build, --before's
  build, this build with `log_coalesce: D` for each --coalesce D, and monit, one after
  another, --rounds times (default 3); each gets its own state folder, the log files are
  emptied between windows. Per contender, the medians over the rounds: its own CPU, its
  children's (monitord's 10 `tail`s; monit's check programs), the total and its ratio to
  monit's, wake-ups/s and the threads they come from. Writes bench/results/footprint_load.json.

Usage: bench/footprint.py [--idle-seconds 60] [--load-seconds 30] [--load-rate 10000] [--starts 5] [--no-build]
                          [--before DIR] [--backlog-lines N]
                          [--commands-only] [--load-only [--coalesce 10ms]... [--rounds 3]]
Prints a table; writes bench/results/footprint.json.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, TICK, UserManager, build, machine_info

LOG_FILES, SERVICES, COMMANDS = 20, 20, 10


def find_monit():
    """monit if it is installed or apt can install it (as root); None otherwise."""
    if not shutil.which("monit") and os.geteuid() == 0 and shutil.which("apt-get"):
        environment = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if subprocess.run(["apt-get", "install", "-y", "-qq", "monit"], env=environment,
                          capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=environment, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "monit"], env=environment, capture_output=True)
    return shutil.which("monit")


# --- What /proc says about a process ----------------------------------------------------

def status_field(pid, name):
    """A `kB` or count field of /proc/<pid>/status, as an int."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def pss_kib(pid):
    """Proportional set size: RSS with each shared page split among the processes sharing
    it (libc, a binary run ten times), so that the sum over processes is meaningful."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def threads(pid):
    """{tid: (thread name, CPU ns, context switches)} for every thread of `pid`."""
    result = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text().splitlines()
            fields = dict(line.split(":", 1) for line in status if ":" in line)
            switches = int(fields["voluntary_ctxt_switches"]) + int(fields["nonvoluntary_ctxt_switches"])
            try:
                cpu = int((task / "schedstat").read_text().split()[0])
            except (FileNotFoundError, ValueError):
                stat = (task / "stat").read_text().rsplit(")", 1)[1].split()
                cpu = (int(stat[11]) + int(stat[12])) * 1_000_000_000 // TICK
            result[int(task.name)] = (fields["Name"].strip(), cpu, switches)
        except (FileNotFoundError, ProcessLookupError):
            pass  # the thread ended while we looked
    return result


def thread_names(pid):
    """{thread name: how many} over the threads of `pid`."""
    names = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
        except (FileNotFoundError, ProcessLookupError):
            continue
        names[name] = names.get(name, 0) + 1
    return names


def waited_children_cpu(pid):
    """CPU seconds of the children `pid` has waited for (cutime + cstime, 10 ms ticks)."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[13]) + int(stat[14])) / TICK


def descendants(pid):
    """Every process below `pid`."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent:
                found.append(child)
                frontier.append(child)
    return found


def measure(pid, seconds, children=()):
    """Watch `pid` (and the long-lived `children`) for `seconds`: CPU, wake-ups, memory."""
    before = {p: threads(p) for p in (pid, *children)}
    before_waited = waited_children_cpu(pid)
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    after = {p: threads(p) for p in (pid, *children)}
    waited = waited_children_cpu(pid) - before_waited

    def totals(processes):
        cpu = switches = 0
        per_thread = {}
        for p in processes:
            for tid, (name, thread_cpu, thread_switches) in after.get(p, {}).items():
                _, cpu_before, switches_before = before.get(p, {}).get(tid, (name, 0, 0))
                cpu += thread_cpu - cpu_before
                switches += thread_switches - switches_before
                key = f"{name} ({tid})"
                per_thread[key] = round((thread_switches - switches_before) / elapsed, 2)
        return cpu / 1e9, switches / elapsed, per_thread

    cpu, wakeups, per_thread = totals([pid])
    result = {"seconds": elapsed, "cpu_seconds": cpu, "cpu_percent": 100 * cpu / elapsed,
              "wakeups_per_second": wakeups, "wakeups_per_thread": per_thread,
              "rss_kib": status_field(pid, "VmRSS"), "hwm_kib": status_field(pid, "VmHWM"), "pss_kib": pss_kib(pid),
              "anon_kib": status_field(pid, "RssAnon"),
              "fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": status_field(pid, "Threads"),
              "waited_children_cpu_seconds": waited, "thread_names": thread_names(pid)}
    if children:
        child_cpu, child_wakeups, _ = totals(children)
        result["children"] = {"count": len(children), "cpu_seconds": child_cpu,
                              "cpu_percent": 100 * child_cpu / elapsed, "wakeups_per_second": child_wakeups,
                              "rss_kib": sum(status_field(child, "VmRSS") for child in children if
                                             Path(f"/proc/{child}").exists()),
                              "pss_kib": sum(pss_kib(child) for child in children),
                              "names": sorted({Path(f"/proc/{child}/comm").read_text().strip()
                                               for child in children if Path(f"/proc/{child}").exists()})}
    return result


# --- The writer (runs as its own process: `footprint.py --writer DIR ...`) --------------

def write_lines(folder, rate, seconds, files):
    """Append `rate` lines/s round-robin to folder/app-0.log .. app-<files-1>.log, paced by
    the millisecond; one line in 997 contains ERROR (997, not 1000: prime, so that the ERROR
    lines do not all land in the same file)."""
    descriptors = [os.open(Path(folder) / f"app-{index}.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                   for index in range(files)]
    written = 0
    started = time.monotonic()
    tick = 0
    while True:
        tick += 1
        wake_at = started + tick / 1000
        now = time.monotonic()
        if wake_at > now:
            time.sleep(wake_at - now)
        elapsed = time.monotonic() - started
        if elapsed >= seconds:
            break
        due = int(rate * elapsed) - written
        if due <= 0:
            continue
        lines = []
        for number in range(written + 1, written + due + 1):
            level = "ERROR payment gateway timeout" if number % 997 == 0 else "INFO request served"
            lines.append(f"Nov 22 00:21:21 edge-gw-07 app[4242]: {level} id={number:010d} in 3ms status=200\n")
        # This millisecond's lines go to one file, the next millisecond's to the next one.
        os.write(descriptors[tick % files], "".join(lines).encode())
        written += due
    for descriptor in descriptors:
        os.close(descriptor)


def start_writer(folder, rate, seconds):
    return subprocess.Popen([sys.executable, __file__, "--writer", str(folder), "--load-rate", str(rate),
                             "--load-seconds", str(seconds)])


# --- The two contenders -----------------------------------------------------------------

def setup(work, monitorctl, manager, name="agent", settings=""):
    """The 50 checks for an agent in work/<name>, with `settings` added to its monitor.yaml;
    returns its environment."""
    sandbox = work / name
    for folder in ("config", "state", "run"):
        (sandbox / folder).mkdir(parents=True)
    (sandbox / "config/monitor.yaml").write_text("systemd:\n  bus: user\n" + settings)
    env = dict(manager.env, MONITOR_DEFAULT_CHECKS="false", MONITOR_CONFIG_DIR=str(sandbox / "config"), MONITOR_STATE_DIR=str(sandbox / "state"),
               MONITOR_RUNTIME_DIR=str(sandbox / "run"), RUST_LOG="warn")

    def create(kind, name, *rest):
        subprocess.run([monitorctl, "create", kind, name, *rest], env=env, check=True, capture_output=True)
        subprocess.run([monitorctl, "enable", kind, name], env=env, check=True, capture_output=True)

    for index in range(LOG_FILES):
        create("log", f"file-{index}", "ERROR", str(work / f"logs/app-{index}.log"), "5m")
    for index in range(SERVICES):
        create("service", f"bench-svc-{index}", "systemd")
    for index in range(COMMANDS):
        create("log", f"cmd-{index}", "panic", f"@tail -F -n0 {work}/logs/app-{index}.log", "5m")
    return env


def check_states(monitorctl, env):
    """{state: count} over every check, from `monitorctl status --json`; None if no answer."""
    answer = subprocess.run([monitorctl, "status", "--json"], env=env, capture_output=True, text=True)
    if answer.returncode != 0:
        return None
    counts = {}
    for check in json.loads(answer.stdout)["checks"]:
        counts[check["state"]] = counts.get(check["state"], 0) + 1
    return counts


def start_agent(monitord, monitorctl, env, notify=None, timeout=60):
    """Start monitord; return (process, seconds from exec to `monitorctl status` answering,
    seconds from exec to every check having a known state), within `timeout` seconds (or
    it is stopped, and the benchmark ends). With `notify` (a dict), it gets
    a NOTIFY_SOCKET as systemd's `Type=notify` gives: `notify["ready"]` is the seconds from
    exec to `READY=1`, `notify["unknown"]` how many checks the first status after it showed
    `unknown`."""
    socket_path = receiver = None
    if notify is not None:
        socket_path = Path(tempfile.mkdtemp()) / "notify.sock"
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.bind(str(socket_path))
        receiver.settimeout(60)
        env = dict(env, NOTIFY_SOCKET=str(socket_path))
    started = time.monotonic()
    agent = subprocess.Popen([monitord], env=env, stderr=subprocess.DEVNULL)
    deadline = started + timeout
    try:
        return agent, *wait_known(agent, started, deadline, monitorctl, env, (receiver, socket_path), notify)
    except BaseException:
        stop(agent)
        raise


def wait_known(agent, started, deadline, monitorctl, env, notify_socket, notify):
    """start_agent's waits: READY=1 (with `notify`), then a status, then every check known."""
    receiver, socket_path = notify_socket
    if notify is not None:
        try:
            while b"READY=1" not in receiver.recv(4096):
                pass
            notify["ready"] = time.monotonic() - started
            notify["unknown"] = (check_states(monitorctl, env) or {}).get("unknown", 0)
        finally:
            receiver.close()
            shutil.rmtree(socket_path.parent, ignore_errors=True)
    while subprocess.run([monitorctl, "status"], env=env, capture_output=True).returncode != 0:
        if agent.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("monitord did not become ready")
        time.sleep(0.005)
    ready = time.monotonic() - started
    # Ready means the log sources are caught up; services may still be `unknown` until
    # the manager has answered the agent.
    while (check_states(monitorctl, env) or {"unknown": 1}).get("unknown"):
        if agent.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"monitord did not learn the state of every check within {deadline - started:.0f} s")
        time.sleep(0.005)
    return ready, time.monotonic() - started


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


COMMAND_SHAPES = (("sh execs tail", "@tail -F -n0 {log}"),
                  ("sh stays the parent (`; :`)", "@tail -F -n0 {log}; :"))


def command_processes(monitord, monitorctl, work, before=None):
    """For each of COMMAND_SHAPES, an agent with only the 10 command checks: the processes
    below it, by name, and their memory. With `before` (a folder holding an older build's
    monitord and monitorctl), the first shape once more with that build."""
    shapes = []
    runs = [(label, template, monitord, monitorctl) for label, template in COMMAND_SHAPES]
    if before:
        runs.append((f"as written, {before}", COMMAND_SHAPES[0][1], str(Path(before) / "monitord"),
                     str(Path(before) / "monitorctl")))
    for index, (label, template, monitord, monitorctl) in enumerate(runs):
        sandbox = work / f"commands-{index}"
        for folder in ("config", "state", "run"):
            (sandbox / folder).mkdir(parents=True)
        env = dict(os.environ, MONITOR_DEFAULT_CHECKS="false", MONITOR_CONFIG_DIR=str(sandbox / "config"),
                   MONITOR_STATE_DIR=str(sandbox / "state"), MONITOR_RUNTIME_DIR=str(sandbox / "run"),
                   RUST_LOG="warn")
        for check in range(COMMANDS):
            source = template.format(log=work / f"logs/app-{check}.log")
            for verb in (["create", "log", f"cmd-{check}", "panic", source, "5m"], ["enable", "log", f"cmd-{check}"]):
                subprocess.run([monitorctl, *verb], env=env, check=True, capture_output=True)
        agent = subprocess.Popen([monitord], env=env, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while process_names(descendants(agent.pid)).get("tail", 0) < COMMANDS:
                if agent.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the {COMMANDS} tail commands did not start ({label})")
                time.sleep(0.05)
            time.sleep(1)
            processes = descendants(agent.pid)
            shapes.append({"shape": label, "command": template, "processes": len(processes),
                           "by_name": process_names(processes),
                           "pss_kib": sum(pss_kib(pid) for pid in processes),
                           "rss_kib": sum(status_field(pid, "VmRSS") for pid in processes),
                           "monitord_pss_kib": pss_kib(agent.pid)})
        finally:
            stop(agent)
    return shapes


START_WAYS = (("run directly (no shell)", ["tail", "--version"]),
              ("sh -c 'exec tail …' (now)", ["sh", "-c", "exec tail --version"]),
              ("sh -c 'tail …' (before)", ["sh", "-c", "tail --version"]))


def start_costs(starts=400):
    """CPU time (user + system of the children) and wall time per start of a short `tail`
    run in each of START_WAYS: what exec'ing through the shell costs against running the
    command without one (the cost is paid once per start; the running process is the same)."""
    costs = []
    for label, argv in START_WAYS:
        before = os.times()
        started = time.monotonic()
        for _ in range(starts):
            subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
        wall = time.monotonic() - started
        after = os.times()
        cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
        costs.append({"way": label, "argv": argv, "starts": starts, "cpu_ms_per_start": 1000 * cpu / starts,
                      "wall_ms_per_start": 1000 * wall / starts})
    return costs


def report_start_costs(costs):
    print(f"starting a command ({costs[0]['starts']} starts of `tail --version` each): per start")
    for cost in costs:
        print(f"  {cost['way']:42} CPU {cost['cpu_ms_per_start']:.2f} ms, wall {cost['wall_ms_per_start']:.2f} ms")


def process_names(pids):
    """{command name: how many} over `pids` that still run."""
    names = {}
    for pid in pids:
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except (FileNotFoundError, ProcessLookupError):
            continue
        names[name] = names.get(name, 0) + 1
    return names


def report_command_processes(shapes):
    print(f"{COMMANDS} `@tail -F` checks alone: the processes below monitord")
    print(f"{'shape':44} {'processes':>9}  {'by name':18} {'PSS MiB':>8} {'RSS MiB':>8} {'monitord PSS MiB':>17}")
    for shape in shapes:
        by_name = ", ".join(f"{count} {name}" for name, count in sorted(shape["by_name"].items()))
        print(f"{shape['shape']:44} {shape['processes']:>9}  {by_name:18} {shape['pss_kib'] / 1024:>8.2f} "
              f"{shape['rss_kib'] / 1024:>8.1f} {shape['monitord_pss_kib'] / 1024:>17.2f}")


def monit_control_file(work):
    folder = work / "monit"
    folder.mkdir()
    lines = ["set daemon 2", f"set logfile {folder}/monit.log", f"set pidfile {folder}/monit.pid",
             f"set idfile {folder}/monit.id", f"set statefile {folder}/monit.state", ""]
    for index in range(LOG_FILES):
        lines += [f"check file app-{index} with path {work}/logs/app-{index}.log",
                  '    if content = "ERROR" then alert', ""]
    for index in range(SERVICES):
        lines += [f'check process bench-svc-{index} matching "^bench-svc-{index} "',
                  "    if does not exist then alert", ""]
    for index in range(COMMANDS):
        lines += [f'check program cmd-{index} with path "/usr/bin/tail -n 5 {work}/logs/app-{index}.log"',
                  "    if status != 0 then alert", ""]
    control = folder / "monitrc"
    control.write_text("\n".join(lines))
    control.chmod(0o600)  # monit refuses a control file others can read
    return control


def fill_logs(work, lines):
    """The 20 log files, each holding `lines` lines (none by default), as before any run: an
    agent new to a file reads what it holds (up to log_first_read_limit)."""
    line = "Nov 22 00:21:21 edge-gw-07 app[4242]: INFO request served id=0000000000 in 3ms status=200\n"
    for index in range(LOG_FILES):
        (work / f"logs/app-{index}.log").write_text(line * lines)


def measure_before(folder, arguments, work, manager):
    """An older build (its monitord and monitorctl in `folder`) with the same 50 checks in a
    state folder of its own: idle and load windows, as for this build."""
    monitord, monitorctl = str(folder / "monitord"), str(folder / "monitorctl")
    env = setup(work, monitorctl, manager, name="before")
    fill_logs(work, arguments.backlog_lines)  # as this build found them, not as its load left them
    print(f"monitord of {folder}: idle {arguments.idle_seconds:g} s, then load {arguments.load_seconds:g} s ...",
          file=sys.stderr)
    agent, _, _ = start_agent(monitord, monitorctl, env)
    try:
        time.sleep(arguments.settle)
        idle, load = measure_both_windows(agent.pid, arguments, work, descendants(agent.pid))
    finally:
        stop(agent)
    return {"folder": str(folder), "idle": idle, "load": load}


def measure_both_windows(pid, arguments, work, children=()):
    """The idle window, then the load window, of `pid`."""
    idle = measure(pid, arguments.idle_seconds, children)
    writer = start_writer(work / "logs", arguments.load_rate, arguments.load_seconds + 2)
    try:
        time.sleep(1)  # warm-up: the readers are at their steady pace
        load = measure(pid, arguments.load_seconds, children)
    finally:
        writer.wait()
    return idle, load


def start_services(work):
    """A `systemd --user` manager running the 20 units the service checks watch."""
    manager = UserManager(work / "systemd")
    for index in range(SERVICES):
        (manager.dir / f"config/systemd/user/bench-svc-{index}.service").write_text(
            f"[Service]\nExecStart=@/bin/sleep bench-svc-{index} infinity\n")
    manager.systemctl("daemon-reload")
    started = manager.systemctl("start", *[f"bench-svc-{index}" for index in range(SERVICES)])
    if started.returncode != 0:
        manager.stop()
        raise SystemExit(f"cannot start the units: {started.stderr}")
    return manager


def measure_load(pid, arguments, work, children=()):
    """The load window of `pid`: the writer runs, and after 1 s of warm-up it is measured."""
    writer = start_writer(work / "logs", arguments.load_rate, arguments.load_seconds + 2)
    try:
        time.sleep(1)  # warm-up: the readers are at their steady pace
        return measure(pid, arguments.load_seconds, children)
    finally:
        writer.wait()


def empty_logs(work):
    """Cut the log files back to nothing between windows (nothing follows them then), so
    that a long comparison does not fill the disk."""
    for index in range(LOG_FILES):
        os.truncate(work / f"logs/app-{index}.log", 0)


def load_comparison(arguments, monitord, monitorctl, monit, work, manager):
    """--load-only: the load window of each agent build or setting (--before's build, this
    build, this build with each --coalesce) and of monit, one after the other, --rounds
    times, so that a slower minute of the shared machine hits every contender alike."""
    contenders = []
    if arguments.before:
        contenders.append((f"before ({arguments.before})", str(Path(arguments.before) / "monitord"),
                           str(Path(arguments.before) / "monitorctl"), ""))
    contenders.append(("monitord", monitord, monitorctl, ""))
    for coalesce in arguments.coalesce or []:
        contenders.append((f"monitord, log_coalesce {coalesce}", monitord, monitorctl,
                           f"log_coalesce: {coalesce}\n"))
    environments = {label: setup(work, its_monitorctl, manager, f"agent-{index}", settings)
                    for index, (label, _, its_monitorctl, settings) in enumerate(contenders)}
    control = monit_control_file(work) if monit else None
    samples = {label: [] for label, *_ in contenders}
    if monit:
        samples["monit"] = []
    for round_number in range(arguments.rounds):
        for label, its_monitord, its_monitorctl, _ in contenders:
            print(f"round {round_number + 1}: {label} ...", file=sys.stderr)
            empty_logs(work)
            agent, _, _ = start_agent(its_monitord, its_monitorctl, environments[label])
            try:
                time.sleep(arguments.settle)
                children = descendants(agent.pid)
                samples[label].append(measure_load(agent.pid, arguments, work, children))
            finally:
                stop(agent)
        if monit:
            print(f"round {round_number + 1}: monit ...", file=sys.stderr)
            empty_logs(work)
            process = subprocess.Popen([monit, "-I", "-c", str(control)], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            try:
                time.sleep(arguments.settle)
                samples["monit"].append(measure_load(process.pid, arguments, work))
            finally:
                stop(process)
    return samples


def total_cpu_percent(sample):
    """A contender's CPU with its children: monitord's `@command`s, monit's check programs."""
    children = sample.get("children", {}).get("cpu_percent", 0)
    waited = 100 * sample["waited_children_cpu_seconds"] / sample["seconds"]
    return sample["cpu_percent"] + children + waited


def report_load_comparison(samples, arguments):
    print(f"Load window: {arguments.load_rate:,} lines/s ({arguments.load_rate // 10:,} writes/s) over {LOG_FILES} "
          f"files, {arguments.load_seconds:g} s each, {arguments.rounds} rounds alternating; 50 checks; "
          f"medians, range over the rounds")
    print(f"{'contender':44} {'CPU %':>6} {'children %':>10} {'total %':>8} {'range':>13} {'wake-ups/s':>11} "
          f"{'children w/s':>12} {'ratio to monit':>15}")
    monit_total = statistics.median(total_cpu_percent(sample) for sample in samples["monit"]) \
        if samples.get("monit") else None
    for label, runs in samples.items():
        totals = [total_cpu_percent(sample) for sample in runs]
        own = statistics.median(sample["cpu_percent"] for sample in runs)
        children = statistics.median(total - sample["cpu_percent"] for total, sample in zip(totals, runs))
        wakeups = statistics.median(sample["wakeups_per_second"] for sample in runs)
        child_wakeups = statistics.median(sample.get("children", {}).get("wakeups_per_second", 0) for sample in runs)
        ratio = f"{statistics.median(totals) / monit_total:.2f}" if monit_total else "-"
        print(f"{label:44} {own:>6.2f} {children:>10.2f} {statistics.median(totals):>8.2f} "
              f"{min(totals):>6.2f}..{max(totals):<6.2f} {wakeups:>11.1f} {child_wakeups:>12.1f} {ratio:>15}")
    for label, runs in samples.items():
        per_thread = {}
        for sample in runs:
            for thread, rate in sample["wakeups_per_thread"].items():
                name = thread.rsplit(" (", 1)[0]
                per_thread.setdefault(name, []).append(rate)
        busiest = sorted(((name, sum(rates) / len(runs)) for name, rates in per_thread.items()),
                         key=lambda item: -item[1])
        print(f"  {label} wake-ups/s by thread: " + ", ".join(f"{name} {rate:.0f}" for name, rate in busiest if rate >= 0.5))
    print("children: monitord's 10 `@tail -F` processes; monit's check program runs (cutime + cstime, 10 ms ticks)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle-seconds", type=float, default=60, help="idle window (default 60)")
    parser.add_argument("--load-seconds", type=float, default=30, help="load window (default 30)")
    parser.add_argument("--load-rate", type=int, default=10000, help="lines/s over the 20 files under load")
    parser.add_argument("--starts", type=int, default=5, help="agent starts timed (default 5)")
    parser.add_argument("--settle", type=float, default=5, help="seconds after start before measuring (default 5)")
    parser.add_argument("--backlog-lines", type=int, default=0,
                        help="lines each log file holds before the agent starts (default 0)")
    parser.add_argument("--no-build", action="store_true", help="use the release binaries as they are")
    parser.add_argument("--commands-only", action="store_true",
                        help="only the processes of 10 `@tail -F` checks, in both shapes")
    parser.add_argument("--before", metavar="DIR",
                        help="also an older build's monitord and monitorctl in DIR, measured the same way "
                             "right after this build (with --commands-only: the commands as written; "
                             "with --load-only: in turn with the others)")
    parser.add_argument("--load-only", action="store_true",
                        help="only the load window, of each build and setting and of monit, alternating")
    parser.add_argument("--coalesce", action="append", metavar="DURATION",
                        help="with --load-only: also this build with `log_coalesce: DURATION` (repeatable)")
    parser.add_argument("--rounds", type=int, default=3, help="with --load-only: rounds of every contender (default 3)")
    parser.add_argument("--writer", metavar="DIR", help=argparse.SUPPRESS)  # internal: be the writer process
    arguments = parser.parse_args()
    if arguments.writer:
        write_lines(arguments.writer, arguments.load_rate, arguments.load_seconds, LOG_FILES)
        return
    monitord, monitorctl = build(arguments.no_build)
    monit = find_monit()

    work = Path(tempfile.mkdtemp(prefix="monitor-bench-footprint-"))
    (work / "logs").mkdir()
    fill_logs(work, arguments.backlog_lines)
    results = {"machine": machine_info(), "idle_seconds": arguments.idle_seconds,
               "load_seconds": arguments.load_seconds, "load_rate": arguments.load_rate}
    if arguments.commands_only:
        try:
            shapes = command_processes(monitord, monitorctl, work, arguments.before)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        costs = start_costs()
        report_command_processes(shapes)
        report_start_costs(costs)
        out = ROOT / "bench/results"
        out.mkdir(parents=True, exist_ok=True)
        (out / "footprint_commands.json").write_text(
            json.dumps({"machine": machine_info(), "command_shapes": shapes, "start_costs": costs}, indent=2) + "\n")
        return
    if arguments.load_only:
        manager = None
        try:
            manager = start_services(work)
            samples = load_comparison(arguments, monitord, monitorctl, monit, work, manager)
        finally:
            if manager:
                manager.stop()
            shutil.rmtree(work, ignore_errors=True)
        report_load_comparison(samples, arguments)
        out = ROOT / "bench/results"
        out.mkdir(parents=True, exist_ok=True)
        (out / "footprint_load.json").write_text(
            json.dumps({**results, "rounds": arguments.rounds, "samples": samples}, indent=2) + "\n")
        return
    manager = None
    try:
        print("monitord: command processes ...", file=sys.stderr)
        results["command_shapes"] = command_processes(monitord, monitorctl, work)
        manager = start_services(work)
        env = setup(work, monitorctl, manager)

        print("monitord: startups ...", file=sys.stderr)
        startups, all_known, notified, unknown_after_ready = [], [], [], []
        for _ in range(arguments.starts):
            notify = {}
            agent, ready, known = start_agent(monitord, monitorctl, env, notify)
            startups.append(ready)
            all_known.append(known)
            notified.append(notify["ready"])
            unknown_after_ready.append(notify["unknown"])
            stop(agent)
        agent, _, _ = start_agent(monitord, monitorctl, env)
        try:
            time.sleep(arguments.settle)
            results["check_states"] = check_states(monitorctl, env)
            children = descendants(agent.pid)
            print(f"monitord: idle {arguments.idle_seconds:g} s, then load {arguments.load_seconds:g} s ...",
                  file=sys.stderr)
            idle, load = measure_both_windows(agent.pid, arguments, work, children)
        finally:
            stop(agent)
        # Sanity: under load the agent saw the ERROR lines (one CRITICAL per log check).
        history = Path(env["MONITOR_STATE_DIR"]) / "alerts.jsonl"
        records = [json.loads(line) for line in history.read_text().splitlines()] if history.exists() else []
        results["agent_critical_checks"] = len({record["check"]["name"] for record in records
                                                if record["level"] == "CRITICAL"})
        results["monitord"] = {"startup_seconds": startups, "all_checks_known_seconds": all_known,
                               "ready_notified_seconds": notified,
                               "unknown_right_after_ready": unknown_after_ready,
                               "idle": idle, "load": load}
        if arguments.before:
            results["before"] = measure_before(Path(arguments.before), arguments, work, manager)

        if monit:
            fill_logs(work, arguments.backlog_lines)
            control = monit_control_file(work)
            checked = subprocess.run([monit, "-t", "-c", str(control)], capture_output=True, text=True)
            if checked.returncode != 0:
                raise SystemExit(f"monit rejects its control file: {checked.stdout}{checked.stderr}")
            process = subprocess.Popen([monit, "-I", "-c", str(control)], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            try:
                time.sleep(arguments.settle)
                print(f"monit: idle {arguments.idle_seconds:g} s, then load {arguments.load_seconds:g} s ...",
                      file=sys.stderr)
                monit_idle, monit_load = measure_both_windows(process.pid, arguments, work)
            finally:
                stop(process)
            # Sanity: monit read the files (it logs each content match).
            log = (control.parent / "monit.log").read_text(errors="replace") if (control.parent / "monit.log").exists() else ""
            results["monit_content_matches_logged"] = log.count("content match")
            version = subprocess.run([monit, "-V"], capture_output=True, text=True).stdout.split("\n")[0]
            results["monit"] = {"version": version, "idle": monit_idle, "load": monit_load}
    finally:
        if manager:
            manager.stop()
        shutil.rmtree(work, ignore_errors=True)

    report(results, arguments)
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "footprint.json").write_text(json.dumps(results, indent=2) + "\n")


def report(results, arguments):
    agent = results["monitord"]
    startups = agent["startup_seconds"]
    print(f"Footprint with 50 checks ({LOG_FILES} log files, {SERVICES} services, {COMMANDS} commands); "
          f"idle {arguments.idle_seconds:g} s, load {arguments.load_rate:,} lines/s over {LOG_FILES} files "
          f"for {arguments.load_seconds:g} s")
    print(f"{'process':34} {'window':6} {'RSS MiB':>8} {'peak MiB':>9} {'PSS MiB':>8} {'anon MiB':>9} {'CPU s':>8} {'CPU %':>7} "
          f"{'wake-ups/s':>11} {'fds':>5} {'threads':>8}")

    def row(name, window, sample):
        print(f"{name:34} {window:6} {sample['rss_kib'] / 1024:>8.1f} {sample['hwm_kib'] / 1024:>9.1f} "
              f"{sample['pss_kib'] / 1024:>8.1f} {sample['anon_kib'] / 1024:>9.1f} {sample['cpu_seconds']:>8.3f} "
              f"{sample['cpu_percent']:>7.2f} {sample['wakeups_per_second']:>11.2f} {sample['fds']:>5} {sample['threads']:>8}")

    def children_row(name, window, sample):
        print(f"{name:34} {window:6} {sample['rss_kib'] / 1024:>8.1f} {'-':>9} {sample['pss_kib'] / 1024:>8.1f} "
              f"{'-':>9} {sample['cpu_seconds']:>8.3f} {sample['cpu_percent']:>7.2f} {sample['wakeups_per_second']:>11.2f} "
              f"{'-':>5} {'-':>8}")

    for window in ("idle", "load"):
        row("monitord", window, agent[window])
        if "children" in agent[window]:
            children = agent[window]["children"]
            children_row(f"  its {COMMANDS} commands ({children['count']} {'/'.join(children['names'])})",
                         window, children)
    before = results.get("before")
    if before:
        for window in ("idle", "load"):
            row(f"monitord before ({Path(before['folder']).name})", window, before[window])
    monit = results.get("monit")
    if monit:
        for window in ("idle", "load"):
            row(f"monit ({monit['version'].split()[-1] if monit['version'] else ''}, daemon 2)", window,
                monit[window])
            waited = monit[window]["waited_children_cpu_seconds"]
            print(f"{'  its check program runs':34} {window:6} {'-':>8} {'-':>9} {'-':>8} {waited:>8.3f} "
                  f"{100 * waited / monit[window]['seconds']:>7.2f} {'-':>11} {'-':>5} {'-':>8}")
        print("ratios monitord / monit: " + ", ".join(
            f"{window} RSS {agent[window]['rss_kib'] / monit[window]['rss_kib']:.2f}, "
            f"{window} CPU {agent[window]['cpu_seconds'] / max(monit[window]['cpu_seconds'], 1e-9):.2f}, "
            f"{window} wake-ups {agent[window]['wakeups_per_second'] / max(monit[window]['wakeups_per_second'], 1e-9):.2f}"
            for window in ("idle", "load")))
    else:
        print("monit: not installed (apt-get install monit, as root)")
    for label, values in (("startup to READY=1 (sd_notify)", agent["ready_notified_seconds"]),
                          ("startup to ready (status answers)", startups),
                          ("startup to every check known", agent["all_checks_known_seconds"])):
        print(f"{label:34} median {statistics.median(values) * 1000:5.0f} ms "
              f"(min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f}, {len(values)} starts, 50 checks)")
    print(f"checks unknown in the first status after READY=1: {agent['unknown_right_after_ready']}")
    print(f"check states while measured: {results['check_states']}; under load monitord raised CRITICAL on "
          f"{results['agent_critical_checks']} checks"
          + (f", monit logged {results['monit_content_matches_logged']} content matches" if monit else ""))
    idle, peak = agent["idle"]["rss_kib"], agent["load"]["hwm_kib"]
    print(f"targets: RSS under 10 MiB: idle {idle / 1024:.1f} MiB ({'met' if idle < 10240 else 'NOT met'}), "
          f"peak under load {peak / 1024:.1f} MiB ({'met' if peak < 10240 else 'NOT met'}); "
          f"idle CPU ~0: {agent['idle']['cpu_seconds'] * 1000:.1f} ms over {agent['idle']['seconds']:.0f} s; "
          f"idle wake-ups {agent['idle']['wakeups_per_second']:.2f}/s")
    for label, sample in (("monitord", agent["idle"]), *((("before", before["idle"]),) if before else ())):
        print(f"{label} threads idle: " + ", ".join(f"{count} {name}" for name, count in
                                                     sorted(sample["thread_names"].items())))
    if before and monit:
        print("ratios to monit, idle RSS: " + ", ".join(
            f"{label} {sample['rss_kib'] / monit['idle']['rss_kib']:.2f}"
            for label, sample in (("monitord", agent["idle"]), ("before", before["idle"]))))
    busiest = sorted(agent["idle"]["wakeups_per_thread"].items(), key=lambda item: -item[1])[:3]
    print("idle wake-ups by thread: " + ", ".join(f"{name} {rate:.2f}/s" for name, rate in busiest))
    report_command_processes(results["command_shapes"])


if __name__ == "__main__":
    sys.exit(main())
