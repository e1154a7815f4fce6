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


SPARK_SERVICES = ("spark-master", "spark-worker", "worker-spark")


def stages(dockerfile: str) -> dict[str, str]:
    """Each named stage's text (its FROM line to the next), by name."""
    named = {}
    for part in dockerfile.split("\nFROM ")[1:]:
        first = part.split("\n", 1)[0].split()
        if len(first) == 3 and first[1].upper() == "AS":
            named[first[2]] = part
    return named


def test_spark_is_optional(compose):
    for name in SPARK_SERVICES:
        assert compose["services"][name]["profiles"] == ["spark"]
    for name in ("postgres", "migrate", "api", "worker"):
        assert "profiles" not in compose["services"][name]


def test_the_spark_profile_runs_master_workers_and_driver_from_one_conveyor_image(compose):
    s = compose["services"]
    images = {s[name]["image"] for name in SPARK_SERVICES}
    targets = {s[name]["build"]["target"] for name in SPARK_SERVICES}
    assert len(images) == 1 and images != {s["worker"]["image"]}
    assert len(targets) == 1
    # the executors start the driver's Python: not another image's, which lacks our packages
    assert not any("apache/spark" in str(v.get("image")) for v in s.values())
    [target] = targets
    named = stages((ROOT / "deploy" / "Dockerfile").read_text())
    assert target in named, f"no stage {target!r} in deploy/Dockerfile ({sorted(named)})"
    spark = named[target]
    java = re.search(r"openjdk-(\d+)-jre-headless", spark)
    assert java and int(java.group(1)) >= 17  # Spark needs Java 17 or newer
    source = re.search(r"COPY --from=(\S+) /opt/conveyor /opt/conveyor", spark)
    assert source, "the spark stage copies no virtualenv"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(d.startswith("pyspark") for d in extras["spark"])
    assert "pip install --no-cache-dir '.[spark]'" in named[source.group(1)]
    assert "USER conveyor" in spark and "pip install" not in spark
    assert "SPARK_WORKER_DIR=" in spark  # pyspark's own folder is not the user's to write
    python = re.search(r"^python:(\d+\.\d+)-", spark, re.M)
    assert python, "the spark stage is not built on a python image"
    home = re.search(r"SPARK_HOME=(\S+)", spark)
    assert home and home.group(1) == (
        f"/opt/conveyor/lib/python{python.group(1)}/site-packages/pyspark"
    )

    master = s["spark-master"]["command"]
    assert master[:2] == ["spark-class", "org.apache.spark.deploy.master.Master"]
    url = f"spark://{option(master, '--host')}:{option(master, '--port')}"
    assert option(master, "--host") in ("spark-master", s["spark-master"].get("hostname"))
    assert s["spark-master"]["ports"] == [f"{option(master, '--webui-port')}:8080"]

    worker = s["spark-worker"]["command"]
    assert worker[:2] == ["spark-class", "org.apache.spark.deploy.worker.Worker"]
    assert worker[-1] == url and int(option(worker, "--cores")) >= 1
    assert re.fullmatch(r"\d+[mg]", option(worker, "--memory"))
    assert "spark-master" in s["spark-worker"]["depends_on"]
    assert "ports" not in s["spark-worker"]  # --scale spark-worker=N needs no port

    driver = s["worker-spark"]
    words = conveyor_command(driver["command"])
    assert words[1] == "worker" and option(words, "--queues") == "research"
    # one pool child, one Spark application: a second would wait for cores forever
    assert option(words, "--processes") == "1"
    assert driver["environment"]["SPARK_MASTER"] == url
    assert driver["environment"]["DATABASE_URL"] == s["worker"]["environment"]["DATABASE_URL"]
    assert int(driver["environment"]["SPARK_CHUNK"]) >= 1
    assert driver["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "spark-master" in driver["depends_on"]
    assert seconds(driver["stop_grace_period"]) > seconds(option(words, "--grace"))


def test_spark_class_is_a_script_pyspark_installs_beside_the_interpreter():
    """The compose file runs `spark-class` from PATH: the virtualenv's bin, where pip puts
    pyspark's scripts (checked where pyspark is installed)."""
    pytest.importorskip("pyspark")
    script = Path(sys.executable).parent / "spark-class"
    assert script.is_file(), f"no spark-class beside {sys.executable}"


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
    final = text.rsplit("FROM ", 1)[1]  # the default target
    assert "USER conveyor" in final and "useradd" in final
    assert "openjdk" not in final and "spark" not in final  # Java only in the spark target
    assert "pip install" not in final  # no build step in the final stage
    check = re.search(r'HEALTHCHECK .*CMD \["conveyor", "(\w+)"\]', final)
    assert check and check.group(1) in COMMANDS


@pytest.mark.slow
def test_the_image_install_step_works_in_a_clean_virtualenv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        # --no-compile: what is checked is that the dependencies resolve and install and the
        # entry point runs; byte-compiling every installed module was 16 of its 36 s.
        [str(venv / "bin" / "pip"), "install", "--quiet", "--no-compile", str(ROOT)],
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
