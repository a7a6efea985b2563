#!/usr/bin/env python3
"""Write the inventory of a new Opengram site: inventories/NAME/.

  python3 tools/new_site.py mysite --domain chat.example.net --host 203.0.113.10 \\
      --ssh-user deploy --proxy caddy --acme-email you@example.net

Asks for each value not given as an option (when run in a terminal; otherwise
a missing option is an error that names it). Writes:

  inventories/NAME/hosts.yml                      the host, in the group opengram
  inventories/NAME/host_vars/DOMAIN.yml           its address, domain and proxy
  inventories/NAME/group_vars/opengram/main.yml   how Ansible reaches it, the ACME contact, the login
  inventories/NAME/group_vars/opengram/vault.yml  the login password, encrypted with ansible-vault

The login password is generated (strong, random), printed once, and kept only
in the vault. The vault's own password is kept in
~/.config/opengram-deploy/NAME.vault-pass (mode 0600; generated when the file
does not exist, reused when it does; --vault-password-file to choose another).
Nothing is overwritten: an existing inventories/NAME/ is an error. Changes no
host; the next command (printed at the end) deploys.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
SITE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PROXIES = ("caddy", "nginx")
# The login password: the opengram role demands 16 characters, 8 distinct and
# not containing the user's name (roles/opengram defaults: opengram_access_users).
PASSWORD_BYTES = 18  # 24 characters of base64url


class Refused(Exception):
    """Bad input: the message names the option and the fix."""


def check_name(value: str) -> str:
    if not SITE_NAME.match(value):
        raise Refused(f"site name {value!r}: use lowercase letters, digits, '-' and '_' (e.g. mysite); "
                      "it names the directory inventories/NAME")
    return value


def check_domain(value: str) -> str:
    value = value.strip().lower().rstrip(".")
    if not HOSTNAME.match(value):
        raise Refused(f"--domain {value!r} is not a DNS name: give the name your DNS record points at the host, "
                      "e.g. --domain chat.example.net")
    return value


def check_host(value: str) -> str:
    value = value.strip()
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if HOSTNAME.match(value.lower()):
        return value.lower()
    raise Refused(f"--host {value!r} is neither an IP address nor a DNS name: give the address Ansible "
                  "reaches the host at over SSH, e.g. --host 203.0.113.10")


def check_user(value: str) -> str:
    if not USER_NAME.match(value):
        raise Refused(f"--ssh-user {value!r} is not a user name: give the account with sudo that your SSH key "
                      "logs into, e.g. --ssh-user deploy")
    return value


def check_proxy(value: str) -> str:
    if value not in PROXIES:
        raise Refused(f"--proxy {value!r} is not supported: use caddy or nginx (nginx comes with certbot)")
    return value


def check_email(value: str) -> str:
    if not EMAIL.match(value):
        raise Refused(f"--acme-email {value!r} is not an email address: give yours (the certificate authority "
                      "writes to it about expiring certificates), e.g. --acme-email you@your-domain")
    return value


def check_login(value: str) -> str:
    if not USER_NAME.match(value):
        raise Refused(f"--login-name {value!r}: use lowercase letters, digits, '-' and '_', e.g. --login-name admin")
    return value


QUESTIONS = (
    # (option, prompt, check)
    ("domain", "The site's DNS name (its A/AAAA record points at the host)", check_domain),
    ("host", "The host's address for SSH (IP address or name)", check_host),
    ("ssh_user", "The SSH account with sudo on the host", check_user),
    ("proxy", "The proxy: caddy, or nginx (with certbot)", check_proxy),
    ("acme_email", "Your email address for the certificate authority", check_email),
)


def ask(args: argparse.Namespace, interactive: bool) -> None:
    """Fill the values not given as options: asked in a terminal, else an error naming the option."""
    for option, prompt, check in QUESTIONS:
        value = getattr(args, option)
        while value is None:
            flag = "--" + option.replace("_", "-")
            if not interactive:
                raise Refused(f"{flag} is missing (not a terminal, so it cannot be asked): "
                              f"{prompt.lower()}; see python3 tools/new_site.py --help")
            answer = input(f"{prompt}{' [caddy]' if option == 'proxy' else ''}: ").strip()
            if not answer and option == "proxy":
                answer = "caddy"
            try:
                value = check(answer)
            except Refused as error:
                print(error, file=sys.stderr)
        setattr(args, option, check(value))


def strong_password(login: str) -> str:
    while True:
        candidate = secrets.token_urlsafe(PASSWORD_BYTES)
        if len(set(candidate)) >= 8 and login not in candidate.lower():
            return candidate


def pinned_version() -> str:
    """The Opengram version the roles pin (roles/opengram/defaults/main.yml): the new site starts there."""
    import yaml

    return str(yaml.safe_load((ROOT / "roles/opengram/defaults/main.yml").read_text())["opengram_version"])


def vault_password_file(path: Path) -> bool:
    """Create the vault password file (0600, in a 0700 directory) when absent; True when created."""
    if path.exists():
        if path.stat().st_mode & 0o077:
            raise Refused(f"{path} can be read by others (mode {path.stat().st_mode & 0o777:04o}): "
                          f"chmod 600 {path}, then run again")
        return False
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(32) + "\n")
    return True


def yaml_text(header: str, data: dict) -> str:
    import yaml

    return "---\n" + header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def inventory_files(args: argparse.Namespace) -> dict[str, str]:
    """The clear-text files of inventories/NAME/ (the vault is written apart)."""
    hosts = {"all": {"children": {"opengram": {"hosts": {args.domain: None}}}}}
    host_vars = {
        "ansible_host": args.host,
        "opengram_domain": args.domain,
        "opengram_proxy": args.proxy,
    }
    group_vars = {
        "ansible_connection": "ssh",
        "ansible_user": args.ssh_user,
        "ansible_become": True,
        "opengram_version": pinned_version(),
        "opengram_tls_mode": "acme",
        "opengram_acme_email": args.acme_email,
        "opengram_access_modes": ["password"],
        "opengram_access_users": [{"name": args.login_name, "password": "{{ vault_opengram_login_password }}"}],
    }
    return {
        "hosts.yml": yaml_text(
            f"# Written by tools/new_site.py. Another host: add its name under hosts and\n"
            f"# a host_vars/<name>.yml like host_vars/{args.domain}.yml.\n", hosts),
        f"host_vars/{args.domain}.yml": yaml_text(
            "# This host: the address Ansible reaches over SSH, the site's name, its proxy.\n", host_vars),
        "group_vars/opengram/main.yml": yaml_text(
            "# Shared by the hosts of this inventory. Every variable is documented in\n"
            "# roles/*/defaults/main.yml (docs/configuration.md: the ones that matter).\n"
            "# The password below comes from vault.yml beside this file (ansible-vault).\n"
            "# If sudo on the host asks for a password, add -K to ansible-playbook.\n", group_vars),
    }


def write_vault(path: Path, password: str, vault_pass: Path) -> None:
    """vault.yml, encrypted by ansible-vault from standard input: the clear text never touches the disk."""
    ansible_vault = shutil.which("ansible-vault")
    if ansible_vault is None:
        raise Refused("ansible-vault is not on PATH: pip install -r requirements.txt (in the virtualenv you "
                      "run Ansible from), then run again")
    clear = ("# Written by tools/new_site.py. See or change it with\n"
             f"#   ansible-vault edit --vault-password-file {shown(vault_pass)} {shown(path)}\n"
             f"vault_opengram_login_password: {password}\n")
    subprocess.run([ansible_vault, "encrypt", "--vault-password-file", str(vault_pass),
                    "--output", str(path), "-"], input=clear, text=True, check=True,
                   stdout=subprocess.DEVNULL)
    path.chmod(0o600)


def shown(path: Path) -> str:
    """A path as the user would type it: ~/... under the home directory, else relative to here when below."""
    home = Path.home()
    try:
        return "~/" + str(path.relative_to(home))
    except ValueError:
        pass
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write inventories/NAME/ for one new Opengram host: hosts, host and group variables, "
                    "and an ansible-vault file with a generated login password. Changes no host.")
    parser.add_argument("name", help="the site's name: the directory inventories/NAME")
    parser.add_argument("--domain", help="the site's DNS name, e.g. chat.example.net")
    parser.add_argument("--host", help="the host's address for SSH, e.g. 203.0.113.10")
    parser.add_argument("--ssh-user", dest="ssh_user", help="the SSH account with sudo on the host, e.g. deploy")
    parser.add_argument("--proxy", help="caddy (default when asked) or nginx (with certbot)")
    parser.add_argument("--acme-email", dest="acme_email",
                        help="your address for the certificate authority (Let's Encrypt)")
    parser.add_argument("--login-name", dest="login_name", default="admin",
                        help="the web app's login name (default: admin)")
    parser.add_argument("--vault-password-file", dest="vault_pass", type=Path,
                        help="the vault's password file (default: ~/.config/opengram-deploy/NAME.vault-pass; "
                             "created when absent)")
    parser.add_argument("--inventories", type=Path, default=ROOT / "inventories",
                        help="where NAME/ is written (default: this checkout's inventories/)")
    args = parser.parse_args(argv)
    try:
        check_name(args.name)
        check_login(args.login_name)
        ask(args, interactive=sys.stdin.isatty())
        target = args.inventories / args.name
        if target.exists():
            raise Refused(f"{target} exists already: choose another site name, or remove it first "
                          "(nothing was written)")
        vault_pass = (args.vault_pass or Path.home() / ".config/opengram-deploy" / f"{args.name}.vault-pass")
        vault_pass = vault_pass.expanduser().absolute()
        files = inventory_files(args)
        created = vault_password_file(vault_pass)
        password = strong_password(args.login_name)
        for relative, text in files.items():
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        vault = target / "group_vars/opengram/vault.yml"
        write_vault(vault, password, vault_pass)
    except Refused as error:
        print(f"new_site: {error}", file=sys.stderr)
        return 2
    inventory, pass_file = shown(target), shown(vault_pass)
    print(f"""Wrote {inventory}/ (hosts.yml, host_vars/, group_vars/opengram/main.yml and vault.yml).
The vault's password is in {pass_file} ({'new' if created else 'the one already there'}; mode 0600: keep it, back it up).

The login of https://{args.domain}/ once deployed:
  name:     {args.login_name}
  password: {password}
It is shown this once and kept only in {inventory}/group_vars/opengram/vault.yml, encrypted. See it again with
  ansible-vault view --vault-password-file {pass_file} {inventory}/group_vars/opengram/vault.yml

Next: trust the host's SSH key (compare the fingerprint printed with the one your provider shows), then deploy:
  ssh-keyscan -t ed25519 {args.host} | tee -a ~/.ssh/known_hosts | ssh-keygen -lf -
  ansible-playbook -i {inventory} site.yml --vault-password-file {pass_file}""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
