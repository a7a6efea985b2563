"""Systemd containers like the Molecule platforms (.config/molecule/config.yml):
the ``docker run`` that starts one, and the wait until systemd inside is up."""

from __future__ import annotations

import time

from tools.ogd.common import HostPrepError, run_captured

# Same as the Molecule platforms (molecule/caddy/molecule.yml).
SYSTEMD_RUN_FLAGS = (
    "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--tmpfs", "/run", "--tmpfs", "/run/lock",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
)


def systemd_run_cmd(name: str, image: str, network: str, alias: str, label: str) -> list[str]:
    """``docker run`` of a detached systemd container ``name`` (also its hostname)
    on ``network`` as ``alias``, labelled ``label=1``."""
    return ["docker", "run", "--detach", "--name", name, "--hostname", name,
            "--label", f"{label}=1", "--network", network, "--network-alias", alias,
            *SYSTEMD_RUN_FLAGS, image, "/lib/systemd/systemd"]


def systemd_state(name: str, error: type[Exception] = HostPrepError) -> str:
    """The last line of ``systemctl is-system-running`` in ``name`` (right after
    the start it fails with "Failed to connect to bus")."""
    proc = run_captured(["docker", "exec", name, "systemctl", "is-system-running"],
                        error=error, check=False, timeout=30)
    answer = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
    return answer[-1] if answer else f"exit {proc.returncode}"


def wait_for_systemd(names: list[str], deadline_s: float,
                     error: type[Exception] = HostPrepError) -> dict[str, str]:
    """Poll until systemd is running or degraded in every container of ``names``;
    their answers by name, or ``error`` after ``deadline_s`` seconds."""
    deadline = time.monotonic() + deadline_s
    answers: dict[str, str] = {}
    waiting = list(names)
    while True:
        for name in list(waiting):
            answers[name] = systemd_state(name, error)
            if answers[name] in ("running", "degraded"):
                waiting.remove(name)
        if not waiting:
            return answers
        if time.monotonic() > deadline:
            last = ", ".join(f"{n}: {answers[n]}" for n in waiting)
            raise error(f"systemd is not up after {deadline_s:.0f} s (last answer {last}); "
                        f"see `docker logs {waiting[0]}`")
        time.sleep(1)
