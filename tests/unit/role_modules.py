"""Run or import the collection's own Ansible modules and plugins (plugins/)
as Ansible would: JSON arguments on stdin, and the collection importable as
ansible_collections.opengram_deploy.opengram (collections/ holds the link to
this checkout that ansible.cfg puts on the collections path)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins"
COLLECTIONS = str(ROOT / "collections")

# Makes the collection importable, then runs the module as __main__.
BOOTSTRAP = """
import runpy, sys
sys.path.insert(0, %r)
runpy.run_path(sys.argv.pop(1), run_name="__main__")  # argv[1] would be read as the arguments
""" % (COLLECTIONS,)


def run_module(module, args, check_mode=False, diff=False):
    """The module's JSON result for `args` (check and diff mode as asked)."""
    payload = {"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)}
    proc = subprocess.run([sys.executable, "-c", BOOTSTRAP, str(module)], input=json.dumps(payload),
                          capture_output=True, text=True, check=False)
    assert proc.stdout, "the module printed nothing; stderr:\n" + proc.stderr
    return json.loads(proc.stdout)


def load(module):
    """The module imported (its functions, for unit tests of the pure parts)."""
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)
    spec = importlib.util.spec_from_file_location(Path(module).stem, module)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded
