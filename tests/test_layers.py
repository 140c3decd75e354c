"""The one-way rules of the code base, checked on its source (no broker, no Redis).

- ``stream`` knows nothing of River, Redis or the learner.
- ``learner.core`` is pure: no Kafka, no Redis, no processes, nothing above it.
- ``learner.state`` (Redis) uses the core, never the runtime, the commands or the embedded stack.
- ``learner.runtime`` never uses the commands or the embedded stack.
- The shared top (``errors``, ``settings``, ``kafka_properties``, ``topics``) uses none of the layers;
  ``connections``, which builds every client, uses ``stream`` and the state layer, nothing above.
- Only the state layer (and ``learner.connections``, which builds the clients) imports redis-py,
  and nothing outside the state layer reaches into a store's client.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LAYERS = ("learner.core", "learner.state", "learner.runtime", "learner.ops", "learner.local")
SHARED_TOP = (*LAYERS, "learner.connections", "stream", "river", "redis", "confluent_kafka")
FORBIDDEN = {
    "stream": ("learner", "river", "redis"),
    "learner.errors": ("learner.settings", "learner.kafka_properties", *SHARED_TOP),
    "learner.settings": ("learner.kafka_properties", *SHARED_TOP),
    "learner.topics": ("learner.settings", "learner.kafka_properties", "learner.errors", *SHARED_TOP),
    "learner.kafka_properties": ("learner.settings", *SHARED_TOP),
    "learner.connections": ("learner.runtime", "learner.ops", "learner.local"),
    "learner.core": ("learner.state", "learner.runtime", "learner.ops", "learner.local", "learner.connections",
                     "learner.settings", "learner.kafka_properties", "redis", "confluent_kafka", "stream",
                     "multiprocessing", "socket"),
    "learner.state": ("learner.runtime", "learner.ops", "learner.local", "learner.settings", "learner.connections",
                      "confluent_kafka", "stream"),
    "learner.runtime": ("learner.ops", "learner.local"),
}
#: Modules that may use every layer: the package itself and ``python -m learner``.
ENTRY_POINTS = ("learner", "learner.__main__")
REDIS_ALLOWED = ("learner.state", "learner.connections")


def modules() -> list[tuple[str, ast.Module]]:
    out = []
    for package in ("stream", "learner"):
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            out.append((name, ast.parse(path.read_text(), str(path))))
    return out


def imports(tree: ast.Module) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize(("name", "tree"), modules(), ids=lambda v: v if isinstance(v, str) else "")
def test_imports_go_one_way(name: str, tree: ast.Module) -> None:
    for layer, forbidden in FORBIDDEN.items():
        if _within(name, layer):
            wrong = sorted(i for i in imports(tree) if any(_within(i, f) for f in forbidden))
            assert not wrong, f"{name} ({layer}) imports {wrong}"
    if not any(_within(name, allowed) for allowed in REDIS_ALLOWED):
        assert not any(_within(i, "redis") for i in imports(tree)), f"{name} imports redis-py"
        reaching = [node.lineno for node in ast.walk(tree)
                    if isinstance(node, ast.Attribute) and node.attr in ("redis", "client")
                    and not (isinstance(node.value, ast.Name) and node.value.id == "redis")]
        assert not reaching, f"{name} reaches into a Redis client at lines {reaching}"


def test_every_module_has_a_rule() -> None:
    """A new module lands in a layer (or a top-level module gets a rule of its own here)."""
    ruled = (*FORBIDDEN, "learner.ops", "learner.local")
    loose = [name for name, _ in modules() if name not in ENTRY_POINTS and not any(_within(name, r) for r in ruled)]
    assert not loose, f"modules under no layer rule: {loose}"


def test_every_module_declares_its_surface() -> None:
    def declares(node: ast.stmt) -> bool:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        return any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets)

    missing = [name for name, tree in modules() if not name.endswith("__main__") and not any(map(declares, tree.body))]
    assert not missing, f"modules without __all__: {missing}"


def test_code_cites_the_readme_never_a_document_outside_the_repository() -> None:
    """References name the README's sections (a maintainer has only the repository), and those sections exist."""
    # the name of the developers' own specification, spelled so that this file does not cite it
    OUTSIDE = "SP" + "EC"  # noqa: N806
    readme = (ROOT / "README.md").read_text().splitlines()
    headings = [line.lstrip("#").strip() for line in readme if line.startswith("#")]
    for package in ("stream", "learner", "tests", "bench"):
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text()
            assert not re.search(rf"\b{OUTSIDE}\b", text), f"{path} cites {OUTSIDE}"
            for cited in (" ".join(c.split()) for c in re.findall(r'README(?:\'s)? "([^"]+)"', text)):
                assert any(h.startswith(cited) for h in headings), f"{path} cites a README section {cited!r} that does not exist"


#: A module is one concept: past this many lines it is two (README "How it is built").
MODULE_LINES = 400
#: A class has one job: past this many lines it has several.
CLASS_LINES = 250


def test_modules_and_classes_stay_small() -> None:
    long_modules, long_classes = [], []
    for name, tree in modules():
        path = ROOT / (name.replace(".", "/") + ".py")
        if not path.exists():
            path = ROOT / name.replace(".", "/") / "__init__.py"
        if len(path.read_text().splitlines()) > MODULE_LINES:
            long_modules.append(name)
        long_classes += [f"{name}.{node.name}" for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
                         and (node.end_lineno or 0) - node.lineno + 1 > CLASS_LINES]
    assert not long_modules, f"modules over {MODULE_LINES} lines: {long_modules}"
    assert not long_classes, f"classes over {CLASS_LINES} lines: {long_classes}"


def test_every_package_is_shipped() -> None:
    """A package missing from pyproject.toml works in the editable install and is absent from the image."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(path.parent.relative_to(ROOT).parts) for package in ("stream", "learner")
             for path in (ROOT / package).rglob("__init__.py")}
    assert listed == found
