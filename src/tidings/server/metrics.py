"""Prometheus metrics of one server, in their own registry (so several servers
can live in one process, as in tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Latency buckets from 0.5 ms to 5 s: a group commit takes about a millisecond,
# a loaded one tens; anything past seconds is an incident.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge("tidings_connections", "Live authenticated WebSockets", registry=r)
        self.messages = Counter(
            "tidings_messages_accepted", "Messages committed and acked", registry=r
        )
        self.pushes = Counter("tidings_pushes", "Frames pushed to sockets", registry=r)
        self.send_to_commit = Histogram(
            "tidings_send_to_commit_seconds",
            "From a send arriving to its commit (the ack)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.commit_to_push = Histogram(
            "tidings_commit_to_push_seconds",
            "From a commit to its push being written to a socket",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.overflows = Counter(
            "tidings_outbound_overflows", "Sockets cut off for a full outbound queue", registry=r
        )
        self.db_errors = Counter(
            "tidings_database_errors", "Requests that failed on the database", registry=r
        )
        self.requests = Counter(
            "tidings_http_requests", "HTTP requests by status class", ["status"], registry=r
        )
        self.rejected = Counter(
            "tidings_frames_rejected",
            "WebSocket frames answered with an error",
            ["code"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
