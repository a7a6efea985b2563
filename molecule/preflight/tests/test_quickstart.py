"""The README's quick start, run as written, on the fresh preflight host.

The commands are the ```sh blocks of the README's "## Quick start" section,
read from the README at test time (never copied here): a change to the README
that breaks the path breaks this test. They run in one bash script with
`set -euo pipefail`, in an empty directory, with a home directory of their
own that holds only the operator's SSH key (ssh's too: operator_shell; the quick start's "what you
need"; prepare.yml gave the host an SSH server and the account `deploy` with
sudo). So `git clone` clones this checkout, `pip install -r requirements.txt`
makes a fresh virtualenv, tools/new_site.py writes the inventory and its
vault, `ssh-keyscan` writes known_hosts as the README says, and the deploy
reaches the host over SSH with host keys checked (Ansible's default, which
the inventory keeps).

What the test changes, and only this:
  - the README's placeholders become this scenario's values (`placeholders`
    in the fixture);
  - each `ansible-playbook` command gets one more argument, `-e @doubles.json`:
    the test doubles of every scenario (Pebble as the ACME CA instead of
    Let's Encrypt, the offline stand-in instead of the npm registry; written
    by the fixture). Nothing else of the inventory new_site.py wrote is changed.
Then a person's view: HTTPS with a certificate that chains to Pebble's root,
the login asked for, the generated password let in; and a second run of the
README's deploy command changes nothing.
"""

import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time

import pytest
from conftest import PROJECT, recap

README = os.path.join(PROJECT, "README.md")
ARTIFACTS = os.path.join(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp"), "artifacts")
DOMAIN = "opengram.test"
SITE = "mysite"


def quick_start_commands(text):
    """The command lines of the ```sh blocks of the README's "## Quick start" section."""
    section = text.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```sh\n(.*?)^```$", section, flags=re.S | re.M)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def operator_shell(script, cwd, env, timeout):
    """bash -c SCRIPT as the operator's shell: its home is env['HOME'], and ssh's too.
    OpenSSH reads ~/.ssh from the account's passwd entry, not from $HOME: the
    script runs in a mount namespace of its own where that directory is the
    operator's (the machine's own ~/.ssh is not read, nor changed)."""
    ssh_dir = os.path.join(pwd.getpwuid(os.getuid()).pw_dir, ".ssh")
    os.makedirs(ssh_dir, mode=0o700, exist_ok=True)
    wrapped = 'mount --bind "$1" "$2" && exec bash -c "$3"'
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c", wrapped, "operator",
                           os.path.join(env["HOME"], ".ssh"), ssh_dir, script],
                          cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout)


def container_ip(name):
    out = subprocess.run(["docker", "inspect", name], check=True, capture_output=True, text=True).stdout
    networks = json.loads(out)[0]["NetworkSettings"]["Networks"]
    return next(iter(networks.values()))["IPAddress"]


def container(role, hostname):
    """The name of the scenario's other container, e.g. ogd-preflight-pebble beside ogd-preflight-app."""
    return hostname.rsplit("-", 1)[0] + "-" + role


@pytest.fixture(scope="module")
def quickstart(hostname):
    """Run the quick start once; the run's directories, output and login."""
    with open(README) as handle:
        commands = quick_start_commands(handle.read())
    assert any(c.startswith("python3 tools/new_site.py ") for c in commands), commands
    assert any(c.startswith("ansible-playbook ") for c in commands), commands
    address = container_ip(hostname)
    # Short, as a person's home is: ssh's ControlPath under ~/.ansible/cp must stay within 108 bytes.
    work = tempfile.mkdtemp(prefix="ogd-quickstart-", dir="/tmp")
    home = os.path.join(work, "home")
    os.makedirs(os.path.join(home, ".ssh"), mode=0o700)
    shutil.copy(os.path.join(ARTIFACTS, "operator_ed25519"), os.path.join(home, ".ssh", "id_ed25519"))
    os.chmod(os.path.join(home, ".ssh", "id_ed25519"), 0o600)
    doubles = os.path.join(work, "doubles.json")
    with open(doubles, "w") as out:
        json.dump({
            # Pebble instead of Let's Encrypt: the CA, and the CA of its HTTPS listener.
            "opengram_acme_directory": "https://pebble:14000/dir",
            "opengram_acme_ca_bundle_src": os.path.join(ARTIFACTS, "pebble-listener-ca.pem"),
            # The offline stand-in instead of the npm registry, with its own lock.
            "opengram_npm_tarball": os.path.join(ARTIFACTS, "opengramsh-opengram-0.2.1.tgz"),
            "opengram_npm_locks_dir": os.path.join(ARTIFACTS, "locks"),
            # The host does not trust Pebble's root; the test checks the chain from outside.
            "opengram_selfcheck_validate_certs": False,
        }, out)
    # `git clone URL` names its directory after the URL: this checkout under the same name.
    source = os.path.join(work, "source", "opengram-deploy")
    os.makedirs(os.path.dirname(source))
    os.symlink(PROJECT, source)
    placeholders = {
        "https://github.com/opengram-deploy/opengram-deploy.git": source,
        "chat.example.net": DOMAIN,
        "203.0.113.10": address,
        "you@example.net": "admin@" + DOMAIN,
    }
    script = ["set -euo pipefail"]
    for command in commands:
        for placeholder, value in placeholders.items():
            command = command.replace(placeholder, value)
        if command.startswith("ansible-playbook "):
            command += " -e @" + doubles
        script.append(command)
    # The operator's shell: none of the scenario's Ansible or Molecule settings, a home of its own.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANSIBLE_", "MOLECULE_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(HOME=home, ANSIBLE_NOCOLOR="1")
    started = time.monotonic()
    run = operator_shell("\n".join(script), work, env, 1200)
    seconds = time.monotonic() - started
    print("the quick start (%d commands) took %.0f s:\n  %s" % (len(commands), seconds, "\n  ".join(script[1:])))
    login = re.search(r"^  password: (\S+)$", run.stdout, flags=re.M)
    yield {"run": run, "work": work, "home": home, "env": env, "address": address, "doubles": doubles,
            "checkout": os.path.join(work, "opengram-deploy"), "commands": script[1:],
            "password": login.group(1) if login else None}
    shutil.rmtree(work, ignore_errors=True)


