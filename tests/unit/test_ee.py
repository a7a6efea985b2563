"""tools/ee.py: the execution environment's pins agree with requirements.txt (what a run needs)."""

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import ee  # noqa: E402


def test_pins_reads_exact_pins_only():
    text = "# tools\nansible-core==2.19.14\nmolecule-plugins[docker]==26.10.12\npytest>=9\n-r other.txt\nbcrypt==5.0.0  # x\n"
    assert ee.pins(text) == {"ansible-core": "2.19.14", "molecule-plugins": "26.10.12", "bcrypt": "5.0.0"}


def test_the_repositorys_file_agrees():
    data = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    assert ee.problems(data, ee.pins((ROOT / "requirements.txt").read_text())) == []
    assert "bcrypt==5.0.0" in data["dependencies"]["python"]


def test_disagreements_are_named():
    good = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    dev = {"ansible-core": "2.19.14", "bcrypt": "5.0.0"}
    bad = {**good, "dependencies": {**good["dependencies"],
                                    "ansible_core": {"package_pip": "ansible-core>=2.19"},
                                    "python": ["bcrypt==4.0.0", "requests"],
                                    "galaxy": "requirements-dev.yml"}}
    out = "\n".join(ee.problems(bad, dev))
    assert "ansible_core.package_pip is 'ansible-core>=2.19': pin it exactly" in out
    assert "bcrypt==4.0.0 in execution-environment.yml, but requirements.txt pins bcrypt==5.0.0" in out
    assert "'requests' is not an exact pin" in out
    assert "dependencies.galaxy is 'requirements-dev.yml'" in out


def test_a_package_a_run_needs_must_be_in_the_image():
    good = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    out = ee.problems(good, {"ansible-core": "2.19.14", "bcrypt": "5.0.0", "passlib": "1.7.4"})
    assert out == ["requirements.txt pins passlib==1.7.4, which a run needs, but execution-environment.yml "
                   "does not install it: add it to dependencies.python"]


def test_the_dev_requirements_include_the_run_requirements():
    """One source for the run's pins: requirements-dev.txt includes requirements.txt
    and pins none of its packages again."""
    dev = (ROOT / "requirements-dev.txt").read_text()
    assert "-r requirements.txt" in dev.splitlines()
    assert not set(ee.pins(dev)) & set(ee.pins((ROOT / "requirements.txt").read_text()))
