"""Fixtures shared by every scenario's checks.

Hosts are reached with testinfra's docker backend (docker exec: fast); the
deployment's values come from the scenario's inventory, templated by Ansible.
"""

import base64
import copy
import functools
import json
import os
import shlex
import subprocess
import time

import pytest
import testinfra

from playbook import INVENTORY, PROJECT, run_playbook  # noqa: F401 (the tests import run_playbook from here)

PROBE = "python3 /opt/ogd-probes/probe.py"
PEBBLE_ROOT = "/opt/ogd-probes/pebble-root.pem"

# What the checks need to know about each Opengram host, as Ansible sees it.
_FACTS = (
    '{"domain": opengram_domain, "proxy": opengram_proxy, "version": opengram_version,'
    # Issue 30 item 8: the site's other names (test_aliases.py).
    ' "aliases": opengram_domain_aliases | default([]),'
    # Issue 26: what the release's name derives from (release_name below).
    ' "tarball": opengram_npm_tarball | default(""), "locks_dir": opengram_npm_locks_dir | default(""),'
    ' "token": opengram_instance_secret | default(""), "upload_max": opengram_upload_max_bytes | int,'
    ' "rate_max": opengram_write_rate_limit_max | int, "port": opengram_port | default(3000) | int,'
    ' "rate_window_ms": opengram_write_rate_limit_window_ms | default(1000) | int,'
    ' "switch_test": ogd_test_switch_proxies | default(false) | bool,'
    # Issue 27: where Caddy comes from, and whether this host runs the switch between sources.
    ' "caddy_source": opengram_caddy_source | default("distribution"),'
    ' "caddy_source_switch": ogd_test_caddy_source_switch | default(false) | bool,'
    ' "nodesource_switch": ogd_test_nodesource_switch | default(false) | bool,'
    ' "nodesource_major": opengram_nodesource_major | default(0) | int,'
    # Issue 14: the operator's own sites on this host, {proxy: port} (prepare.yml).
    ' "other_sites": ogd_test_other_sites | default({}),'
    # The first agent and model, when the inventory lists them (else the role's
    # defaults apply, which an ad-hoc ansible does not see: Site asks the app).
    ' "agent": (opengram_agents | default([{}]))[0].id | default(""),'
    ' "model": (opengram_models | default([{}]))[0].id | default(""),'
    # Access gate (issue 11): the test user of the password mode.
    ' "access_user": (opengram_access_users | default([{}]) | first).name | default(""),'
    ' "access_password": (opengram_access_users | default([{}]) | first).password | default("")}'
)


@functools.lru_cache(maxsize=None)
def release_filters():
    """plugins/filter/opengram_release.py: how the role names a release (as
    tools/lock.py loads it)."""
    import sys

    if PROJECT not in sys.path:
        sys.path.insert(0, PROJECT)
    from tools.lock import release

    return release


@functools.lru_cache(maxsize=None)
def release_name(version, tarball, locks_dir):
    """The directory under releases/ the role installs `version` into (from `tarball` and the
    lock in `locks_dir`): <version>+<id>, the id a hash of the package's integrity and the lock."""
    filters = release_filters()
    with open(os.path.join(locks_dir, version, "package-lock.json"), encoding="utf-8") as fh:
        lock = json.load(fh)
    return filters.opengram_release(lock, "@opengramsh/opengram", version,
                                    os.path.basename(tarball) if tarball else "",
                                    filters.opengram_file_integrity(tarball) if tarball else "",
                                    role_allow_scripts())["name"]


