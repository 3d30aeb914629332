"""A real two-node Ray cluster: `ray start --head` and a second `ray start --address` as separate process trees,
in two network namespaces joined by a veth pair where the machine allows it (so the nodes talk over a real
interface), else both on loopback. `kdbench run --executor ray --address HEAD` spreads the suite over both nodes;
the worker node's raylet is then killed mid-run, and its run is retried on the head.

Everything the test starts lives in two sessions of its own (a node's workers leave its process group, never its
session) and is killed by session at the end, with the namespaces; `ray stop` would stop every Ray on the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from kdbench.executors.ray_cluster import NODE_TAG
from tests.conftest import TINY_DIGITS, write_suite
from tests.test_mlflow_server import free_port, session_alive, stop_session

pytest.importorskip("ray")

SUITE = TINY_DIGITS.format(name="cluster", seeds=4, methods="[student-only, kd]").replace(
    "student: {epochs: 1}", "student: {epochs: 60}")  # long enough that the worker's raylet dies mid-run
COMBINATIONS = 4 * (1 + 2)  # a teacher and two students per seed
RAY_ENVIRONMENT = {
    "RAY_AUTH_MODE": "disabled",
    # a lost node is declared dead after ~2 s instead of ~15 s, so the run retried on the head starts at once
    "RAY_health_check_period_ms": "500", "RAY_health_check_timeout_ms": "500",
    "RAY_health_check_failure_threshold": "4",
}


@dataclass
class Node:
    name: str
    ip: str
    namespace: str | None
    """The network namespace it runs in; None on loopback."""
    process: subprocess.Popen | None = None
    log: Path | None = None
    node_id: str = ""
    raylet: int = 0
    resources: str = ""
    """What its raylet says the node offers (``CPU,1,kdbench_worker,1,...``)."""

    def command(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *argv] if self.namespace else list(argv)


@dataclass
class Cluster:
    head: Node
    worker: Node
    network: str
    gcs_port: int

    @property
    def address(self) -> str:
        return f"{self.head.ip}:{self.gcs_port}"


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=30)


def _namespaces(tag: str) -> list[str]:
    """Two network namespaces joined by a veth pair, 10.77.0.1 and 10.77.0.2 (each pair is private to its
    namespaces, so concurrent tests may reuse the addresses); [] where this machine forbids them."""
    head, worker = f"kd{tag}h", f"kd{tag}w"
    made: list[str] = []
    try:
        for namespace in (head, worker):
            _ip("netns", "add", namespace)
            made.append(namespace)
        _ip("link", "add", f"kdv{tag}h", "type", "veth", "peer", "name", f"kdv{tag}w")
        for namespace, end, address in ((head, f"kdv{tag}h", "10.77.0.1/24"), (worker, f"kdv{tag}w", "10.77.0.2/24")):
            _ip("link", "set", end, "netns", namespace)
            _ip("-n", namespace, "addr", "add", address, "dev", end)
            _ip("-n", namespace, "link", "set", end, "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"network namespaces unavailable ({error}); both nodes on loopback")
        _remove_namespaces(made)
        return []
    return made


def _remove_namespaces(namespaces: list[str]) -> None:
    for namespace in namespaces:  # deleting a namespace deletes the veth end inside it, and so the pair
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30)


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _same_priority(pid: int) -> None:
    """A new session is a new scheduler autogroup: give it this process's, so the cluster never takes a bigger
    share of a shared machine than the test that started it."""
    try:
        nice = Path("/proc/self/autogroup").read_text().split()[-1]
        Path(f"/proc/{pid}/autogroup").write_text(nice)
    except (OSError, IndexError):
        pass


def _start(node: Node, arguments: list[str], temp: Path) -> None:
    node.log = temp / f"{node.name}.log"
    with node.log.open("w") as log:
        node.process = subprocess.Popen(
            node.command("ray", "start", "--block", "--disable-usage-stats", f"--node-ip-address={node.ip}",
                         f"--temp-dir={temp / 'ray'}", f"--dashboard-agent-listen-port={free_port()}", *arguments),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **RAY_ENVIRONMENT})
    _same_priority(node.process.pid)
    deadline = time.monotonic() + 120
    while "Ray runtime started" not in node.log.read_text():
        if node.process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"ray start ({node.name}) did not come up:\n{node.log.read_text()[-3000:]}")
        time.sleep(0.5)
    while not node.raylet:  # the raylet names its node id and resources on its command line
        for pid in session_alive(node.process.pid):
            argv = _cmdline(pid)
            if argv and argv[0].endswith("/raylet"):
                options = dict(a[2:].split("=", 1) for a in argv[1:] if a.startswith("--") and "=" in a)
                node.raylet, node.node_id, node.resources = pid, options["node_id"], options["static_resource_list"]
        if time.monotonic() > deadline:
            pytest.fail(f"no raylet in {node.name}'s session")
        time.sleep(0.2)


@pytest.fixture
def ray_cluster() -> Iterator[Cluster]:
    """A head with 1 CPU and a worker node with 1 CPU and a resource of its own (`kdbench_worker`), each in its
    own session (and network namespace where possible); all of it killed afterwards."""
    if shutil.which("ray") is None:
        pytest.skip("the `ray` command is not on PATH")
    temp = Path(tempfile.mkdtemp(prefix="kdray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    tag = str(os.getpid() % 100000)
    namespaces = _namespaces(tag) if shutil.which("ip") and os.geteuid() == 0 else []
    if namespaces:
        head, worker = Node("head", "10.77.0.1", namespaces[0]), Node("worker", "10.77.0.2", namespaces[1])
    else:
        head, worker = Node("head", "127.0.0.1", None), Node("worker", "127.0.0.1", None)
    cluster = Cluster(head, worker, "two network namespaces over a veth pair" if namespaces else "loopback",
                      free_port())
    try:
        _start(head, ["--head", f"--port={cluster.gcs_port}", "--num-cpus=1", "--include-dashboard=false",
                      f"--dashboard-port={free_port()}"], temp)
        _start(worker, [f"--address={cluster.address}", "--num-cpus=1",
                        f"--resources={json.dumps({'kdbench_worker': 1})}"], temp)
        assert "kdbench_worker" in worker.resources and "kdbench_worker" not in head.resources
        yield cluster
    finally:
        leftover = [pid for node in (worker, head) if node.process for pid in stop_session(node.process)]
        _remove_namespaces(namespaces)
        shutil.rmtree(temp, ignore_errors=True)
        assert not leftover, f"processes of the cluster outlived it: {leftover}"


def _runs(uri: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("cluster")
    return client.search_runs([experiment.experiment_id]) if experiment else []


@pytest.mark.slow
def test_a_suite_spreads_over_two_ray_nodes_and_a_lost_nodes_run_is_retried_on_the_head(
        ray_cluster: Cluster, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KDBENCH_THREADS", "1")
    monkeypatch.setenv("KDBENCH_PLUGINS", "vision,methods")
    head, worker = ray_cluster.head, ray_cluster.worker
    suite = write_suite(isolated / "cluster.yaml", SUITE)
    store = f"sqlite:///{isolated / 'cluster.db'}"  # on the filesystem both nodes share
    started = time.monotonic()
    out, err = isolated / "driver.out", isolated / "driver.err"  # files, not pipes: nothing blocks while we watch
    with out.open("w") as stdout, err.open("w") as stderr:
        driver = subprocess.Popen(  # on the head, as a user runs it there
            head.command(sys.executable, "-m", "kdbench.cli", "run", str(suite), "--executor", "ray", "--address",
                         ray_cluster.address, "--max-parallel", "2", "--tracking-uri", store),
            stdout=stdout, stderr=stderr, env={**os.environ, **RAY_ENVIRONMENT})
    killed_at, victim = None, None
    try:
        while driver.poll() is None and victim is None:
            time.sleep(0.5)
            runs = _runs(store)
            finished = Counter(r.data.tags.get(NODE_TAG) for r in runs if r.info.status == "FINISHED"
                               and r.data.tags["kdbench.role"] != "teacher")
            running = [r for r in runs if r.info.status == "RUNNING" and r.data.tags.get(NODE_TAG) == worker.node_id]
            if finished[head.node_id] and finished[worker.node_id] and running:
                victim = running[0].data.tags["kdbench.config_hash"]
                os.kill(worker.raylet, signal.SIGKILL)
                killed_at = time.time() * 1000
        driver.wait(timeout=900)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    elapsed = time.monotonic() - started
    assert driver.returncode == 0, err.read_text()[-3000:] + out.read_text()[-3000:]
    assert victim is not None, "the suite ended before the worker node held a run to kill"

    runs = _runs(store)
    names = {head.node_id: "head", worker.node_id: "worker"}
    node_of = {r.info.run_id: names.get(r.data.tags.get(NODE_TAG), "none") for r in runs}
    after = [r for r in runs if r.info.start_time > killed_at]
    print(f"\n{ray_cluster.network}; suite {elapsed:.0f} s")
    for node in (head, worker):
        print(f"  {node.name}: {node.node_id[:12]} at {node.ip}, {node.resources.split(',memory')[0]}")
    for (node, status), count in sorted(Counter((node_of[r.info.run_id], r.info.status) for r in runs).items()):
        print(f"  runs on {node:6} {status:8} {count}")
    print(f"  worker raylet killed while it ran {victim[:12]}: "
          + ", then ".join(f"{r.info.status} on {node_of[r.info.run_id]}"
                           for r in sorted(runs, key=lambda r: r.info.start_time)
                           if r.data.tags["kdbench.config_hash"] == victim))
    print(f"  started after the kill: {len(after)}, on {sorted({node_of[r.info.run_id] for r in after})}")

    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert len(finished) == COMBINATIONS and len({r.data.tags["kdbench.config_hash"] for r in finished}) == COMBINATIONS
    assert {r.info.status for r in runs} <= {"FINISHED", "KILLED"}
    assert {node_of[r.info.run_id] for r in finished} == {"head", "worker"}, "runs landed on both nodes"
    killed = [r for r in runs if r.info.status == "KILLED"]
    assert [(r.data.tags["kdbench.config_hash"], node_of[r.info.run_id]) for r in killed] == [(victim, "worker")]
    retry = next(r for r in finished if r.data.tags["kdbench.config_hash"] == victim)
    assert node_of[retry.info.run_id] == "head"
    assert after and {node_of[r.info.run_id] for r in after} == {"head"}, "nothing runs on a dead node"
    assert "worker died running" in err.read_text() and "retrying" in err.read_text()
