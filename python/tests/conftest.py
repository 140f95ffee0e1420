"""Shared fixtures: the datasets beside the repository (a loud failure in CI, a visible skip
elsewhere), the `microgpt` binary the Python numbers are compared with (built by cargo),
and tiny settings that train in milliseconds a step."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
IN_CI = bool(os.environ.get("CI"))

#: A model that trains in well under a millisecond a step: the tests' runs.
TINY = dict(n_embd=8, n_head=2, block_size=8, threads=1)


def tiny_flags(**settings):
    """`TINY` plus `settings` as the command line's flags."""
    flags = []
    for key, value in {**TINY, **settings}.items():
        flags += [f"--{key.replace('_', '-')}", str(value)]
    return flags


def _needed(what: str, reason: str):
    if IN_CI:
        pytest.fail(f"{what} is missing (required in CI): {reason}")
    pytest.skip(f"SKIPPED (not a pass): {what} not found: {reason}")


def _shared(name: str) -> Path:
    path = SHARED / name
    if not path.exists():
        _needed(str(path), "the datasets live in ../shared/data beside the repository")
    return path


@pytest.fixture(scope="session")
def names() -> Path:
    return _shared("names.txt")


@pytest.fixture(scope="session")
def shakespeare() -> Path:
    return _shared("tinyshakespeare.txt")


@pytest.fixture(scope="session")
def binary() -> Path:
    """The `microgpt` binary of this checkout, built by `cargo build --release` (a no-op when
    it is up to date): the command line the package must agree with."""
    cargo = shutil.which("cargo")
    if cargo is None:
        _needed("cargo", "the same-numbers tests compare with the binary it builds")
    subprocess.run([cargo, "build", "--release", "--quiet"], cwd=REPO, check=True)
    meta = subprocess.run(
        [cargo, "metadata", "--format-version", "1", "--no-deps"],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout
    import json

    path = Path(json.loads(meta)["target_directory"]) / "release" / "microgpt"
    assert path.exists(), path
    return path


@pytest.fixture
def cli(binary):
    """Runs the binary; returns its completed process (text), failing on an error exit
    unless `check=False`."""

    def run(*args, check=True, **kwargs):
        done = subprocess.run(
            [str(binary), *map(str, args)], capture_output=True, text=True, stdin=subprocess.DEVNULL, **kwargs
        )
        if check and done.returncode != 0:
            pytest.fail(f"microgpt {' '.join(map(str, args))} failed:\n{done.stdout}{done.stderr}")
        return done

    return run
