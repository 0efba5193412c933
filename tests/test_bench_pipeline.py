"""The pipeline benchmark still runs (tiny sizes; its numbers are not checked: it is no timed test)."""

from __future__ import annotations

import pytest

from bench import bench_pipeline


def test_the_pipeline_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    bench_pipeline.main(["-n", "3", "--warmup", "1"])
    out = capsys.readouterr().out
    for kind in ("echo (bare aiogram)", "registration", "order", "menu"):
        assert f"| {kind} |" in out, out
