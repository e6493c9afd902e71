"""The engine benchmark's ``rectify`` ablation: Aria RGB Fisheye624 frames to the pinhole."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aria_perception.bench.ablation import ABLATIONS
from aria_perception.bench.engine_bench import (
    RECTIFY,
    bench_rectification,
    choose_ablations,
    main,
)
from aria_perception.bench.errors import UsageError
from aria_perception.bench.sizes import Size
from aria_perception.records import EngineConfig


def test_rectify_is_an_ablation_of_all_and_by_name() -> None:
    assert choose_ablations("all") == [*ABLATIONS, RECTIFY]
    assert [a.name for a in choose_ablations("rectify, fp32")] == ["rectify", "fp32"]
    assert [a.name for a in choose_ablations("none")] == ["default"]
    with pytest.raises(UsageError, match="turbo"):
        choose_ablations("rectify,turbo")
    assert RECTIFY.config(EngineConfig()).rectify


def test_the_bench_calibration_is_the_aria_rgb_camera_scaled() -> None:
    config = RECTIFY.config(EngineConfig())
    full = bench_rectification(Size(1408, 1408), config)
    assert full.output_size == (1024, 1024)
    assert np.isfinite(full.grid()).all()  # the default pinhole sees no black corner
    half = bench_rectification(Size(704, 704), config).calibration
    assert half.k[0] == pytest.approx(full.calibration.k[0] / 2)
    assert half.k[2] == pytest.approx((full.calibration.k[2] + 0.5) / 2 - 0.5)


@pytest.mark.slow
def test_a_short_cpu_run_of_the_rectify_ablation(tmp_path: Path) -> None:
    out = tmp_path / "engine.json"
    args = "--size 176x176 --iterations 1 --warmup 0 --device cpu --ablations rectify"
    assert main([*args.split(), "--json", str(out)]) == 0
    [run] = json.loads(out.read_text())["results"]
    assert run["name"] == "rectify" and run["config"]["rectify"]
    assert run["stages_ms_p50"]["preprocess_ms"] > 0
