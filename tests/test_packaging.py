"""What the installed distribution says of itself: metadata, console scripts,
and the release-wheel configuration.  (Building and installing the sdist and
the wheels is `make dist-check`: tools/dist.)"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastsock

ROOT = Path(__file__).resolve().parent.parent
SUPPORTED = ("3.10", "3.11", "3.12", "3.13")
SCRIPTS = {"fastsock-webserver": "fastsock.webserver:main",
           "fastsock-webclient": "fastsock.webclient:main",
           "fastsock-ping": "fastsock.ping:main"}


def test_one_version_source() -> None:
    assert importlib.metadata.version("fastsock") == fastsock.__version__


def test_license_and_classifiers() -> None:
    metadata = importlib.metadata.metadata("fastsock")
    assert metadata.get_all("License-Expression") == ["MIT"]
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert metadata["Requires-Python"] == f">={SUPPORTED[0]}"
    classifiers = metadata.get_all("Classifier") or []
    assert [c for c in classifiers if c.startswith("License ::")] == []  # the SPDX field says it
    versions = [c.rsplit(" :: ", 1)[1] for c in classifiers
                if c.startswith("Programming Language :: Python :: 3.")]
    assert tuple(versions) == SUPPORTED
    assert "Operating System :: POSIX :: Linux" in classifiers
    assert not [c for c in classifiers if c.startswith("Operating System ::")
                and "Linux" not in c]
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL") or [])
    assert {"Homepage", "Source", "Issues", "Changelog"} <= set(urls)


def test_tools_dist_checks_the_supported_versions() -> None:
    text = (ROOT / "tools" / "dist").read_text()
    assert f"supported=({' '.join(SUPPORTED)})" in text


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_console_script_runs(script: str) -> None:
    points = {point.name: point.value
              for point in importlib.metadata.entry_points(group="console_scripts")}
    assert points.get(script) == SCRIPTS[script]
    # installed beside the interpreter of this environment
    path = shutil.which(script, path=os.path.dirname(sys.executable))
    if path is None:
        pytest.skip(f"{script} is not installed beside {sys.executable}")
    command = [path, "--help"]
    with open(path, "rb") as script_file:
        shebang = script_file.readline()[2:].strip().decode()
    if os.path.realpath(shebang) != os.path.realpath(sys.executable):
        # this interpreter is a launcher that prepares the environment (the
        # sanitizer run preloads its runtime): the script runs under it too
        command.insert(0, sys.executable)
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {script} ")


def test_release_wheels_cover_every_supported_version_and_platform() -> None:
    cibuildwheel = shutil.which("cibuildwheel", path=os.path.dirname(sys.executable))
    if cibuildwheel is None:
        pytest.skip("cibuildwheel is not installed")
    result = subprocess.run(
        [cibuildwheel, "--print-build-identifiers", "--platform", "linux",
         "--archs", "x86_64,aarch64", str(ROOT)],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    wanted = {f"cp{version.replace('.', '')}-{libc}_{arch}"
              for version in SUPPORTED for libc in ("manylinux", "musllinux")
              for arch in ("x86_64", "aarch64")}
    assert set(result.stdout.split()) == wanted
