"""The README's install command on a new machine, and the locked versions against the declared
ranges: a fresh virtual environment gets exactly what the suite passed with, and every range the
project declares is one the tests exercise."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

from conftest import PUBLIC_KEY, free_port, run_script, script, sdk_python
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SDK_PYPROJECT = tomllib.loads((ROOT / "sdk_config" / "pyproject.toml").read_text())


def pins(name: str) -> dict[str, Version]:
    """``requirements/NAME``'s pins, by normalised project name."""
    found = {}
    for line in (ROOT / "requirements" / name).read_text().splitlines():
        if line and not line.startswith("#"):
            requirement = Requirement(line)
            [spec] = requirement.specifier
            assert spec.operator == "==", line
            found[_canonical(requirement.name)] = Version(spec.version)
    return found


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_declared_dependency_is_locked_within_its_range() -> None:
    locked = pins("lock.txt")
    project = PYPROJECT["project"]
    declared = [*project["dependencies"],
                *(r for extra in project["optional-dependencies"].values() for r in extra)]
    for line in declared:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = _canonical(requirement.name)
        assert name in locked, f"{requirement.name} is declared but not locked"
        assert locked[name] in requirement.specifier, (line, locked[name])


def test_both_sentry_sdk_majors_the_project_allows_are_locked_and_tested() -> None:
    """``sentry-sdk>=2.40,<4`` spans two majors: each has its own locked environment (the
    scanner-side tests run in both), and each pin is inside every range that names the SDK."""
    ranges = [Requirement(r) for r in (*SDK_PYPROJECT["project"]["dependencies"],
                                       *PYPROJECT["project"]["optional-dependencies"]["test"])
              if Requirement(r).name == "sentry-sdk"]
    assert ranges
    majors = {}
    for name in ("sdk2.txt", "sdk3.txt"):
        version = pins(name)["sentry-sdk"]
        majors[version.major] = version
        for requirement in ranges:
            assert version in requirement.specifier, (name, version, str(requirement))
    assert set(majors) == {2, 3}
    for requirement in ranges:  # no third major is admitted without an environment of its own
        assert Version("4.0.0") not in requirement.specifier
        assert Version("1.45.1") not in requirement.specifier


def test_the_sdk_environments_run_the_locked_versions() -> None:
    for major in ("2", "3"):
        locked = pins(f"sdk{major}.txt")["sentry-sdk"]
        result = subprocess.run(
            [sdk_python(major), "-c", "import sentry_sdk; print(sentry_sdk.VERSION)"],
            capture_output=True, text=True, check=True)
        assert Version(result.stdout.strip()) == locked


def test_the_dockerfile_installs_from_the_lock_with_the_supabase_extra() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY requirements/lock.txt" in dockerfile
    [install] = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert "-c requirements/lock.txt" in install
    assert "'.[supabase]'" in install


def test_readme_install_and_serve_command_works_in_a_fresh_venv(tmp_path: Path) -> None:
    """The README's first command, as written, in an empty venv and a copy of the checkout: the
    server it starts keeps its data in ./data and stores a real SDK's event."""
    [command] = re.findall(r"```sh\n(.+?)\n```", README, flags=re.DOTALL)[:1]
    install, serve = command.split(" && ")
    assert install == "python3 -m pip install -c requirements/lock.txt ."
    assert serve == "python3 -m shim serve"
    checkout = tmp_path / "checkout"
    for name in ("pyproject.toml", "README.md", "requirements", "shim"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, checkout / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            checkout.mkdir(exist_ok=True)
            shutil.copy(source, checkout / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([python, *install.split()[1:], "--quiet", "--disable-pip-version-check"],
                   cwd=checkout, check=True, timeout=600)
    installed = dict(line.split("==") for line in subprocess.run(
        [python, "-m", "pip", "freeze", "--disable-pip-version-check"], capture_output=True,
        text=True, check=True).stdout.split() if "==" in line)
    locked = pins("lock.txt")
    for name, version in installed.items():
        if _canonical(name) != "shim":
            assert Version(version) == locked[_canonical(name)], name

    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "SHIM_PORT": str(port), "SHIM_PUBLIC_KEYS": PUBLIC_KEY,
           "SHIM_ADMIN_TOKEN": "install-test-admin-token-0123"}
    with (tmp_path / "serve.log").open("wb") as log:
        server = subprocess.Popen([python, *serve.split()[1:]], cwd=checkout, env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                    break
            except OSError:
                assert server.poll() is None, (tmp_path / "serve.log").read_text()
                subprocess.run(["sleep", "0.05"], check=True)
        result = run_script(script("""
            import os
            import sentry_sdk

            sentry_sdk.init(dsn=os.environ["SENTRY_DSN"])
            sentry_sdk.capture_message("installed from the README", level="fatal")
        """), f"http://{PUBLIC_KEY}@127.0.0.1:{port}/1", python=sdk_python("3"))
        assert result.returncode == 0, result.stderr
        # The web page's templates and stylesheet were installed with the package.
        with urllib.request.urlopen(f"{url}/login", timeout=5) as page:
            assert b'name="token"' in page.read()
        with urllib.request.urlopen(f"{url}/static/shim.css", timeout=5) as css:
            assert css.headers["content-type"].startswith("text/css")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)
    assert (checkout / "data" / "shim.db").exists()
    import sqlite3

    db = sqlite3.connect(checkout / "data" / "shim.db")
    try:
        rows = db.execute("SELECT message, log_level FROM error_logs").fetchall()
    finally:
        db.close()
    assert rows == [("installed from the README", "critical")]
