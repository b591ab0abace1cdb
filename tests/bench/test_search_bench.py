"""``tidings bench search`` runs end to end on a tiny store and reports every
figure (the figures themselves are recorded in docs/benchmarks.md, not tested)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tidings.cli import main


def test_bench_search_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "search", "--json", "--messages", "600", "--conversations", "30"]
    argv += ["--readable", "10", "--queries", "5", "--sends", "50", "--im-users", "20"]
    argv += ["--backlog", "100", "--appends", "40"]
    assert main(argv) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["messages"] == 600 and report["backlog"] == 100
    # Single indexed appends (SQLite: one setting).
    assert report["appends"] == 40 and set(report["append_latency_ms"]) == {"default"}
    figures = report["append_latency_ms"]["default"]
    assert 0 < figures["p50"] <= figures["p99"] <= figures["p99_9"] <= figures["max"]
    # Timed twice: just after the load, and with 100 more messages not yet
    # merged into the index.
    for timing in ("latency_ms", "latency_ms_backlog"):
        assert set(report[timing]) == {"cjk_1", "cjk_2", "cjk_4", "english"}
        for figures in report[timing].values():
            assert 0 < figures["p50"] <= figures["p99"]
    assert report["sends_per_s_index_on"] > 0 and report["sends_per_s_index_off"] > 0
    assert report["send_ratio_on_over_off"] > 0
    # The product-level probe: direct messages through tidings.im.messaging.send.
    assert report["im_users"] == 20 and report["im_dms"] == 100
    assert report["im_sends_per_s_index_on"] > 0 and report["im_sends_per_s_index_off"] > 0
    assert report["im_send_ratio_on_over_off"] > 0
    assert report["im_index_overhead"] == pytest.approx(
        1 - report["im_send_ratio_on_over_off"], abs=0.002
    )


def test_bench_search_describes_both_send_probes(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "search", "--messages", "200", "--conversations", "10", "--readable", "5"]
    argv += ["--queries", "3", "--sends", "50", "--im-users", "10", "--appends", "32"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "32 single indexed appends, 16 writers at once:" in out
    assert "storage sends/s" in out
    assert "after 9,000 more messages (not yet merged into the index):" in out
    # 10 users make 45 pairs, fewer than 5 conversations per user: all of them.
    assert "IM sends/s (messaging.send, 64 senders, 45 DMs of 10 users)" in out


def test_bench_search_refuses_bad_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "search", "--readable", "5", "--conversations", "2"]) == 2
    assert "--readable" in capsys.readouterr().out
    assert main(["bench", "search", "--im-users", "1"]) == 2
    assert "--im-users" in capsys.readouterr().out
    assert main(["bench", "search", "--backlog", "-1"]) == 2
    assert "--backlog" in capsys.readouterr().out
    assert main(["bench", "search", "--appends", "0"]) == 2
    assert "--appends" in capsys.readouterr().out


def test_bench_search_on_postgres_times_appends_with_and_without_background_merges(
    pg_database: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "search", "--backend", "postgres", "--dsn", pg_database.url, "--json"]
    argv += ["--messages", "300", "--conversations", "10", "--readable", "5", "--queries", "3"]
    argv += ["--sends", "30", "--im-users", "6", "--backlog", "20", "--appends", "32"]
    assert main(argv) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert set(report["append_latency_ms"]) == {"background_merge", "merge_in_append"}
