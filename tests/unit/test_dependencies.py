"""Dependencies are bounded, locked, and what runs is what is locked.

``pyproject.toml`` gives every dependency a tested range (lower and upper bound); ``requirements.lock``
(runtime: the Dockerfile installs it) and ``requirements-dev.lock`` (runtime + test + otel: ``./dev`` and
CI install it) pin one version of each, inside those ranges; ``./dev lock`` re-resolves them.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = [Requirement(r) for r in PROJECT["dependencies"]]
EXTRAS = [Requirement(r) for extra in ("test", "otel") for r in PROJECT["optional-dependencies"][extra]]


def pins(lock: str) -> dict[str, str]:
    """``name -> version`` of a lock file written by ``uv pip compile``."""
    found = {}
    for line in (ROOT / lock).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"{lock}: {line!r} is not pinned with =="
            found[canonicalize_name(name.split("[")[0])] = version.split(";")[0].strip()
    return found


RUNTIME_LOCK = pins("requirements.lock")
DEV_LOCK = pins("requirements-dev.lock")


@pytest.mark.parametrize("requirement", RUNTIME + EXTRAS, ids=str)
def test_every_dependency_has_a_tested_range(requirement):
    operators = {spec.operator for spec in requirement.specifier}
    assert operators & {">=", "=="} and operators & {"<", "==", "~="}, f"{requirement} needs a lower and an upper bound"


@pytest.mark.parametrize("requirement", RUNTIME, ids=str)
def test_the_runtime_lock_pins_each_dependency_inside_its_range(requirement):
    name = canonicalize_name(requirement.name)
    assert name in RUNTIME_LOCK, f"{name} is not in requirements.lock: run ./dev lock"
    assert requirement.specifier.contains(RUNTIME_LOCK[name]), (name, RUNTIME_LOCK[name], str(requirement.specifier))


@pytest.mark.parametrize("requirement", RUNTIME + EXTRAS, ids=str)
def test_the_dev_lock_pins_each_dependency_inside_its_range(requirement):
    name = canonicalize_name(requirement.name)
    assert name in DEV_LOCK, f"{name} is not in requirements-dev.lock: run ./dev lock"
    assert requirement.specifier.contains(DEV_LOCK[name])


def test_both_locks_agree_on_the_runtime():
    assert {n: v for n, v in DEV_LOCK.items() if n in RUNTIME_LOCK} == RUNTIME_LOCK


@pytest.mark.parametrize("name", sorted(DEV_LOCK))
def test_the_environment_under_test_is_the_locked_one(name):
    # ./dev installs requirements-dev.lock into .venv: the tests run on exactly those versions.
    assert metadata.version(name) == DEV_LOCK[name], f"{name}: installed {metadata.version(name)}, locked {DEV_LOCK[name]}"


def test_the_image_installs_the_runtime_lock():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "-r requirements.lock" in dockerfile and "-r /tmp/requirements.lock" in dockerfile
    assert "--no-deps" in dockerfile  # the project's own wheel adds nothing unlocked
