"""What the benchmark scripts share: percentiles, the machine they ran on, the release
binaries, and a process's CPU time."""

import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
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


class UserManager:
    """A real `systemd --user` manager in a private mount namespace (as in the tests), with
    its own runtime folder and session bus under `folder` (a new temp folder by default)."""

    def __init__(self, folder=None):
        self.dir = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="monitor-bench-"))
        (self.dir / "run").mkdir(mode=0o700, parents=True)
        (self.dir / "config/systemd/user").mkdir(parents=True)
        self.env = dict(os.environ)
        self.env.update(
            XDG_RUNTIME_DIR=str(self.dir / "run"),
            XDG_CONFIG_HOME=str(self.dir / "config"),
            DBUS_SESSION_BUS_ADDRESS=f"unix:path={self.dir}/run/bus",
        )
        # A cgroup of its own first, as tests/support/user_manager.rs does: managers started
        # from the same cgroup share (and kill) each other's units, tests' managers included.
        cgroup = self.dir.name
        claim_cgroup = "".join(
            f'if [ -f "{hierarchy}/cgroup.procs" ] && mkdir -p "{hierarchy}/{cgroup}" 2>/dev/null; then '
            f'echo $$ > "{hierarchy}/{cgroup}/cgroup.procs" || exit 1; fi; '
            for hierarchy in ("/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"))
        # setsid, unshare and sh all exec: self.process is the manager itself.
        self.process = subprocess.Popen(
            ["setsid", "unshare", "-m", "sh", "-c",
             claim_cgroup + "mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/system && exec /lib/systemd/systemd --user"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if (self.dir / "run/bus").exists() and self.systemctl("show-environment").returncode == 0:
                return
            time.sleep(0.05)
        raise SystemExit("systemd --user did not start")

    def systemctl(self, *args):
        return subprocess.run(["systemctl", "--user", *args], env=self.env, capture_output=True, text=True)

    def install(self, name, text):
        (self.dir / "config/systemd/user" / name).write_text(text)
        self.systemctl("daemon-reload")

    def wait_active(self, unit):
        deadline = time.monotonic() + 10
        while self.systemctl("is-active", unit).stdout.strip() != "active":
            if time.monotonic() > deadline:
                raise SystemExit(f"{unit} did not become active")
            time.sleep(0.01)

    def stop(self):
        # The manager stops its units (and the session bus) when it is told to exit.
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        # Its cgroups, deepest first (best effort: one still holding a process stays).
        for hierarchy in ("/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
            for folder, _, _ in sorted(os.walk(f"{hierarchy}/{self.dir.name}"), reverse=True):
                try:
                    os.rmdir(folder)
                except OSError:
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)
