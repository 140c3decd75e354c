"""The locked set-up (README "Development"): one hashed lock that every environment installs."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.system_tools import SYSTEM_REDIS, SystemTool, check, needs

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
IMAGE_LOCK = ROOT / "requirements-image.lock"


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    marker: str
    hashes: frozenset[str]

    def applies(self) -> bool:
        return not self.marker or Marker(self.marker).evaluate()


def pins(path: Path) -> list[Pin]:
    """The entries of a lock written by ``uv pip compile --generate-hashes``."""
    entries = re.split(r"\n(?=\S)", path.read_text())
    found = []
    for entry in entries:
        head = re.match(r"([A-Za-z0-9_.-]+)==([^\s;\\]+)\s*(?:;\s*([^\\\n]+))?", entry)
        if head is None:
            continue
        found.append(Pin(canonicalize_name(head[1]), head[2], (head[3] or "").strip(),
                         frozenset(re.findall(r"--hash=(sha256:[0-9a-f]{64})", entry))))
    return found


def declared() -> set[str]:
    """Every name pyproject.toml and requirements.in ask for: dependencies, every extra, the install tools."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted += extra
    wanted += [line for line in (ROOT / "requirements.in").read_text().splitlines() if line and not line.startswith("#")]
    return {canonicalize_name(Requirement(line).name) for line in wanted}


def test_the_lock_pins_everything_declared_with_hashes() -> None:
    locked = pins(LOCK)
    assert declared() <= {pin.name for pin in locked}
    assert {"pip", "setuptools", "uv"} <= {pin.name for pin in locked}
    assert all(pin.hashes for pin in locked), [pin.name for pin in locked if not pin.hashes]


def test_the_image_lock_is_the_runtime_share_of_the_lock() -> None:
    full = set(pins(LOCK))
    image = pins(IMAGE_LOCK)
    assert image and all(pin in full for pin in image), [pin.name for pin in image if pin not in full]
    names = {pin.name for pin in image}
    assert {"river", "confluent-kafka", "redis", "pip", "setuptools"} <= names
    assert not names & {"pytest", "mypy", "ruff", "uv"}


def test_this_environment_is_the_lock() -> None:
    """The suite runs on exactly the lock's versions (the Makefile installs it by hash)."""
    if not (ROOT / ".venv").is_dir() or Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip("runs in the environment `make test` creates")
    wrong = {pin.name: (pin.version, metadata.version(pin.name)) for pin in pins(LOCK)
             if pin.applies() and metadata.version(pin.name) != pin.version}
    assert not wrong


def test_every_environment_installs_the_lock_by_hash() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes --no-deps -r $(LOCK)" in makefile
    assert "--no-deps --no-build-isolation -e ." in makefile
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes --no-deps -r requirements-image.lock" in dockerfile
    assert "--no-deps --no-build-isolation ." in dockerfile
    readme = (ROOT / "README.md").read_text()
    last = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line and not line.startswith("#")][-1]
    assert last == "make test" and f"{last}    #" in readme
    assert not (ROOT / "constraints.txt").exists()


def test_ci_fails_instead_of_skipping_when_a_tool_cannot_be_installed(tmp_path: Path) -> None:
    """With no Redis (nor apt-get) to be had: one line naming it and exit 1 under CI; a warning elsewhere."""
    script = str(ROOT / ".ci" / "system-tools")
    ci = subprocess.run(["/bin/bash", script], env={"PATH": str(tmp_path), "CI": "true"}, capture_output=True,
                        text=True, timeout=60)
    assert ci.returncode == 1
    assert len(ci.stderr.splitlines()) == 1 and "redis-server" in ci.stderr and ci.stderr.startswith("CI: ")
    local = subprocess.run(["/bin/bash", script], env={"PATH": str(tmp_path)}, capture_output=True, text=True,
                           timeout=60)
    assert local.returncode == 0 and "skipped" in local.stderr


class _Marked:
    """A stand-in for a collected test carrying one ``needs_tool`` mark."""

    def __init__(self, tool: SystemTool) -> None:
        self.marks = [needs(tool).mark]

    def iter_markers(self, name: str) -> list[pytest.Mark]:
        return [mark for mark in self.marks if mark.name == name]


def test_a_missing_tool_skips_a_test_outside_ci_and_fails_it_in_ci() -> None:
    absent = SystemTool("no-such-package", "nothing", lambda: False)
    with pytest.raises(pytest.skip.Exception, match="no-such-package"):
        check(_Marked(absent), ci=False)  # type: ignore[arg-type]
    with pytest.raises(pytest.fail.Exception, match="CI: needs Debian's no-such-package"):
        check(_Marked(absent), ci=True)  # type: ignore[arg-type]
    check(_Marked(SystemTool("here", "everything", lambda: True)), ci=True)  # type: ignore[arg-type]
    assert SYSTEM_REDIS.package == "redis-server"
