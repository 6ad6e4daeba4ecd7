"""The import rules of the layers (each package's docstring says them): the core is pure, the
writer and the stores never reach up to the app or the CLI, backends do not import each other, and
nothing in the server imports bench or tests. Read from the sources, imports inside functions too."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIM = ROOT / "shim"

# The core's parsing libraries: JSON, compression and the scrubber's one-pass matcher.
CORE_LIBRARIES = {"orjson", "msgspec", "brotli", "zstandard", "isal", "re2"}
BACKENDS = ("shim.store.sqlite", "shim.store.postgres", "shim.store.supabase")
EDGES = ("shim.app", "shim.assembly", "shim.cli", "shim.web")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, by absolute name (``from a import b`` counts as ``a`` and,
    when ``a.b`` is a module of ours, as ``a.b``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                if _is_module(candidate):
                    found.add(candidate)
    return found


def _is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


MODULES = {module_name(p): imports_of(p) for p in sorted(SHIM.rglob("*.py"))}


def under(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_the_rules_see_every_package() -> None:
    names = set(MODULES)
    for package in ("shim.core", "shim.writer", "shim.store", "shim.cli", "shim.app",
                    "shim.assembly", "shim.alerts", "shim.monitors",
                    "shim.web"):
        assert any(under(n, package) for n in names), package
    assert imports_of(SHIM / "app.py") >= {"starlette.applications", "shim.assembly"}


@pytest.mark.parametrize("module", sorted(n for n in MODULES if under(n, "shim.core")))
def test_the_core_imports_only_the_core_the_standard_library_and_its_parsers(module: str) -> None:
    for imported in MODULES[module]:
        top = imported.split(".")[0]
        allowed = (under(imported, "shim.core") or top in sys.stdlib_module_names
                   or top in CORE_LIBRARIES)
        assert allowed, f"{module} imports {imported}"


@pytest.mark.parametrize("module", sorted(n for n in MODULES
                                          if under(n, "shim.store", "shim.writer")))
def test_stores_and_the_writer_never_import_the_app_or_the_cli(module: str) -> None:
    for imported in MODULES[module]:
        assert not under(imported, *EDGES, "starlette", "uvicorn"), f"{module} imports {imported}"


def test_the_metrics_know_nothing_of_the_layers_that_count() -> None:
    for imported in MODULES["shim.metrics"]:
        assert under(imported, "shim.core") or imported.split(".")[0] in (
            "prometheus_client", *sys.stdlib_module_names), imported


@pytest.mark.parametrize("module", sorted(n for n in MODULES if under(n, "shim.forward")))
def test_forwarding_uses_the_core_and_settings_only(module: str) -> None:
    for imported in MODULES[module]:
        assert not under(imported, *EDGES, "shim.store", "shim.writer", "starlette"), (
            f"{module} imports {imported}")


@pytest.mark.parametrize("module", sorted(n for n in MODULES if under(n, *BACKENDS)))
def test_a_store_backend_never_imports_another_backend(module: str) -> None:
    own = next(b for b in BACKENDS if under(module, b))
    for imported in MODULES[module]:
        others = [b for b in BACKENDS if b != own]
        assert not under(imported, *others), f"{module} imports {imported}"


# Alerts and monitors: the core and the standard library; alerts also deliver (httpx,
# aiosmtplib) and monitors read crontabs (cronsim). Neither reaches the store, the writer, the
# app or the CLI: the integrator wires them in.
FEATURE_LIBRARIES = {"shim.alerts": {"orjson", "httpx", "aiosmtplib"},
                     "shim.monitors": {"cronsim"}}


@pytest.mark.parametrize("module", sorted(n for n in MODULES if under(n, *FEATURE_LIBRARIES)))
def test_alerts_and_monitors_import_only_the_core_and_their_libraries(module: str) -> None:
    package = next(p for p in FEATURE_LIBRARIES if under(module, p))
    for imported in MODULES[module]:
        top = imported.split(".")[0]
        allowed = (under(imported, package, "shim.core") or imported == "shim"
                   or top in sys.stdlib_module_names or top in FEATURE_LIBRARIES[package])
        assert allowed, f"{module} imports {imported}"


@pytest.mark.parametrize("module", sorted(n for n in MODULES if under(n, "shim.web")))
def test_the_web_page_reads_the_store_and_changes_bugs_only_through_the_app(module: str) -> None:
    """The web page may use the core, the store (its protocol and reads), the settings and its own
    modules; state changes reach the writer the app hands it, never one it builds or imports."""
    for imported in MODULES[module]:
        if not imported.startswith("shim"):
            continue
        assert under(imported, "shim.core", "shim.store", "shim.settings", "shim.web",
                     "shim.monitors"), (
            f"{module} imports {imported}")
        assert not under(imported, *BACKENDS), f"{module} imports the backend {imported}"


def test_only_the_app_assembles_a_server() -> None:
    users = {n for n, imported in MODULES.items() if "shim.assembly" in imported}
    assert users == {"shim.app"}


def test_nothing_in_the_server_imports_bench_or_tests() -> None:
    for module, imported in MODULES.items():
        for name in imported:
            assert not under(name, "bench", "tests", "conftest"), f"{module} imports {name}"


@pytest.mark.parametrize("module", sorted(n for n in MODULES if under(n, "shim.core.grouping_v2")))
def test_grouping_v2_imports_only_itself_and_the_standard_library(module: str) -> None:
    for imported in MODULES[module]:
        top = imported.split(".")[0]
        allowed = under(imported, "shim.core.grouping_v2") or top in sys.stdlib_module_names
        assert allowed, f"{module} imports {imported}"
