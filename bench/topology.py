"""The bench's hosts and paths, and what it makes on this machine: the network,
the systemd containers and their image (all labelled ogdbench, nothing else is
touched), the client's files and the Ansible inventory of a run."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.ogd import containers, roles  # noqa: E402
from tools.ogd.common import cache_lock, log_path, run_captured  # noqa: E402
from tools.ogd.docker import apt_build_script, build_image, image_id, image_label  # noqa: E402
from tools.ogd.images import BASE_IMAGE, IMAGE_CMD, PKGS_IMAGE, ensure_pkgs_image  # noqa: E402

PREFIX = "ogdbench"
# Per run: the instance secret the clients send (Authorization: Bearer) and the
# login of the password gate in front of the web app (the API paths measured
# here are not behind it). Random, never written anywhere but the work
# directory's inventory (0600).
BENCH_SECRET = "og_" + __import__("secrets").token_urlsafe(32)
BENCH_LOGIN = {"name": "bench", "password": __import__("secrets").token_urlsafe(24)}
# --package PATH: a packed release deployed instead of the stand-in
# ({"path", "version"}); None: the stand-in.
PACKAGE: dict | None = None
LABEL = "ogdbench"  # on every container/network we create; nothing else is touched
NETWORK = f"{PREFIX}-net"
DOMAIN = "ogdbench.test"
BENCH_IMAGE = f"{PREFIX}-image:trixie"
BENCH_IMAGE_LABEL = "ogdbench.recipe"
BENCH_IMAGE_REVISION = 2
# The image of the proxy hosts, the client and Pebble: hostprep's ogd-pkgs:trixie
# (what the roles, the guide setups and Pebble install, proxies disabled) plus
# what only the bench needs.
BENCH_IMAGE_PACKAGES = (
    "wrk",
    "openssh-server",  # the no-change rerun over SSH, as production runs it
)
CLIENT_DIR = "/opt/ogdbench"
PEBBLE_ROOT = "/opt/ogd-probes/pebble-root.pem"  # fetched by molecule/shared/prepare.yml
UPLOAD_BYTES = 40_000_000
APP_PORT = 3000
KEEPALIVE_PORT = 8443
# The TLS-only ceilings: the same proxy software, certificate and TLS settings
# answering /api/v1/health itself, without proxying to Opengram.
CEILING_PORT = 8444
# Our Caddy site with `transport http { compression off }` toggled, served by a
# second Caddy on the ours-caddy host (bench only, like the nginx variant).
CADDY_VARIANT_PORT = 8445
CEILING_BODY = '{"status":"ok"}'


class BenchError(RuntimeError):
    pass


@dataclass(frozen=True)
class Host:
    name: str  # container name = inventory hostname
    domain: str
    role: str  # ours-caddy | ours-nginx | guide-caddy | guide-nginx | pebble | client | fleet | vendor
    image: str


@dataclass(frozen=True)
class BenchPath:
    name: str
    label: str
    url: str  # base URL the client uses
    host: str  # container of the app behind it (SSE chats are created there, directly)
    kind: str  # direct | ours | guide | variant | ceiling (throughput and handshakes only)


def cname(short: str) -> str:
    return f"{PREFIX}-{short}"


PEBBLE = Host(cname("pebble"), "pebble", "pebble", BENCH_IMAGE)
CLIENT = Host(cname("client"), cname("client"), "client", BENCH_IMAGE)
PROXY_HOSTS = (
    Host(cname("ours-caddy"), f"ours-caddy.{DOMAIN}", "ours-caddy", BENCH_IMAGE),
    Host(cname("ours-nginx"), f"ours-nginx.{DOMAIN}", "ours-nginx", BENCH_IMAGE),
    Host(cname("guide-caddy"), f"guide-caddy.{DOMAIN}", "guide-caddy", BENCH_IMAGE),
    Host(cname("guide-nginx"), f"guide-nginx.{DOMAIN}", "guide-nginx", BENCH_IMAGE),
)


def fleet_hosts(n: int, image: str = BASE_IMAGE, short: str = "fleet") -> list[Host]:
    """n Caddy hosts ogdbench-<short>-1..n of image (the deployment-cost hosts)."""
    return [Host(cname(f"{short}-{i}"), f"{short}-{i}.{DOMAIN}", "fleet", image)
            for i in range(1, n + 1)]


def bench_paths() -> list[BenchPath]:
    caddy, nginx, gcaddy, gnginx = PROXY_HOSTS
    return [
        BenchPath("direct", "direct to Opengram (HTTP :3000)", f"http://{caddy.name}:{APP_PORT}",
                  caddy.name, "direct"),
        BenchPath("ours-caddy", "our Caddy (roles/caddy)", f"https://{caddy.domain}", caddy.name,
                  "ours"),
        BenchPath("ours-nginx", "our nginx (roles/nginx)", f"https://{nginx.domain}", nginx.name,
                  "ours"),
        BenchPath("guide-caddy", "upstream guide's Caddy", f"https://{gcaddy.domain}", gcaddy.name,
                  "guide"),
        BenchPath("guide-nginx", "upstream guide's nginx + certbot", f"https://{gnginx.domain}",
                  gnginx.name, "guide"),
    ]


def ceiling_paths() -> list[BenchPath]:
    caddy, nginx = PROXY_HOSTS[0], PROXY_HOSTS[1]
    return [
        BenchPath("ceiling-caddy", "ceiling: Caddy's TLS answering itself, no proxying",
                  f"https://{caddy.domain}:{CEILING_PORT}", caddy.name, "ceiling"),
        BenchPath("ceiling-nginx", "ceiling: our nginx TLS server answering itself, no proxying",
                  f"https://{nginx.domain}:{CEILING_PORT}", nginx.name, "ceiling"),
    ]


def caddy_variant_path(name: str, label: str) -> BenchPath:
    caddy = PROXY_HOSTS[0]
    return BenchPath(name, label, f"https://{caddy.domain}:{CADDY_VARIANT_PORT}", caddy.name, "variant")


def variant_path(name: str, label: str) -> BenchPath:
    nginx = PROXY_HOSTS[1]
    return BenchPath(name, label, f"https://{nginx.domain}:{KEEPALIVE_PORT}", nginx.name, "variant")


# ---------------------------------------------------------------------------
# process and docker helpers
# ---------------------------------------------------------------------------

T0 = time.monotonic()


def say(msg: str = "") -> None:
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}" if msg else "", flush=True)


def run(cmd: list[str], *, check: bool = True, timeout: float = 300, input: str | None = None,
        **kw) -> subprocess.CompletedProcess:
    return run_captured(cmd, error=BenchError, check=check, timeout=timeout, input=input, **kw)


def dexec(container: str, *cmd: str, timeout: float = 300, check: bool = True,
          input: str | None = None) -> subprocess.CompletedProcess:
    return run(["docker", "exec", *(["-i"] if input is not None else []), container, *cmd],
               timeout=timeout, check=check, input=input)


def our_objects(kind: str) -> list[str]:
    """Names of our containers or networks: our label AND our name prefix."""
    if kind == "container":
        out = run(["docker", "ps", "-a", "--filter", f"label={LABEL}", "--format", "{{.Names}}"]).stdout
    else:
        out = run(["docker", "network", "ls", "--filter", f"label={LABEL}",
                   "--format", "{{.Name}}"]).stdout
    return [n for n in out.split() if n.startswith(f"{PREFIX}-")]


def remove_containers(names: list[str]) -> None:
    mine = set(our_objects("container"))
    names = [n for n in names if n in mine]
    if names:
        run(["docker", "rm", "--force", "--volumes", *names], check=False, timeout=180)


def cleanup_all() -> None:
    remove_containers(our_objects("container"))
    for net in our_objects("network"):
        run(["docker", "network", "rm", net], check=False)


def other_containers() -> list[str]:
    out = run(["docker", "ps", "--format", "{{.Names}}"], check=False).stdout.split()
    return [n for n in out if not n.startswith(f"{PREFIX}-")]


def ensure_network() -> None:
    if NETWORK not in our_objects("network"):
        existing = run(["docker", "network", "inspect", NETWORK], check=False)
        if existing.returncode == 0:
            raise BenchError(f"a docker network {NETWORK} exists without our label; not touching it")
        run(["docker", "network", "create", "--label", f"{LABEL}=1", NETWORK])


def create_containers(hosts: list[Host]) -> None:
    for host in hosts:
        if run(["docker", "container", "inspect", host.name], check=False).returncode == 0:
            raise BenchError(f"a container {host.name} exists without our label; not touching it")
        run(containers.systemd_run_cmd(host.name, host.image, NETWORK, host.domain, LABEL))
    containers.wait_for_systemd([h.name for h in hosts], 120, BenchError)


# ---------------------------------------------------------------------------
# the cached image of the proxy hosts
# ---------------------------------------------------------------------------


def bench_image_key() -> str:
    base = image_id(PKGS_IMAGE) or ""
    recipe = {"revision": BENCH_IMAGE_REVISION, "base": base,
              "packages": sorted(BENCH_IMAGE_PACKAGES)}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def ensure_bench_image() -> str:
    """ogd-pkgs:trixie (hostprep) + BENCH_IMAGE_PACKAGES, cached by recipe."""
    ensure_pkgs_image()
    with cache_lock("ogdbench-image"):
        key = bench_image_key()
        if image_label(BENCH_IMAGE, BENCH_IMAGE_LABEL) == key:
            return "cached"
        builder = cname("image-build")
        remove_containers([builder])
        t0 = time.monotonic()
        build_image(BENCH_IMAGE, PKGS_IMAGE, apt_build_script(BENCH_IMAGE_PACKAGES), BENCH_IMAGE_LABEL,
                    key, IMAGE_CMD, log_path("ogdbench-image"), builder, ("--label", f"{LABEL}=1"))
        return f"built in {time.monotonic() - t0:.0f} s"


# ---------------------------------------------------------------------------
# the client and the inventory
# ---------------------------------------------------------------------------


def prepare_client() -> None:
    dexec(CLIENT.name, "mkdir", "-p", CLIENT_DIR)
    for name in ("client.py", "wrk_report.lua"):
        run(["docker", "cp", str(BENCH / name), f"{CLIENT.name}:{CLIENT_DIR}/{name}"])
    dexec(CLIENT.name, "sh", "-c",
          f"test -s {CLIENT_DIR}/upload.bin || head -c {UPLOAD_BYTES} /dev/urandom > {CLIENT_DIR}/upload.bin")
    if run(["docker", "exec", CLIENT.name, "sh", "-c", "command -v wrk"], check=False).returncode:
        dexec(CLIENT.name, "sh", "-c", "apt-get update -q && apt-get install -y -q wrk", timeout=600)


def enable_ssh(host: Host, work: Path) -> dict:
    """sshd with a bench key in the container; the host vars to reach it over SSH."""
    key = work / "ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ogdbench", "-f", str(key)])
    dexec(host.name, "sh", "-c", "umask 077 && mkdir -p /root/.ssh && "
          "cat > /root/.ssh/authorized_keys", input=key.with_suffix(".pub").read_text())
    dexec(host.name, "systemctl", "enable", "--now", "ssh")
    ip = run(["docker", "inspect", "--format",
              "{{ (index .NetworkSettings.Networks \"%s\").IPAddress }}" % NETWORK, host.name]).stdout.strip()
    return {"ansible_connection": "ssh", "ansible_host": ip, "ansible_user": "root",
            "ansible_ssh_private_key_file": str(key), "ansible_ssh_pipelining": True,
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                                       "-o LogLevel=ERROR"}


def write_inventory(work: Path, hosts: list[Host], overrides: dict[str, dict] | None = None,
                    name: str = "inventory.yml", opengram_vars: dict | None = None) -> Path:
    """The run's inventory: overrides are host variables by host name;
    opengram_vars are added to the opengram group's variables (every app host);
    a host of role vendor serves the vendor repositories (group vendor_repo,
    molecule/shared/vendor_repo.yml)."""
    artifacts = work / "artifacts"
    version = roles.role_default("opengram_version", error=BenchError)
    connection = {"ansible_connection": "community.docker.docker", "ansible_pipelining": True,
                  "ansible_become": False}
    groups: dict[str, dict] = {"acme": {}, "clients": {}, "opengram": {}, "guide_nginx": {},
                               "guide_caddy": {}, "vendor_repo": {}}
    for h in hosts:
        hv = {**connection, **(overrides or {}).get(h.name, {})}
        if h.role == "pebble":
            groups["acme"][h.name] = hv
        elif h.role == "client":
            groups["clients"][h.name] = hv
        elif h.role == "vendor":
            groups["vendor_repo"][h.name] = hv
        else:
            hv["opengram_domain"] = h.domain
            hv["opengram_proxy"] = {"ours-caddy": "caddy", "fleet": "caddy",
                                    "ours-nginx": "nginx"}.get(h.role, "none")
            if h.role.startswith("guide-"):
                hv["ogdbench_domain"] = h.domain
                groups[h.role.replace("-", "_")][h.name] = {}
            groups["opengram"][h.name] = hv
    inventory = {"all": {
        "vars": {"ogd_test_artifacts": str(artifacts), "ogd_test_standin_version": version},
        "children": {
            "acme": {"hosts": groups["acme"]},
            "clients": {"hosts": groups["clients"]},
            "opengram": {"hosts": groups["opengram"], "vars": {
                # The offline stand-in (test fixture) or the packed release of
                # --package, from a tarball; Pebble as the ACME CA.
                **({"opengram_npm_tarball": str(artifacts / f"opengramsh-opengram-{version}.tgz"),
                    "opengram_version": version,
                    # the stand-in's own lock, written beside its tarball
                    "opengram_npm_locks_dir": str(artifacts / "locks")} if PACKAGE is None else
                   {"opengram_npm_tarball": PACKAGE["path"], "opengram_version": PACKAGE["version"],
                    # its dependencies come from the npm registry, reached
                    # through this machine's CA bundle (as inventories/sandbox)
                    "opengram_npm_ca_file": "/etc/ssl/certs/ca-certificates.crt"}),
                "opengram_instance_secret": BENCH_SECRET,
                "opengram_access_users": [BENCH_LOGIN],
                "opengram_tls_mode": "acme",
                "opengram_acme_email": f"bench@{DOMAIN}",
                "opengram_acme_directory": "https://pebble:14000/dir",
                "opengram_acme_ca_bundle_src": str(artifacts / "pebble-listener-ca.pem"),
                "opengram_selfcheck_validate_certs": False,
                # Bench needs: many writes per second (SSE events), and the app's
                # port reachable from the client for the "direct" path.
                "opengram_write_rate_limit_max": 1000000,
                "opengram_write_rate_limit_window_ms": 1000,
                "opengram_firewall": False,
                "ogdbench_acme_directory": "https://pebble:14000/dir",
                "ogdbench_acme_ca_src": str(artifacts / "pebble-listener-ca.pem"),
                **(opengram_vars or {}),
            }},
            "guide_nginx": {"hosts": groups["guide_nginx"]},
            "guide_caddy": {"hosts": groups["guide_caddy"]},
            "vendor_repo": {"hosts": groups["vendor_repo"]},
        }}}
    path = work / name
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(json.dumps(inventory, indent=2) + "\n")
    return path
