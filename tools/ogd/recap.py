"""Reading ansible-playbook's output: the PLAY RECAP counters and the
ansible.posix.profile_tasks summary."""

from __future__ import annotations

import re

_RECAP_HOST = re.compile(r"^(?P<host>\S+)\s*:\s*(?P<counters>ok=\d+.*)$")
_PROFILE_LINE = re.compile(r"^(?P<name>.*?\S) ?-* (?P<seconds>\d+\.\d+)s$")


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    """The counters of each host after the last PLAY RECAP, in their order:
    {'app1': {'ok': 30, 'changed': 0, 'unreachable': 0, 'failed': 0, ...}}."""
    _, sep, tail = output.rpartition("PLAY RECAP")
    recap = {}
    for line in tail.splitlines() if sep else []:
        m = _RECAP_HOST.match(line.strip())
        if m:
            recap[m.group("host")] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group("counters"))}
    return recap


def recap_lines(output: str) -> list[str]:
    """The host lines of the last PLAY RECAP, white space folded."""
    return [f"{host} : " + " ".join(f"{k}={v}" for k, v in counters.items())
            for host, counters in parse_recap(output).items()]


def parse_profile(output: str) -> list[dict]:
    """Tasks of ansible.posix.profile_tasks' summary, in its (descending) order."""
    _, sep, tail = output.rpartition("TASKS RECAP")
    if not sep:
        return []
    lines = tail.splitlines()
    start = next((i for i, ln in enumerate(lines) if re.fullmatch(r"=+", ln.strip())), None)
    if start is None:
        return []
    tasks = []
    for line in lines[start + 1:]:
        m = _PROFILE_LINE.match(line.rstrip())
        if not m:
            if tasks and not line.strip():
                break
            continue
        tasks.append({"task": m.group("name").rstrip(" -"), "seconds": float(m.group("seconds"))})
    return tasks
