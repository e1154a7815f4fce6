"""A throwaway Spark standalone cluster on 127.0.0.1: one master and N workers, each a
separate JVM started from the `bin/spark-class` script that the pyspark package ships.

Used by tests/spark (a Conveyor worker with SPARK_MASTER pointed at it) and by
`python -m bench.spark_cluster`. The cluster runs pyspark's own Spark, so the driver and the
executors are the same version, and its executors start Python workers with the driver's
interpreter (PYSPARK_PYTHON), so they have Conveyor's packages. Each process leads its own
process group: `stop` kills the group, which takes the executors and their Python workers
with it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from conveyor.embedded import free_port
from jobs.errors import ConfigurationError, ConveyorError
from jobs.logging import get_logger

log = get_logger(__name__)

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


class SparkNotFound(ConfigurationError):
    """No pyspark package (the `spark` extra) or no `java` on PATH."""


class SparkClusterError(ConveyorError):
    """The standalone cluster did not come up."""


def spark_home() -> Path:
    """The Spark that pyspark ships: its folder holds bin/spark-class and jars/."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise SparkNotFound("pyspark is not installed: pip install 'conveyor[spark]'")
    home = Path(spec.origin).parent
    if not (home / "bin" / "spark-class").is_file():
        raise SparkNotFound(f"pyspark at {home} has no bin/spark-class")
    if shutil.which("java") is None:
        raise SparkNotFound("Spark needs Java 17 or newer on PATH")
    return home


class SparkCluster:
    """`workers` standalone workers of `cores` cores and `memory` each, under one master;
    logs and the workers' work folders (each executor's stdout and stderr) under `root`."""

    def __init__(self, root: Path, workers: int = 1, cores: int = 1, memory: str = "1g") -> None:
        self.root = root
        self.workers = workers
        self.cores = cores
        self.memory = memory
        self.port = free_port()
        self.webui_port = free_port()
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def master_url(self) -> str:
        """What a driver's SPARK_MASTER names."""
        return f"spark://127.0.0.1:{self.port}"

    def work_dir(self, worker: int) -> Path:
        return self.root / f"worker-{worker}"

    def _env(self, home: Path) -> dict[str, str]:
        return {
            **os.environ,
            "SPARK_HOME": str(home),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_LOG_DIR": str(self.root / "logs"),
            "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
        }

    def _spawn(self, home: Path, name: str, args: list[str]) -> None:
        log_file = (self.root / f"{name}.log").open("wb")
        try:
            proc = subprocess.Popen(
                [str(home / "bin" / "spark-class"), *args],
                env=self._env(home),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed whole by stop()
            )
        finally:
            log_file.close()
        self.procs.append(proc)

    def start(self, timeout: float = 90.0) -> str:
        """Starts the master, then the workers; returns the master's URL once every worker
        has registered."""
        home = spark_home()
        self.root.mkdir(parents=True, exist_ok=True)
        self._spawn(
            home,
            "master",
            [
                MASTER_CLASS,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--webui-port",
                str(self.webui_port),
            ],
        )
        deadline = time.monotonic() + timeout
        self._wait(lambda s: s.get("status") == "ALIVE", deadline, "the master")
        for n in range(self.workers):
            self.work_dir(n).mkdir(exist_ok=True)
            self._spawn(
                home,
                f"worker-{n}",
                [
                    WORKER_CLASS,
                    "--host",
                    "127.0.0.1",
                    "--cores",
                    str(self.cores),
                    "--memory",
                    self.memory,
                    "--webui-port",
                    "0",  # any free port: two workers on one host cannot share 8081
                    "--work-dir",
                    str(self.work_dir(n)),
                    self.master_url,
                ],
            )
        self._wait(
            lambda s: s.get("aliveworkers") == self.workers, deadline, f"{self.workers} workers"
        )
        log.info(
            "spark_cluster.started",
            master=self.master_url,
            workers=self.workers,
            cores=self.cores,
            memory=self.memory,
        )
        return self.master_url

    def _wait(self, ready: Callable[[dict[str, Any]], bool], deadline: float, what: str) -> None:
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise SparkClusterError(
                        f"a Spark process exited with {proc.returncode}: see {self.root}/*.log"
                    )
            try:
                if ready(self.status()):
                    return
            except (OSError, json.JSONDecodeError):  # not listening, or not serving /json/ yet
                pass
            time.sleep(0.25)
        raise SparkClusterError(f"{what} did not come up in time: see {self.root}/*.log")

    def status(self) -> dict[str, Any]:
        """The master's /json/: workers, cores, active and completed applications."""
        url = f"http://127.0.0.1:{self.webui_port}/json/"
        with urllib.request.urlopen(url, timeout=2) as answer:
            status: dict[str, Any] = json.load(answer)
            return status

    def executor_logs(self, worker: int) -> list[Path]:
        """The stderr of every executor this worker has run (app-*/<executor>/stderr)."""
        return sorted(self.work_dir(worker).glob("app-*/*/stderr"))

    def stop(self) -> None:
        for proc in self.procs:
            # the group even when its leader is gone: an executor may outlive its worker
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        self.procs.clear()

    def __enter__(self) -> SparkCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
