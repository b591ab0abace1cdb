"""The figures of a ``tidings bench load`` run: merged from the client
processes, checked, and printed as a table or one JSON object."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .load_scenarios import Scenario
from .load_server import Usage
from .load_verify import SentKey, StreamKey, lost
from .measure import percentile

MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Timings:
    """What the orchestrator measured around the client processes."""

    send_seconds: float
    connections: int
    client_processes: int
    sync_seconds: float | None = None
    # The server's usage during the send phase (None: no server pid known).
    server_before: Usage | None = None
    server_after: Usage | None = None
    # Server memory before and after the sockets were opened.
    server_unconnected: Usage | None = None
    server_connected: Usage | None = None


def _merge(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {"acked": {}, "received": {}, "latencies": [], "ack_latencies": []}
    for report in reports:
        for key in ("acked", "received"):
            target: dict[SentKey | StreamKey, int] = merged[key]
            for k, count in report[key].items():
                target[k] = target.get(k, 0) + count
        merged["latencies"] += report["latencies"]
        merged["ack_latencies"] += report["ack_latencies"]
        for key, value in report.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                merged[key] = merged.get(key, 0) + value
        if report["last_error"]:
            merged["last_error"] = report["last_error"]
    return merged


def _ms(values: list[float], percent: float) -> float | None:
    return round(percentile(values, percent) * 1000, 2) if values else None


def figures(
    scenario: Scenario, reports: Sequence[Mapping[str, Any]], timings: Timings
) -> dict[str, Any]:
    """One flat dict of every figure of the run (the ``--json`` object)."""
    m = _merge(reports)
    accepted = sum(m["acked"].values())
    seconds = max(timings.send_seconds, 1e-9)
    latencies = sorted(m["latencies"])
    acks = sorted(m["ack_latencies"])
    result: dict[str, Any] = {
        "scenario": scenario.name,
        "connections": timings.connections,
        "users": len(scenario.users),
        "send_seconds": round(timings.send_seconds, 3),
        "sent": accepted,
        "sent_per_s": round(accepted / seconds, 1),
        "delivered": m["delivered"],
        "delivered_per_s": round(m["delivered"] / seconds, 1),
        "p50_ms": _ms(latencies, 50),
        "p90_ms": _ms(latencies, 90),
        "p99_ms": _ms(latencies, 99),
        "max_ms": round(latencies[-1] * 1000, 2) if latencies else None,
        "ack_p50_ms": _ms(acks, 50),
        "ack_p99_ms": _ms(acks, 99),
        "lost": lost(m["acked"], m["received"], scenario.members),
        "duplicated": m["duplicated"],
        "out_of_order": m["out_of_order"],
        "errors": m["errors"],
        "last_error": m.get("last_error"),
        "own_echoes": m["echoes"],
        "redundant_pushes": m["redundant_pushes"],
        "history_pulls": m["pulls"],
        "typing_sent": m["typing"],
        "reads_sent": m["reads"],
        "reconnects": m["reconnects"],
        "client_processes": timings.client_processes,
        "generator_cpu_cores": round(m["cpu"] / seconds, 2),
        "sync_ms": None if timings.sync_seconds is None else round(timings.sync_seconds * 1000, 1),
    }
    result.update(_server(timings, seconds, accepted, m["delivered"]))
    return result


def _server(timings: Timings, seconds: float, accepted: int, delivered: int) -> dict[str, Any]:
    before, after = timings.server_before, timings.server_after
    if before is None or after is None:
        return {"server_cpu_cores": None, "server_rss_mb": None}
    cpu = after.cpu - before.cpu
    # CPU per message and per delivery: steadier than rates on a shared machine.
    result: dict[str, Any] = {
        "server_cpu_cores": round(cpu / seconds, 2),
        "server_cpu_us_per_message": round(cpu / accepted * 1e6, 1) if accepted else None,
        "server_cpu_us_per_delivery": round(cpu / delivered * 1e6, 1) if delivered else None,
        "server_rss_mb": round(after.peak_rss / MB, 1),
    }
    idle, busy = timings.server_unconnected, timings.server_connected
    if idle is not None and busy is not None and timings.connections:
        per = (busy.rss - idle.rss) / timings.connections
        result["server_kb_per_connection"] = round(per / 1024, 2)
    return result


def failed(result: Mapping[str, Any]) -> bool:
    """Whether the run broke the delivery contract (or sends were refused)."""
    return bool(
        result["lost"] or result["duplicated"] or result["out_of_order"] or result["errors"]
    )


LABELS = (
    ("connections", "connections", ""),
    ("sent_per_s", "messages accepted", "/s"),
    ("delivered_per_s", "deliveries", "/s"),
    ("p50_ms", "send→receive p50", " ms"),
    ("p90_ms", "send→receive p90", " ms"),
    ("p99_ms", "send→receive p99", " ms"),
    ("max_ms", "send→receive max", " ms"),
    ("ack_p99_ms", "send→ack p99", " ms"),
    ("sync_ms", "offline sync of all", " ms"),
    ("lost", "lost", ""),
    ("duplicated", "duplicated", ""),
    ("out_of_order", "out of order", ""),
    ("errors", "refused sends", ""),
    ("server_cpu_cores", "server CPU", " cores"),
    ("server_cpu_us_per_message", "server CPU per message", " µs"),
    ("server_cpu_us_per_delivery", "server CPU per delivery", " µs"),
    ("server_rss_mb", "server peak RSS", " MB"),
    ("server_kb_per_connection", "server memory per socket", " KB"),
    ("generator_cpu_cores", "generator CPU", " cores"),
)


def describe(result: Mapping[str, Any]) -> str:
    lines = [
        f"scenario {result['scenario']}: {result['users']} users, {result['sent']} messages"
        f" in {result['send_seconds']} s, {result['client_processes']} client processes"
    ]
    for key, label, unit in LABELS:
        value = result.get(key)
        if value is not None:
            shown = f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"
            lines.append(f"  {label:<26} {shown}{unit}")
    if result.get("last_error"):
        lines.append(f"  last error: {result['last_error']}")
    lines.append("  delivery: " + ("FAILED" if failed(result) else "verified, nothing lost"))
    return "\n".join(lines)
