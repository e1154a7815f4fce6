"""Docker cannot run here, so the deploy files are checked as data: they parse, name CLI
commands that exist, start things in the right order, and give workers their grace period.
The image's install step is run for real in a clean virtualenv."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from conveyor.cli import app as cli
from conveyor.cli import parse_duration

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = {c.name or c.callback.__name__ for c in cli.registered_commands} | {
    g.name for g in cli.registered_groups
}


def conveyor_command(argv: list[str] | str) -> list[str]:
    words = argv.split() if isinstance(argv, str) else argv
    assert words[0] == "conveyor", words
    assert words[1] in COMMANDS, f"{words[1]!r} is not a conveyor command ({sorted(COMMANDS)})"
    return words


def option(words: list[str], name: str) -> str:
    return words[words.index(name) + 1]


def seconds(value: str) -> float:
    return parse_duration(value)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_starts_postgres_then_migrate_then_api_and_worker(compose):
    s = compose["services"]
    assert s["postgres"]["healthcheck"]["test"]
    assert "pgdata" in compose["volumes"] and s["postgres"]["volumes"][0].startswith("pgdata:")
    assert s["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert conveyor_command(s["migrate"]["command"])[1] == "migrate"
    assert s["migrate"]["restart"] == "no"
    for name in ("api", "worker"):
        assert s[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert s[name]["restart"] == "unless-stopped"
        assert s[name]["environment"]["DATABASE_URL"].startswith("postgresql://")
    api = conveyor_command(s["api"]["command"])
    assert api[1] == "api" and option(api, "--host") == "0.0.0.0"
    assert s["api"]["ports"] == [f"{option(api, '--port')}:{option(api, '--port')}"]


def test_a_stopping_worker_gets_its_grace_period_and_more(compose):
    worker = compose["services"]["worker"]
    words = conveyor_command(worker["command"])
    assert words[1] == "worker"
    assert worker["stop_signal"] == "SIGTERM"
    assert seconds(worker["stop_grace_period"]) > seconds(option(words, "--grace"))
    assert "ports" not in worker  # scalable: --scale worker=3 needs no port
    assert worker["healthcheck"] == {"disable": True}


def test_spark_is_optional(compose):
    for name in ("spark-master", "spark-worker"):
        assert compose["services"][name]["profiles"] == ["spark"]


def railway(name: str) -> dict:
    return tomllib.loads((ROOT / "deploy" / "railway" / f"{name}.toml").read_text())


def test_railway_services_build_the_image_and_run_real_commands():
    api, worker = railway("api"), railway("worker")
    for config in (api, worker):
        assert config["build"]["builder"] == "DOCKERFILE"
        assert (ROOT / config["build"]["dockerfilePath"]).is_file()
        assert config["deploy"]["restartPolicyType"] in ("ON_FAILURE", "ALWAYS")
    assert conveyor_command(api["deploy"]["startCommand"])[1] == "api"
    assert [conveyor_command(c)[1] for c in api["deploy"]["preDeployCommand"]] == ["migrate"]
    assert api["deploy"]["healthcheckPath"] in ("/health", "/ready")
    words = conveyor_command(worker["deploy"]["startCommand"])
    assert words[1] == "worker" and "healthcheckPath" not in worker["deploy"]
    assert worker["deploy"]["drainingSeconds"] > seconds(option(words, "--grace"))


def test_the_dockerfile_copies_every_package_and_runs_unprivileged():
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    for package in {p.rstrip("*") for p in packages}:
        assert re.search(rf"^COPY {package} {package}$", text, re.M), package
    final = text.rsplit("FROM ", 1)[1]
    assert "USER conveyor" in final and "useradd" in final
    assert "pip install" not in final  # no build step in the final stage
    check = re.search(r'HEALTHCHECK .*CMD \["conveyor", "(\w+)"\]', final)
    assert check and check.group(1) in COMMANDS


@pytest.mark.slow
def test_the_image_install_step_works_in_a_clean_virtualenv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    out = subprocess.run(
        [
            str(
                venv / "bin" / "conveyor",
            ),
            "--help",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "worker" in out.stdout and "migrate" in out.stdout