def test_the_quick_start_deploys_a_private_https_site_over_ssh(quickstart, hostname):
    run = quickstart["run"]
    assert run.returncode == 0, run.stdout[-6000:] + "\n--- stderr ---\n" + run.stderr[-3000:]
    counters = recap(run.stdout, DOMAIN)
    assert counters["failed"] == 0 and counters["unreachable"] == 0, counters
    # Over SSH with the host's key as ssh-keyscan wrote it (a mismatch would stop ssh).
    with open(os.path.join(quickstart["home"], ".ssh", "known_hosts")) as handle:
        assert handle.read().startswith(quickstart["address"] + " ssh-ed25519 ")
    # The summary that ends the run.
    text = " ".join(run.stdout.split())
    assert "Opengram 0.2.1 is at https://%s/ (behind caddy" % DOMAIN in text, run.stdout[-4000:]
    assert "the self-check through that URL passed" in text
    assert ("the login admin, with the password kept in the vault %s/inventories/%s/group_vars/opengram/vault.yml"
            % (quickstart["checkout"], SITE)) in text
    assert "sudo cat /etc/opengram/instance-secret" in text
    assert quickstart["password"] and quickstart["password"] not in run.stdout.split("PLAY [", 1)[1]


def _curl(quickstart, hostname, *args):
    """curl from the controller to the site's address, trusting only Pebble's root."""
    root = os.path.join(quickstart["work"], "pebble-root.pem")
    if not os.path.exists(root):
        pem = subprocess.run(["docker", "exec", container("pebble", hostname), "curl", "-sk",
                              "https://127.0.0.1:15000/roots/0"], check=True, capture_output=True, text=True).stdout
        assert "BEGIN CERTIFICATE" in pem
        with open(root, "w") as out:
            out.write(pem)
    return subprocess.run(["curl", "-s", "--max-time", "10", "--cacert", root, "--resolve",
                           "%s:443:%s" % (DOMAIN, quickstart["address"]), "-o", "/dev/null",
                           "-w", "%{http_code}", *args], capture_output=True, text=True)


def test_the_site_asks_for_the_login_and_lets_the_generated_password_in(quickstart, hostname):
    assert quickstart["run"].returncode == 0
    stranger = _curl(quickstart, hostname, "https://%s/" % DOMAIN)
    assert (stranger.returncode, stranger.stdout) == (0, "401"), stranger
    wrong = _curl(quickstart, hostname, "-u", "admin:not-the-password", "https://%s/" % DOMAIN)
    assert wrong.stdout == "401", wrong
    # The password goes to curl on its standard input (a config line), never on a command line.
    login = subprocess.run(["curl", "-s", "--max-time", "10", "--cacert", os.path.join(quickstart["work"],
                            "pebble-root.pem"), "--resolve", "%s:443:%s" % (DOMAIN, quickstart["address"]),
                            "-o", "/dev/null", "-w", "%{http_code}", "-K", "-", "https://%s/" % DOMAIN],
                           input='user = "admin:%s"\n' % quickstart["password"], capture_output=True, text=True)
    assert login.stdout == "200", login
    plain = subprocess.run(["curl", "-s", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                            "--resolve", "%s:80:%s" % (DOMAIN, quickstart["address"]), "http://%s/x" % DOMAIN],
                           capture_output=True, text=True)
    assert plain.stdout.split()[0] in ("301", "308") and plain.stdout.split()[1] == "https://%s/x" % DOMAIN, plain


def test_the_readme_deploy_command_again_changes_nothing(quickstart, hostname):
    assert quickstart["run"].returncode == 0
    deploy = [c for c in quickstart["commands"] if c.startswith("ansible-playbook ")][-1]
    started = time.monotonic()
    again = operator_shell(". .venv/bin/activate && " + deploy, quickstart["checkout"], quickstart["env"], 600)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-2000:]
    counters = recap(again.stdout, DOMAIN)
    print("second run over SSH: %.0f s, %s" % (time.monotonic() - started, counters))
    assert counters["changed"] == 0 and counters["failed"] == 0, again.stdout[-4000:]


def test_check_mode_on_the_converged_host_reports_no_change(quickstart, hostname):
    assert quickstart["run"].returncode == 0
    deploy = [c for c in quickstart["commands"] if c.startswith("ansible-playbook ")][-1]
    check = operator_shell(". .venv/bin/activate && " + deploy + " --check --diff", quickstart["checkout"],
                           quickstart["env"], 600)
    assert check.returncode == 0, check.stdout[-4000:] + check.stderr[-2000:]
    counters = recap(check.stdout, DOMAIN)
    assert counters["changed"] == 0 and counters["failed"] == 0, check.stdout[-4000:]
