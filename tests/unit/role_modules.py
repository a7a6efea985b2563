"""Run or import the roles' own Ansible modules (roles/*/library) as Ansible
would: JSON arguments on stdin, and the roles' module_utils importable as
ansible.module_utils.<name> (Ansible adds a role's module_utils/ to that
package when the role is in the play)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE_UTILS = sorted(str(path) for path in ROOT.glob("roles/*/module_utils"))

# Extends ansible.module_utils with the roles' module_utils, then runs the module as __main__.
BOOTSTRAP = """
import runpy, sys
import ansible.module_utils
ansible.module_utils.__path__.extend(%r)
runpy.run_path(sys.argv.pop(1), run_name="__main__")  # argv[1] would be read as the arguments
""" % (MODULE_UTILS,)


def run_module(module, args, check_mode=False, diff=False):
    """The module's JSON result for `args` (check and diff mode as asked)."""
    payload = {"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)}
    proc = subprocess.run([sys.executable, "-c", BOOTSTRAP, str(module)], input=json.dumps(payload),
                          capture_output=True, text=True, check=False)
    assert proc.stdout, "the module printed nothing; stderr:\n" + proc.stderr
    return json.loads(proc.stdout)


def load(module):
    """The module imported (its functions, for unit tests of the pure parts)."""
    import ansible.module_utils

    for path in MODULE_UTILS:
        if path not in ansible.module_utils.__path__:
            ansible.module_utils.__path__.append(path)
    spec = importlib.util.spec_from_file_location(Path(module).stem, module)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded
