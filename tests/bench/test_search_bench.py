"""``tidings bench search`` runs end to end on a tiny store and reports every
figure (the figures themselves are recorded in docs/benchmarks.md, not tested)."""

from __future__ import annotations

import orjson
import pytest

from tidings.cli import main


def test_bench_search_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "search", "--json", "--messages", "600", "--conversations", "30"]
    argv += ["--readable", "10", "--queries", "5", "--sends", "50"]
    assert main(argv) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["messages"] == 600
    assert set(report["latency_ms"]) == {"cjk_1", "cjk_2", "cjk_4", "english"}
    for figures in report["latency_ms"].values():
        assert 0 < figures["p50"] <= figures["p99"]
    assert report["sends_per_s_index_on"] > 0 and report["sends_per_s_index_off"] > 0
    assert report["send_ratio_on_over_off"] > 0


def test_bench_search_refuses_bad_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "search", "--readable", "5", "--conversations", "2"]) == 2
    assert "--readable" in capsys.readouterr().out
