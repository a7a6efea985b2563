"""Unit tests for the pure parts of tools/hostprep.py and its library tools/ogd (no docker, no network)."""

from __future__ import annotations

import json
import os
import time
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tools.ogd import common, docker, galaxy, images, roles  # noqa: E402
from tools.ogd.common import HostPrepError  # noqa: E402
from tools.ogd import env as ogd_env, venv as ogd_venv  # noqa: E402
from tools.ogd.common import HostPrepError  # noqa: E402


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OGD_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# --- requirements.yml parsing -----------------------------------------------------

GOOD = """\
---
# comment
collections:
  - name: community.docker
    version: 4.8.5
  - name: "ansible.posix"   # trailing comment
    version: '2.1.0'
  -
    name: community.general
    version: 11.4.2
    type: galaxy
"""


def test_parse_good():
    assert galaxy.parse_requirements_yml(GOOD) == {
        "community.docker": "4.8.5",
        "ansible.posix": "2.1.0",
        "community.general": "11.4.2",
    }


def test_parse_keeps_file_order():
    assert list(galaxy.parse_requirements_yml(GOOD)) == [
        "community.docker", "ansible.posix", "community.general"]


def test_repo_requirements_pin_what_runs_and_what_tests_need_apart():
    run = galaxy.parse_requirements_yml((REPO_ROOT / "requirements.yml").read_text())
    dev = galaxy.parse_requirements_yml((REPO_ROOT / "requirements-dev.yml").read_text())
    assert list(run) == ["ansible.posix"]  # the optional profile_tasks callback
    assert set(dev) == {"community.docker", "community.library_inventory_filtering_v1"}
    _, pins = galaxy.requirements_pins()
    assert pins == {**run, **dev}


def test_a_collection_pinned_in_both_files_is_refused(tmp_path):
    a, b = tmp_path / "a.yml", tmp_path / "b.yml"
    a.write_text("collections:\n  - name: a.b\n    version: 1.0.0\n")
    b.write_text("collections:\n  - name: a.b\n    version: 1.0.0\n")
    with pytest.raises(HostPrepError, match="pinned in a.yml already"):
        galaxy.requirements_pins((a, b))


@pytest.mark.parametrize("text, message", [
    ("collections:\n  - name: a.b\n", "has no version"),
    ("collections:\n  - version: 1.0.0\n", "has no name"),
    ("collections:\n  - name: a.b\n    version: '>=1.0.0'\n", "not an exact version"),
    ("collections:\n  - name: a.b\n    version: 1.0\n", "not an exact version"),
    ("collections:\n  - name: ab\n    version: 1.0.0\n", "not a namespace.name"),
    ("collections:\n  - name: a.b\n    version: 1.0.0\n  - name: a.b\n    version: 1.0.0\n",
     "listed twice"),
    ("collections:\n  - name: a.b\n    version: 1.0.0\n    version: 1.0.1\n", "duplicate key"),
    ("collections:\n  - name: a.b\n    version: 1.0.0\n    src: x\n", "unsupported key"),
    ("roles:\n  - name: x\n", "unsupported top-level key"),
    ("collections:\n  - name: a.b\n    version: 1.0.0\n    type: git\n", "only type 'galaxy'"),
    ("collections: []\n", "no collections"),
    ("", "no collections"),
    ("collections:\n  - name: a.b\n    version: [1]\n", "unsupported YAML value"),
    ("collections:\n  - name: a.b\n   version: 1.0.0\n", "indentation differs"),
    ("collections:\n  - name: a.b\n  version: 1.0.0\n", "expected a list item"),
])
def test_parse_errors(text, message):
    with pytest.raises(HostPrepError, match=message):
        galaxy.parse_requirements_yml(text)


# --- hashes and stamps ---------------------------------------------------------------

def test_sha256_hex_is_length_prefixed():
    assert common.sha256_hex("ab", "c") != common.sha256_hex("a", "bc")
    assert common.sha256_hex("x") == common.sha256_hex(b"x")


