"""A real Apache Kafka broker on demand, for `make run`, the tests and the benchmarks.

The order of preference (DESIGN.md, "Kafka for development, tests and CI"):

1. ``FLARE_KAFKA_BOOTSTRAP`` is set: use that cluster, start nothing.
2. A Docker engine answers: ``docker compose -f docker-compose.kafka.yml up -d``.
3. Otherwise: the broker jars of Apache Kafka 4.x, fetched once from Maven Central with
   ``mvn`` (``kafka/pom.xml`` lists them) into a cache outside git, KRaft storage
   formatted, and 1 or 3 combined broker+controller nodes started on 127.0.0.1.

Brokers we start are stopped by their own PID when the context exits.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

KAFKA_VERSION = "4.4.0"
REPO_ROOT = Path(__file__).resolve().parents[1]
POM = REPO_ROOT / "kafka" / "pom.xml"
LOG4J_CONFIG = REPO_ROOT / "kafka" / "log4j2.properties"
COMPOSE_FILE = REPO_ROOT / "docker-compose.kafka.yml"


class BrokerError(RuntimeError):
    """The local broker could not be fetched or started; the message says what to do."""


def cache_dir() -> Path:
    """Where the jars live: ``FLARE_KAFKA_CACHE``, else the user's cache folder (never git)."""
    explicit = os.environ.get("FLARE_KAFKA_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "flare" / f"kafka-{KAFKA_VERSION}"


def ensure_jars(log=print) -> Path:
    """Fetch the broker jars once; later calls return the cached folder at once."""
    libs = cache_dir() / "libs"
    done = cache_dir() / ".complete"
    if done.exists():
        return libs
    if shutil.which("mvn") is None:
        raise BrokerError("no Kafka broker: set FLARE_KAFKA_BOOTSTRAP, or install Maven and Java 17")
    log(f"fetching Apache Kafka {KAFKA_VERSION} broker jars into {libs} (once)")
    tmp = libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [
        "mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
        f"-Dkafka.version={KAFKA_VERSION}", "-DincludeScope=runtime",
        f"-DoutputDirectory={tmp}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise BrokerError(f"mvn could not fetch the Kafka jars:\n{result.stdout}\n{result.stderr}")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    done.touch()
    return libs


def free_port(preferred: int | None = None) -> int:
    """``preferred`` when it is free on 127.0.0.1, else any free port."""
    if preferred:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@dataclass
class Node:
    node_id: int
    port: int
    controller_port: int
    data_dir: Path
    process: subprocess.Popen | None = None

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"


def server_properties(node: Node, voters: str, partitions: int, replication: int) -> str:
    """The broker's configuration: combined broker+controller, KRaft, loopback only."""
    min_isr = 2 if replication >= 3 else 1
    return "\n".join([
        "process.roles=broker,controller",
        f"node.id={node.node_id}",
        f"controller.quorum.voters={voters}",
        f"listeners=PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{node.port}",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
        f"log.dirs={node.data_dir / 'logs'}",
        f"num.partitions={partitions}",
        f"default.replication.factor={replication}",
        f"min.insync.replicas={min_isr}",
        f"offsets.topic.replication.factor={replication}",
        "offsets.topic.num.partitions=8",
        f"transaction.state.log.replication.factor={replication}",
        f"transaction.state.log.min.isr={min_isr}",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=false",
        "log.cleaner.backoff.ms=1000",
        "",
    ])


@dataclass
class LocalCluster:
    """1 or 3 Kafka nodes on 127.0.0.1, started from the cached jars."""

    data_dir: Path
    nodes: int = 1
    preferred_port: int | None = None
    members: list[Node] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{n.port}" for n in self.members)

    def _plan(self) -> None:
        first = self.preferred_port
        used: set[int] = set()
        for i in range(1, self.nodes + 1):
            port = free_port(first if i == 1 else None)
            used.add(port)
            ctrl = free_port()
            while ctrl in used:
                ctrl = free_port()
            used.add(ctrl)
            self.members.append(Node(i, port, ctrl, self.data_dir / f"node-{i}"))

    def start(self, timeout: float = 90.0) -> str:
        libs = ensure_jars()
        if shutil.which("java") is None:
            raise BrokerError("no Kafka broker: set FLARE_KAFKA_BOOTSTRAP, or install Java 17")
        self.members = []
        self._plan()
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.members)
        replication = 3 if self.nodes >= 3 else 1
        cluster_id_file = self.data_dir / "cluster.id"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not cluster_id_file.exists():
            cluster_id_file.write_text(_random_cluster_id())
        cluster_id = cluster_id_file.read_text().strip()
        classpath = f"{libs}/*"
        for node in self.members:
            node.data_dir.mkdir(parents=True, exist_ok=True)
            props = node.data_dir / "server.properties"
            props.write_text(server_properties(node, voters, 3, replication))
            if not (node.data_dir / "logs" / "meta.properties").exists():
                fmt = subprocess.run(
                    ["java", "-cp", classpath, "kafka.tools.StorageTool", "format",
                     "-t", cluster_id, "-c", str(props), "--ignore-formatted"],
                    capture_output=True, text=True,
                )
                if fmt.returncode != 0:
                    raise BrokerError(f"formatting Kafka storage failed:\n{fmt.stdout}{fmt.stderr}")
        for node in self.members:
            self._launch(node, classpath)
        self._wait_ready(timeout)
        return self.bootstrap

    @staticmethod
    def _launch(node: Node, classpath: str) -> None:
        log = open(node.log_file, "ab")
        node.process = subprocess.Popen(
            ["java", "-Xms256m", "-Xmx768m", "-XX:+UseG1GC",
             f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
             "-cp", classpath, "kafka.Kafka", str(node.data_dir / "server.properties")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

    def restart_node(self, node_id: int, timeout: float = 90.0) -> None:
        """Start a stopped or killed node again, on its ports and storage (fault tests)."""
        node = self.members[node_id - 1]
        if node.process and node.process.poll() is None:
            return
        self._launch(node, f"{ensure_jars()}/*")
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for node in self.members:
            while not _broker_answers(node.port):
                if node.process.poll() is not None:
                    tail = node.log_file.read_text(errors="replace")[-3000:]
                    self.stop()
                    raise BrokerError(f"Kafka node {node.node_id} exited:\n{tail}")
                if time.monotonic() > deadline:
                    self.stop()
                    raise BrokerError(f"Kafka node {node.node_id} not ready in {timeout:.0f}s; see {node.log_file}")
                time.sleep(0.2)

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node (fault tests)."""
        node = self.members[node_id - 1]
        if node.process and node.process.poll() is None:
            node.process.kill()
            node.process.wait()

    def stop(self) -> None:
        for node in self.members:
            if node.process and node.process.poll() is None:
                node.process.terminate()
        for node in self.members:
            if node.process:
                try:
                    node.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait()


def _random_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding."""
    import base64

    while True:  # an id starting with '-' would read as an option to the storage tool
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _broker_answers(port: int) -> bool:
    """True when the broker answers a metadata request (not only accepts TCP)."""
    if not port_open(port):
        return False
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    async def probe() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}", request_timeout_ms=3000)
        try:
            await admin.start()
            await admin.describe_cluster()
            return True
        except Exception:
            return False
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    return asyncio.run(probe())


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextlib.contextmanager
def broker(data_dir: Path, *, nodes: int = 1, preferred_port: int | None = None,
           log=print) -> Iterator[str]:
    """Yield a bootstrap address, starting (and afterwards stopping) a broker when needed."""
    configured = os.environ.get("FLARE_KAFKA_BOOTSTRAP")
    if configured:
        yield configured
        return
    if docker_available() and nodes == 1:
        log("starting Kafka with docker compose")
        subprocess.run(["docker", "compose", "-f", str(COMPOSE_FILE), "up", "-d", "--wait"], check=True)
        try:
            yield "127.0.0.1:9092"
        finally:
            subprocess.run(["docker", "compose", "-f", str(COMPOSE_FILE), "stop"], check=False)
        return
    cluster = LocalCluster(Path(data_dir), nodes=nodes, preferred_port=preferred_port)
    bootstrap = cluster.start()
    log(f"local Kafka {KAFKA_VERSION} ready at {bootstrap} (data in {data_dir})")
    try:
        yield bootstrap
    finally:
        cluster.stop()


def run_with_broker(command: list[str], data_dir: Path, *, nodes: int = 1,
                    preferred_port: int | None = 9092) -> int:
    """Run ``command`` with ``FLARE_KAFKA_BOOTSTRAP`` pointing at a broker; return its code.

    Ctrl-C reaches the child (same process group); the broker stops after the child.
    """
    try:
        with broker(data_dir, nodes=nodes, preferred_port=preferred_port,
                    log=lambda m: print(m, file=sys.stderr)) as bootstrap:
            env = dict(os.environ, FLARE_KAFKA_BOOTSTRAP=bootstrap)
            child = subprocess.Popen(command, env=env)
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            forward = lambda signum, _frame: child.send_signal(signum)  # noqa: E731
            signal.signal(signal.SIGTERM, forward)
            try:
                return child.wait()
            finally:
                signal.signal(signal.SIGINT, previous)
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
