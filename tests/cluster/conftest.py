"""A cluster for the many-node tests: a PostgreSQL of its own, a 3-server NATS
cluster and 3 Tidings nodes, all on loopback ports, shared by the module's
tests and torn down however they end."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import Cluster, NatsCluster, Node, Postgres


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    root = Path(tempfile.mkdtemp(prefix="tidings-cluster-"))
    pg = Postgres()
    nats = NatsCluster(root)
    nodes: list[Node] = []
    try:
        pg.init()
        pg.start()
        nats.start_all()
        args = ["--db", pg.dsn, "--bus", nats.url]
        nodes = [Node(f"node{i}", root, args) for i in range(3)]
        for node in nodes:
            node.start()
        yield Cluster(pg, nats, nodes)
    finally:
        for node in nodes:
            node.kill()
        nats.stop_all()
        pg.destroy()
        shutil.rmtree(root, ignore_errors=True)