def test_venv_key_depends_on_requirements_and_python():
    base = ogd_venv.venv_key(b"pytest==9.2.0\n", "cpython-3.11.7")
    assert base == ogd_venv.venv_key(b"pytest==9.2.0\n", "cpython-3.11.7")
    assert base != ogd_venv.venv_key(b"pytest==9.2.1\n", "cpython-3.11.7")
    assert base != ogd_venv.venv_key(b"pytest==9.2.0\n", "cpython-3.12.1")


def test_venv_path_is_under_cache(_cache):
    path = ogd_venv.venv_path(b"x==1\n")
    assert path.parent == _cache
    assert path.name == "venv-" + ogd_venv.venv_key(b"x==1\n")[:16]


def test_remove_other_venvs_keeps_current_and_foreign_dirs(_cache):
    keep = ogd_venv.venv_path(b"a==1\n")
    old = ogd_venv.venv_path(b"a==2\n")
    foreign = _cache / "venv-mine"
    recent = ogd_venv.venv_path(b"a==3\n")
    for d in (keep, old, foreign, recent):
        d.mkdir(parents=True)
    now = time.time()
    os.utime(old, (now - 3 * 24 * 3600, now - 3 * 24 * 3600))
    # Another checkout's venv in use (recent) stays; one unused for days goes.
    assert ogd_venv._remove_other_venvs(keep, now=now) == 1
    assert keep.is_dir() and foreign.is_dir() and recent.is_dir() and not old.exists()


def test_recipe_hash_changes_with_packages_and_revision(monkeypatch):
    base = images.base_image_recipe_hash()
    assert base == images.base_image_recipe_hash()
    monkeypatch.setattr(images, "BASE_PACKAGES", images.BASE_PACKAGES + ("nano",))
    with_nano = images.base_image_recipe_hash()
    assert with_nano != base
    monkeypatch.setattr(images, "BASE_IMAGE_REVISION", images.BASE_IMAGE_REVISION + 1)
    assert images.base_image_recipe_hash() not in (base, with_nano)


def test_recipe_hash_ignores_package_order(monkeypatch):
    base = images.base_image_recipe_hash()
    monkeypatch.setattr(images, "BASE_PACKAGES", tuple(reversed(images.BASE_PACKAGES)))
    assert images.base_image_recipe_hash() == base


def test_sources_list_has_main_updates_security():
    lines = images.sources_list().splitlines()
    assert lines == [
        "deb http://deb.debian.org/debian trixie main",
        "deb http://deb.debian.org/debian trixie-updates main",
        "deb http://deb.debian.org/debian-security trixie-security main",
    ]


def test_bookworm_recipe_differs_from_trixie_only_in_suite():
    trixie, bookworm = images.base_image_recipe(), images.base_image_recipe("bookworm")
    assert images.base_image_recipe("trixie") == trixie
    assert {k for k in trixie if trixie[k] != bookworm[k]} == {"suite", "sources.list"}
    assert bookworm["sources.list"].splitlines()[2] == (
        "deb http://deb.debian.org/debian-security bookworm-security main")
    assert images.base_image_recipe_hash(suite="bookworm") != images.base_image_recipe_hash()
    assert images.base_image_name() == "ogd-base:trixie" == images.BASE_IMAGE
    assert images.base_image_name("bookworm") == "ogd-base:bookworm"
    with pytest.raises(ValueError):
        images.base_image_name("sid")


def test_scenario_base_suites_reads_molecule_yml(tmp_path):
    yml = tmp_path / "molecule.yml"
    yml.write_text("platforms:\n"
                   "  - name: a\n    image: ogd-base:trixie\n"
                   "  - name: b\n    image: ${OGD_IMAGE:-ogd-base:bookworm}\n"
                   "  - name: c\n    image: \"ogd-base:bookworm\"  # again\n"
                   "  - name: d\n    image: ogd-pkgs:trixie\n")
    assert images.scenario_base_suites(yml) == ["bookworm"]


