#!/usr/bin/env python3
"""Idempotent preparation of a machine for the tests and the sandbox.

Steps (each is a subcommand and a function):

  docker       ensure a Docker engine answers ``docker info`` (installs docker.io
               and starts ``dockerd`` detached when needed; never a second one)
  images       ensure the systemd base image ``ogd-base:trixie`` (debootstrap +
               ``docker import``), rebuilt when its recipe changes, and
               ``ogd-pkgs:trixie`` = it + the packages the roles install
               (rebuilt when that list or the base image changes);
               ``--suite bookworm`` (repeatable) also ensures ``ogd-base:bookworm``
               by the same recipe (tools/test.py does so for a scenario whose
               molecule.yml names it)
  venv         ensure ``$OGD_CACHE/venv-<key>`` with requirements-dev.txt installed
  collections  extract the collections pinned in requirements.yml and
               requirements-dev.yml from the
               ``ansible`` wheel on PyPI (Galaxy is not reachable)
  browser      ensure Debian's ``chromium`` and ``chromium-driver`` (the headless
               browser of molecule/shared/tests/test_browser.py); prints the
               driver's path. Not part of ``all``: only the browser test needs it.
  all          all of the above, then print a shell-sourceable env block
  env          print the env block only (no checks, no installs)

Progress lines go to stderr, one per step, with the time taken; what a caller
may want to capture (a path, the env block) goes to stdout, so
``eval "$(python3 tools/hostprep.py all)"`` works.

Everything is cached under ``$OGD_CACHE`` (default ``~/.cache/opengram-deploy``);
nothing is written into the repository. Standard library only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.ogd.common import HostPrepError, apt_install, cache_lock, say, step, which  # noqa: E402
from tools.ogd.docker import ensure_docker  # noqa: E402
from tools.ogd.env import ensure_all, env_block  # noqa: E402
from tools.ogd.galaxy import ensure_collections  # noqa: E402
from tools.ogd.images import (BASE_IMAGE, BASE_SUITES, DEBIAN_SUITE, PKGS_IMAGE,  # noqa: E402
                               ensure_base_image, ensure_pkgs_image)
from tools.ogd.roles import package_list  # noqa: E402
from tools.ogd.venv import ensure_venv  # noqa: E402

BROWSER_PACKAGES = ["chromium", "chromium-driver"]


def ensure_browser() -> str:
    """Debian's chromium and its driver, installed when missing; the driver's path."""
    with step("browser") as note:
        with cache_lock("browser"):
            if not (which("chromium") and which("chromedriver")):
                apt_install(BROWSER_PACKAGES)
                note("installed " + " ".join(BROWSER_PACKAGES))
            else:
                note("already installed")
        driver = which("chromedriver")
        if not driver or not which("chromium"):
            raise HostPrepError("chromium or chromedriver missing after apt-get install")
        return driver


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hostprep", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Progress goes to stderr; paths and the env block to stdout.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("docker", help="ensure a running Docker engine")
    p_img = sub.add_parser("images", help=f"ensure the {BASE_IMAGE} and {PKGS_IMAGE} images (needs docker)")
    p_img.add_argument("--force", action="store_true", help="rebuild even if up to date")
    p_img.add_argument("--suite", action="append", default=[],
                       choices=[s for s in BASE_SUITES if s != DEBIAN_SUITE],
                       help="also ensure ogd-base:SUITE (repeatable)")
    sub.add_parser("venv", help="ensure the dev venv; print its path")
    sub.add_parser("collections", help="ensure the pinned collections; print the path")
    sub.add_parser("browser", help="ensure chromium and chromium-driver; print the driver's path")
    sub.add_parser("packages", help=f"print the packages baked into {PKGS_IMAGE}, one a line")
    sub.add_parser("all", help="all steps, then print the env block")
    sub.add_parser("env", help="print the env block without checking anything")
    args = parser.parse_args(argv)
    try:
        if args.command == "docker":
            ensure_docker()
        elif args.command == "images":
            ensure_docker()
            ensure_base_image(force=args.force)
            ensure_pkgs_image(force=args.force)
            for suite in args.suite:
                ensure_base_image(force=args.force, suite=suite)
        elif args.command == "venv":
            print(ensure_venv())
        elif args.command == "collections":
            print(ensure_collections())
        elif args.command == "browser":
            print(ensure_browser())
        elif args.command == "packages":
            print("\n".join(package_list()))
        elif args.command == "all":
            print(env_block(ensure_all()), end="")
        elif args.command == "env":
            print(env_block(), end="")
    except HostPrepError as exc:
        say(f"hostprep {args.command}: error: {exc}")
        return 1
    except KeyboardInterrupt:
        say(f"hostprep {args.command}: interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