def role_allow_scripts():
    """The role's default opengram_npm_allow_scripts (no scenario overrides it)."""
    import yaml

    with open(os.path.join(PROJECT, "roles/opengram/defaults/main.yml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)["opengram_npm_allow_scripts"]


def ansible_json(pattern, expression):
    """Template `expression` for every host matching `pattern`; {host: value}.
    The inventory does not change while the checks run (they pass their
    changes with -e), so each question is asked of Ansible once per session:
    collection alone asked it about sixty times per scenario."""
    return copy.deepcopy(_ansible_json(pattern, expression))


@functools.lru_cache(maxsize=None)
def _ansible_json(pattern, expression):
    env = dict(os.environ, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
               ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.junit")
    out = subprocess.run(
        ["ansible", "-i", INVENTORY, pattern, "-m", "ansible.builtin.debug", "-a", "msg={{ %s | to_json }}" % expression],
        env=env, check=True, capture_output=True, text=True, cwd=PROJECT,
    ).stdout
    result, _ = json.JSONDecoder().raw_decode(out[out.index("{"):])
    hosts = result["plays"][0]["tasks"][0]["hosts"]
    return {name: json.loads(value["msg"]) for name, value in hosts.items()}


def skip_unless_scenario_flag(flag):
    """Skip unless the scenario turns `flag` on for an Opengram host. The
    checks that re-run site.yml on one host (faults, the playbook-output and
    bad-config checks of test_hardening, test_convergence) are switched on
    where each proxy is proven once: `real` (both proxies, the real release)
    or, where it cannot run, its
    stand-in twins `caddy` and `nginx`. Elsewhere (fleet, upgrade) they would
    prove the same thing again per host, at a minute or more per run."""
    if not any(ansible_json("opengram", "%s | default(false) | bool" % flag).values()):
        pytest.skip("%s is off for this scenario" % flag)


@pytest.fixture(scope="session")
def deployment():
    return ansible_json("opengram", _FACTS)


def runs_last(check):
    """Marks a check that builds another release on one host (which then has the build tools
    that test_release.py's one-builder-per-platform check counts): it runs after the others."""
    check.runs_last = True
    return check


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: getattr(getattr(item, "function", None), "runs_last", False))


def pytest_generate_tests(metafunc):
    """`app` runs a check on every Opengram host; `nginx_app` / `caddy_app` only
    on the hosts behind that proxy, `alias_app` / `nginx_alias_app` only on the
    hosts with opengram_domain_aliases (behind nginx) (none in a scenario:
    reported as skipped)."""
    facts = None
    for fixture, proxy in (("app", None), ("nginx_app", "nginx"), ("caddy_app", "caddy"), ("alias_app", None),
                           ("nginx_alias_app", "nginx")):
        if fixture in metafunc.fixturenames:
            facts = facts or ansible_json("opengram", _FACTS)
            hosts = sorted(h for h, f in facts.items() if proxy in (None, f["proxy"])
                           and ("alias" not in fixture or f["aliases"]))
            metafunc.parametrize(fixture, hosts, scope="session")


class Site:
    """One deployed Opengram, seen from a client container."""

    def __init__(self, name, facts, client, other_client):
        self.name = name
        self.host = testinfra.get_host("docker://" + name)
        self.client = client
        self.other_client = other_client
        self.__dict__.update(facts)
        self.base = "https://" + facts["domain"]
        # The release directory the inventory's version and tarball make (issue 26).
        self.release = release_name(self.version, self.tarball, self.locks_dir)
        if not self.token:  # issue 11: generated on the host (see the end of this file)
            self.token = host_instance_secret(self.host)

    def curl(self, *args, client=None):
        """curl from a client that trusts Pebble's root only; returns the command result."""
        command = "curl --silent --show-error --cacert %s --max-time 30 %s" % (
            PEBBLE_ROOT, " ".join(shlex.quote(a) for a in args))
        return (client or self.client).run(command)

    def served_certificate(self):
        """(serial, notBefore) of the certificate the site serves now, seen from the client."""
        result = self.client.run(
            "echo | openssl s_client -connect %s:443 -servername %s -CAfile %s -verify_return_error 2>/dev/null"
            " | openssl x509 -noout -serial -startdate", self.domain, self.domain, PEBBLE_ROOT)
        assert result.rc == 0, result.stderr
        return tuple(line.split("=", 1)[1] for line in result.stdout.splitlines())

    def auth_header(self):
        """The secret as every API client sends it (only the browser's event stream uses ?token=)."""
        return ["-H", "Authorization: Bearer " + self.token] if self.token else []

    def api(self, method, path, *args, client=None, check=True):
        """curl METHOD <base><path> with the secret; (HTTP status, body). With
        check=False a curl error is tolerated when an answer came (a proxy that
        refuses a large body may close the connection while curl still sends)."""
        result = self.curl("-X", method, "--write-out", "\n%{http_code}", *self.auth_header(), *args,
                           self.base + path, client=client)
        assert result.rc == 0 or not check, result.stderr
        body, _, status = result.stdout.rpartition("\n")
        return int(status), body

    def chat_ids(self):
        """(agent id, model id) for new chats: the inventory's first, else the app's
        first in GET /api/v1/config (the role's defaults)."""
        if not (self.agent and self.model):
            status, body = self.api("GET", "/api/v1/config")
            assert status == 200, body
            config = json.loads(body)
            self.agent = self.agent or config["agents"][0]["id"]
            self.model = self.model or config["models"][0]["id"]
        return self.agent, self.model

    def create_chat(self, title):
        """A new chat through the public API, as Opengram wants it (an agent and a model
        of the deployment); returns the chat as the app answered it (snake_case)."""
        agent, model = self.chat_ids()
        status, body = self.write("/api/v1/chats", "-H", "Content-Type: application/json", "-d",
                                  json.dumps({"agentIds": [agent], "modelId": model, "title": title}))
        assert status == 201, body
        chat = json.loads(body)
        assert (chat["title"], chat["agent_ids"], chat["model_id"]) == (title, [self.agent], self.model), chat
        return chat

    def upload(self, path, chat_id=None):
        """Multipart upload of the client's file `path` into a chat's media (a new chat
        unless `chat_id`); (HTTP status, body)."""
        chat_id = chat_id or self.create_chat("uploads-%d" % time.time_ns())["id"]
        return self.write("/api/v1/chats/%s/media" % chat_id, "-F", "file=@" + path, check=False)

    def write(self, path, *args, check=True):
        """POST for a check that stores data (not one about the rate limit): the scenario's
        write limit (per client, per window) may still be spent by the checks before it,
        so a 429 is waited out until the window has passed; (HTTP status, body)."""
        deadline = time.monotonic() + self.rate_window_ms / 1000 + 15
        while True:
            status, body = self.api("POST", path, *args, check=check)
            if status != 429 or time.monotonic() > deadline:
                return status, body
            time.sleep(1)

    def probe(self, command, *args, client=None):
        token = ["--token", self.token] if self.token else []
        token += ["--agent", self.chat_ids()[0], "--model", self.chat_ids()[1]]
        line = " ".join([PROBE, command, "--base", self.base, "--ca", PEBBLE_ROOT]
                        + [shlex.quote(a) for a in [*token, *args]])
        result = (client or self.client).run(line)
        assert result.rc == 0, result.stdout + result.stderr
        return json.loads(result.stdout)


@pytest.fixture(scope="session")
def clients():
    names = sorted(ansible_json("clients", "inventory_hostname"))
    assert len(names) >= 2, "scenarios need two clients (distinct IPs), found %s" % names
    return [testinfra.get_host("docker://" + name) for name in names[:2]]


@pytest.fixture(scope="session")
def site(app, deployment, clients):
    return Site(app, deployment[app], clients[0], clients[1])


@pytest.fixture(scope="session")
def nginx_site(nginx_app, deployment, clients):
    return Site(nginx_app, deployment[nginx_app], clients[0], clients[1])


@pytest.fixture(scope="session")
def caddy_site(caddy_app, deployment, clients):
    return Site(caddy_app, deployment[caddy_app], clients[0], clients[1])


@pytest.fixture(scope="session")
def alias_site(alias_app, deployment, clients):
    return Site(alias_app, deployment[alias_app], clients[0], clients[1])


# ---- access gate (issue 11): helpers of test_access.py ------------------------------

INSTANCE_SECRET_FILE = "/etc/opengram/instance-secret"


def host_instance_secret(host):
    """The instance secret a host generated (or was given), read from its root-only file."""
    result = host.run("cat %s" % INSTANCE_SECRET_FILE)
    return result.stdout.strip() if result.rc == 0 else ""


def basic_header(user, password):
    """curl arguments sending these basic auth credentials. A header, so the raw password is
    not on the client's command line either."""
    return ["-H", "Authorization: Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()]


def basic_auth(site):
    """curl arguments that log in through the password gate (nothing when there is no user)."""
    return basic_header(site.access_user, site.access_password) if site.access_user else []


def client_address(client):
    """The client container's address, as the site's proxy sees it."""
    return client.check_output("hostname -I").split()[0]


def wait_for(check, timeout, what, every=0.2):
    """check()'s first true value, polled every `every` s until `timeout` s have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    pytest.fail("%s: not within %s s" % (what, timeout))


SESSION_COOKIE = "__Host-opengram_session"  # nginx's login session (test_session.py)


def request(site, path, *args, client=None):
    """(status, {lower-case header: [values]}, body) of one GET from a client."""
    result = site.curl("--path-as-is", "--include", "--max-time", "8", *args, site.base + path, client=client)
    assert result.rc == 0, "curl exit %d: %s" % (result.rc, result.stderr)
    head, _, body = result.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.splitlines()
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return int(lines[0].split()[1]), headers, body


def session_of(headers):
    """nginx's session cookie value and its attributes ({lower-case name: value}) from the
    Set-Cookie headers of request(); (None, {}) when none was set."""
    for line in headers.get("set-cookie", []):
        if line.startswith(SESSION_COOKIE + "="):
            first, *attrs = [part.strip() for part in line.split(";")]
            return first.split("=", 1)[1], {a.split("=", 1)[0].lower(): a.partition("=")[2] for a in attrs}
    return None, {}


# ---- coexistence (issue 14): the operator's own sites beside ours ---------------------

OTHER_SITES_RECORDED = "/opt/ogd-probes/other-sites"


def _status_and_body(text):
    body, _, status = text.rpartition("\n")
    return status, body


def other_site_answers(site):
    """{proxy: (HTTP status, body)} of the operator's other sites on the host, as the client sees them now."""
    answers = {}
    for proxy, port in sorted(site.other_sites.items()):
        result = site.client.run("curl --silent --show-error --max-time 10 --write-out '\n%%{http_code}' "
                                 "http://%s:%s/", site.domain, str(port))
        answers[proxy] = _status_and_body(result.stdout) if result.rc == 0 else ("curl exit %d" % result.rc, "")
    return answers


def other_sites_before(site):
    """The same, as the client recorded it before the first converge (molecule/shared/prepare.yml)."""
    return {proxy: _status_and_body(site.client.file("%s/%s-%s" % (OTHER_SITES_RECORDED, site.name, proxy))
                                    .content_string)
            for proxy in sorted(site.other_sites)}


def assert_other_sites_answer_as_before(site, when):
    before = other_sites_before(site)
    assert all(status == "200" for status, _ in before.values()), before
    assert other_site_answers(site) == before, "the operator's other sites answer differently %s" % when


def ports_held_by(host, process):
    """The TCP ports `process` (by name) listens on."""
    ports = set()
    for line in host.check_output("ss -Htlnp").splitlines():
        fields = line.split()
        if len(fields) >= 4 and '"%s"' % process in line:
            ports.add(int(fields[3].rsplit(":", 1)[1]))
    return ports
