"""Fixtures shared by tests/standin and tests/contract: installed Opengram packages
(the stand-in TEST FIXTURE, and the real release where its tarball is on this host).
Helpers live in tests/opengram_instances.py (this directory is on sys.path)."""

from __future__ import annotations

import pytest

from opengram_instances import Installed, install_real, install_standin, real_tarball

CONTRACT_VERSION = "0.2.1"
REAL_SKIP_REASON = (
    "real Opengram 0.2.1 tarball not found (OGD_REAL_PACKAGE, /work/shared/opengram/ or "
    "../shared/opengram/opengramsh-opengram-0.2.1.tgz): contract checked against the stand-in only"
)


@pytest.fixture(scope="session")
def standin_package(tmp_path_factory) -> Installed:
    """The stand-in built as 0.2.1 (the version the contract expects) and installed offline."""
    return install_standin(tmp_path_factory.mktemp("standin-contract"), CONTRACT_VERSION)


@pytest.fixture(scope="session")
def real_package() -> Installed:
    """The real release, unpacked and npm-installed once into ~/.cache/opengram-deploy."""
    tarball = real_tarball()
    if tarball is None:
        pytest.skip(REAL_SKIP_REASON)
    return install_real(tarball)