def test_ensure_scenario_images_builds_what_scenarios_name(tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(images, "ensure_base_image",
                        lambda force=False, suite="trixie": built.append(suite) or f"ogd-base:{suite}")
    for name, image in (("one", "ogd-base:bookworm"), ("two", "ogd-base:bookworm"), ("three", "ogd-pkgs:trixie")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "molecule.yml").write_text(f"platforms:\n  - name: h\n    image: {image}\n")
    assert images.ensure_scenario_images([tmp_path / n for n in ("one", "two", "three")]) == ["ogd-base:bookworm"]
    assert built == ["bookworm"]
    (tmp_path / "four").mkdir()
    (tmp_path / "four" / "molecule.yml").write_text("platforms:\n  - name: h\n    image: ogd-base:sid\n")
    with pytest.raises(common.HostPrepError, match="no recipe"):
        images.ensure_scenario_images([tmp_path / "four"])


def test_no_scenario_of_this_repository_names_an_unknown_suite():
    for yml in (REPO_ROOT / "molecule").glob("*/molecule.yml"):
        assert set(images.scenario_base_suites(yml)) <= set(images.BASE_SUITES), yml


def test_stamp_roundtrip(tmp_path):
    stamp = tmp_path / "s.json"
    assert not common.stamp_matches(stamp, "k")
    common.write_stamp(stamp, "k", extra="x")
    assert common.stamp_matches(stamp, "k")
    assert not common.stamp_matches(stamp, "other")
    assert common.read_stamp(stamp)["extra"] == "x"
    assert not (tmp_path / "s.json.tmp").exists()
    stamp.write_text("{not json")
    assert not common.stamp_matches(stamp, "k")


def test_collections_key_depends_on_text_and_bundle():
    k = galaxy.collections_key(b"a")
    assert k == galaxy.collections_key(b"a")
    assert k != galaxy.collections_key(b"b")
    assert k != galaxy.collections_key(b"a", bundle="99.0.0")


# --- collection extraction from a (synthetic) ansible wheel ----------------------

def _wheel(path: Path, collections: dict[str, tuple[str, dict]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ansible_collections/ansible_release.py", "")
        zf.writestr("ansible-0.0.0.dist-info/METADATA", "")
        for fqcn, (version, deps) in collections.items():
            ns, name = fqcn.split(".")
            base = f"ansible_collections/{ns}/{name}/"
            zf.writestr(base + "MANIFEST.json", json.dumps({"collection_info": {
                "namespace": ns, "name": name, "version": version,
                "dependencies": deps}}))
            zf.writestr(base + "plugins/modules/thing.py", "# module\n")
    return path


def test_extract_only_pinned(tmp_path):
    wheel = _wheel(tmp_path / "ansible.whl", {
        "community.docker": ("4.8.5", {"community.lib": ">=1.0.0"}),
        "community.lib": ("1.1.5", {}),
        "other.thing": ("1.0.0", {}),
    })
    dest = tmp_path / "out"
    got = galaxy.extract_collections(
        wheel, {"community.docker": "4.8.5", "community.lib": "1.1.5"}, dest)
    assert got == {"community.docker": "4.8.5", "community.lib": "1.1.5"}
    root = dest / "ansible_collections"
    assert (root / "community/docker/plugins/modules/thing.py").is_file()
    assert not (root / "other").exists()
    assert not (root / "ansible_release.py").exists()
    assert galaxy.installed_collections_ok(dest, got)
    assert not galaxy.installed_collections_ok(dest, {"community.docker": "4.8.6"})


def test_extract_version_mismatch(tmp_path):
    wheel = _wheel(tmp_path / "ansible.whl", {"a.b": ("2.0.0", {})})
    with pytest.raises(HostPrepError, match=r"pins a\.b 1\.0\.0, but .* ships 2\.0\.0"):
        galaxy.extract_collections(wheel, {"a.b": "1.0.0"}, tmp_path / "out")


def test_extract_missing_collection(tmp_path):
    wheel = _wheel(tmp_path / "ansible.whl", {"a.b": ("1.0.0", {})})
    with pytest.raises(HostPrepError, match=r"c\.d is not in"):
        galaxy.extract_collections(wheel, {"c.d": "1.0.0"}, tmp_path / "out")


def test_extract_unpinned_dependency(tmp_path):
    wheel = _wheel(tmp_path / "ansible.whl", {"a.b": ("1.0.0", {"c.d": ">=1"}),
                                             "c.d": ("1.0.0", {})})
    with pytest.raises(HostPrepError, match=r"depends on c\.d"):
        galaxy.extract_collections(wheel, {"a.b": "1.0.0"}, tmp_path / "out")


def test_extract_rejects_path_traversal(tmp_path):
    wheel = _wheel(tmp_path / "ansible.whl", {"a.b": ("1.0.0", {})})
    with zipfile.ZipFile(wheel, "a") as zf:
        zf.writestr("ansible_collections/a/b/../../../../evil", "x")
    with pytest.raises(HostPrepError, match="unsafe path"):
        galaxy.extract_collections(wheel, {"a.b": "1.0.0"}, tmp_path / "out")
    assert not (tmp_path / "evil").exists()


def test_extract_bad_wheel(tmp_path):
    bad = tmp_path / "ansible.whl"
    bad.write_text("not a zip")
    with pytest.raises(HostPrepError, match="cannot open"):
        galaxy.extract_collections(bad, {"a.b": "1.0.0"}, tmp_path / "out")


# --- environment -----------------------------------------------------------------

def test_environment_paths(_cache):
    env = ogd_env.environment(base_path="/usr/bin:/bin")
    venv = ogd_venv.venv_path()
    assert env["OGD_VENV"] == str(venv) == env["VIRTUAL_ENV"]
    assert env["PATH"] == f"{venv}/bin:/usr/bin:/bin"
    # This checkout (the collection, through collections/), then the pinned collections.
    assert env["ANSIBLE_COLLECTIONS_PATH"] == f"{ogd_env.REPO_ROOT / 'collections'}:{galaxy.collections_path()}"
    assert env["OGD_DEV_COLLECTIONS"] == str(galaxy.collections_path())
    assert (ogd_env.REPO_ROOT / "collections/ansible_collections/opengram_deploy/opengram/galaxy.yml").is_file()
    assert galaxy.collections_path().parent == _cache and galaxy.collections_path().name.startswith("collections-")
    assert env["ANSIBLE_HOME"] == str(_cache / "ansible-home")
    assert not _cache.exists(), "environment() without ensure must not create anything"


def test_env_block_is_sourceable(tmp_path, monkeypatch):
    monkeypatch.setenv("OGD_CACHE", str(tmp_path / "with space"))
    block = ogd_env.env_block()
    script = block + 'printf "%s\\n" "$OGD_VENV" "$ANSIBLE_COLLECTIONS_PATH" "${PATH%%:*}"\n'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"}, check=True).stdout.splitlines()
    venv = ogd_venv.venv_path()
    assert out == [str(venv), f"{ogd_env.REPO_ROOT / 'collections'}:{galaxy.collections_path()}", f"{venv}/bin"]
    assert out[1].split(":")[1].startswith(str(tmp_path / "with space") + "/collections-")


def test_step_prints_one_line(capsys):
    with common.step("demo") as done:
        done("did a thing")
    err = capsys.readouterr().err
    assert err.startswith("demo: did a thing (") and err.endswith(" s)\n")


def test_cli_env_subcommand(tmp_path):
    out = subprocess.run([sys.executable, str(REPO_ROOT / "tools/hostprep.py"), "env"],
                         capture_output=True, text=True, check=True,
                         env={"OGD_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}).stdout
    assert f"export ANSIBLE_COLLECTIONS_PATH={REPO_ROOT}/collections:{tmp_path}/collections-" in out


# --- packages image (ogd-pkgs:trixie) ---------------------------------------------


def test_package_list_of_the_repository():
    packages = roles.package_list()
    for name in ("nodejs", "npm", "python3", "make", "g++", "curl", "nftables", "sqlite3",
                 "caddy", "nginx", "certbot", "pebble", "python3-apt", "python3-certbot-nginx"):
        assert name in packages
    # quoted values compared in an expression are not packages
    assert "distro" not in packages and "nodesource" not in packages
    assert packages == sorted(set(packages))


def _yaml_apt_names(node, found):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("ansible.builtin.apt", "apt") and isinstance(value, dict):
                if value.get("state", "present") in ("present", "latest") and value.get("name"):
                    found.append(value["name"])
            elif key == "common_packages" and value:
                found.append(value)
            else:
                _yaml_apt_names(value, found)
    elif isinstance(node, list):
        for item in node:
            _yaml_apt_names(item, found)
    return found


def test_stdlib_reader_agrees_with_pyyaml_on_the_repository():
    yaml = pytest.importorskip("yaml")
    for pattern in roles.PKGS_VARS_GLOBS:
        for path in REPO_ROOT.glob(pattern):
            ours = roles.yaml_top_level_values(path.read_text())
            theirs = yaml.safe_load(path.read_text()) or {}
            for key, value in theirs.items():
                if isinstance(value, list) and all(isinstance(v, str) for v in value):
                    assert ours.get(key) == value, (path, key)
    for pattern in roles.PKGS_TASK_GLOBS:
        for path in REPO_ROOT.glob(pattern):
            ours = roles.apt_task_names(path.read_text())
            theirs = _yaml_apt_names(yaml.safe_load(path.read_text()), [])
            assert ours == theirs, path


def test_apt_task_names_only_installs():
    text = """\
- name: Refresh
  ansible.builtin.apt:
    update_cache: true
- name: One
  ansible.builtin.apt:
    name: caddy
    state: present
- name: Remove
  ansible.builtin.apt:
    name: [apache2]
    state: absent
- name: Block list
  ansible.builtin.apt:
    name:
      - a1
      - "b2"  # comment
    cache_valid_time: 3600
- name: Templated
  ansible.builtin.apt:
    name: "{{ pkgs }}"
"""
    assert roles.apt_task_names(text) == ["caddy", ["a1", "b2"], "{{ pkgs }}"]


def test_resolve_packages_follows_variables_and_list_literals():
    variables = roles.yaml_top_level_values("""\
---
pkgs: >-
  {{ (a_pkgs if mode == 'distro' else b_pkgs) + tools
     + (['nftables'] if firewall | bool else []) }}
a_pkgs:
  - nodejs
  - npm
b_pkgs: [nodejs]
tools:
  - curl
firewall: true
""")
    assert variables["b_pkgs"] == ["nodejs"]
    assert roles.resolve_packages(["{{ pkgs }}", "caddy"], variables) == [
        "caddy", "curl", "nftables", "nodejs", "npm"]


def test_pkgs_image_key_depends_on_packages_and_base():
    key = images.pkgs_image_key(["caddy", "nginx"], "sha256:aaa")
    assert key == images.pkgs_image_key(["nginx", "caddy"], "sha256:aaa")
    assert key != images.pkgs_image_key(["caddy", "nginx", "pebble"], "sha256:aaa")
    assert key != images.pkgs_image_key(["caddy", "nginx"], "sha256:bbb")


def test_pkgs_build_script_starts_nothing_and_disables_the_proxies():
    script = images.pkgs_build_script(["caddy", "g++"])
    assert "exit 101" in script and "/usr/sbin/policy-rc.d" in script
    # Without recommends, as the roles install (common_packages_install_recommends).
    assert "apt-get install -y -q --no-install-recommends caddy g++" in script
    assert "systemctl disable caddy.service nginx.service" in script
    assert script.index("rm -f /usr/sbin/policy-rc.d") > script.index("apt-get install")


def test_inotify_limit_is_only_raised():
    assert docker.inotify_limit_to_set(128) == docker.INOTIFY_MIN_INSTANCES
    assert docker.inotify_limit_to_set(docker.INOTIFY_MIN_INSTANCES) is None
    assert docker.inotify_limit_to_set(8192) is None
