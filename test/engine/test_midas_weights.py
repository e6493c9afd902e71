"""Finding and loading MiDaS small weights: strict loads, containers, errors, random weights."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from aria_perception.engine.midas import MIDAS_SMALL_CFG, MidasSmall
from aria_perception.engine.midas_weights import (
    checkpoint_filter_fn,
    create_midas_small,
    hub_checkpoint_dir,
    load_midas_weights,
    resolve_midas_weights,
)
from aria_perception.errors import WeightsError

CURRENT, LEGACY = MIDAS_SMALL_CFG.file_names  # midas_v21_small_256.pt, model-small-70d6b9c8.pt


def _output(model: MidasSmall, image: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(image)


@pytest.fixture(scope="module")
def source() -> MidasSmall:
    """A model whose weights play the official checkpoint."""
    torch.manual_seed(10)
    return MidasSmall().eval()


@pytest.fixture(scope="module")
def source_state(source: MidasSmall) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in source.state_dict().items()}


@pytest.fixture(scope="module")
def gives_source_outputs(source: MidasSmall) -> Callable[[MidasSmall], bool]:
    """Whether a model gives exactly ``source``'s output on a fixed random image."""
    image = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(11))
    expected = _output(source, image)
    return lambda model: torch.equal(_output(model, image), expected)


@pytest.fixture(scope="module")
def target_base() -> MidasSmall:
    torch.manual_seed(12)
    return MidasSmall().eval()


@pytest.fixture
def target(target_base: MidasSmall) -> MidasSmall:
    """A randomly initialised model with other weights than ``source``."""
    model = MidasSmall().eval()
    model.load_state_dict(target_base.state_dict())
    return model


@pytest.fixture
def hub_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache of our own; returns its checkpoints dir (not created)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_saved_state_dict_loads_strictly_and_reproduces_outputs(
    tmp_path: Path,
    source_state: dict[str, torch.Tensor],
    target: MidasSmall,
    gives_source_outputs: Callable[[MidasSmall], bool],
) -> None:
    path = tmp_path / CURRENT
    torch.save(source_state, path)
    assert not gives_source_outputs(target)
    model, status = load_midas_weights(target, str(path))
    assert model is target and status == "official"
    assert gives_source_outputs(model)


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda sd: {"model": sd, "optimizer": {"lr": 1e-4}}, id="model-container"),
        pytest.param(lambda sd: {"state_dict": sd, "epoch": 3}, id="state_dict-container"),
        pytest.param(lambda sd: {f"module.{k}": v for k, v in sd.items()}, id="module-prefix"),
        pytest.param(
            lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}}, id="both"
        ),
    ],
)
def test_wrapped_checkpoints_load(
    wrap,
    tmp_path: Path,
    source_state: dict[str, torch.Tensor],
    target: MidasSmall,
    gives_source_outputs: Callable[[MidasSmall], bool],
) -> None:
    path = tmp_path / "wrapped.pt"
    torch.save(wrap(source_state), path)
    _, status = load_midas_weights(target, str(path))
    assert status == "official"
    assert gives_source_outputs(target)


def test_filter_is_pure_and_unwraps(
    source_state: dict[str, torch.Tensor], target: MidasSmall
) -> None:
    wrapped = {"model": {f"module.{k}": v for k, v in source_state.items()}}
    filtered = checkpoint_filter_fn(wrapped, target)
    assert list(filtered) == list(source_state)
    assert all(filtered[k] is source_state[k] for k in source_state)  # no copies
    assert list(wrapped) == ["model"] and next(iter(wrapped["model"])).startswith("module.")


def test_checkpoint_without_batch_counters_loads(
    tmp_path: Path,
    source_state: dict[str, torch.Tensor],
    target: MidasSmall,
    gives_source_outputs: Callable[[MidasSmall], bool],
) -> None:
    old_style = {k: v for k, v in source_state.items() if not k.endswith("num_batches_tracked")}
    assert len(old_style) == len(source_state) - 72
    torch.save(old_style, tmp_path / "old.pt")
    load_midas_weights(target, str(tmp_path / "old.pt"))
    assert gives_source_outputs(target)


def test_hub_cache_is_the_default_and_both_names_are_accepted(
    hub_home: Path,
    source_state: dict[str, torch.Tensor],
    target: MidasSmall,
    gives_source_outputs: Callable[[MidasSmall], bool],
) -> None:
    assert hub_checkpoint_dir() == hub_home
    hub_home.mkdir(parents=True)
    torch.save(source_state, hub_home / LEGACY)
    assert resolve_midas_weights("") == hub_home / LEGACY
    _, status = load_midas_weights(target, "")
    assert status == "official"
    assert gives_source_outputs(target)
    # The current official name is preferred when both are there.
    torch.save(source_state, hub_home / CURRENT)
    assert resolve_midas_weights("") == hub_home / CURRENT


def test_a_directory_is_searched_for_the_official_names(
    tmp_path: Path, source_state: dict[str, torch.Tensor]
) -> None:
    torch.save(source_state, tmp_path / CURRENT)
    assert resolve_midas_weights(str(tmp_path)) == tmp_path / CURRENT


def test_missing_weights_error_names_the_file_and_the_way_out(hub_home: Path) -> None:
    with pytest.raises(WeightsError) as caught:
        create_midas_small("")
    message = str(caught.value)
    assert str(hub_home / CURRENT) in message and str(hub_home / LEGACY) in message
    assert "`models`" in message and "allow_random_weights" in message


def test_missing_explicit_path_is_named(tmp_path: Path, target: MidasSmall) -> None:
    wanted = tmp_path / "nowhere" / "midas.pt"
    with pytest.raises(WeightsError, match=str(wanted)):
        load_midas_weights(target, str(wanted))


def test_random_weights_when_allowed_warn_loudly(
    hub_home: Path, target: MidasSmall, caplog: pytest.LogCaptureFixture
) -> None:
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with caplog.at_level(logging.WARNING, logger="aria_perception.engine.midas_weights"):
        model, status = load_midas_weights(target, "", allow_random_weights=True)
    assert status == "random" and model is target
    assert any(
        r.levelno == logging.WARNING and "RANDOM WEIGHTS" in r.getMessage() for r in caplog.records
    )
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_create_midas_small_returns_an_eval_model(hub_home: Path) -> None:
    model, status = create_midas_small("", allow_random_weights=True)
    assert isinstance(model, MidasSmall) and status == "random" and not model.training


def test_mismatched_state_dict_lists_the_differences(
    tmp_path: Path, source_state: dict[str, torch.Tensor], target: MidasSmall
) -> None:
    broken = dict(source_state)
    del broken["scratch.output_conv.4.bias"]
    broken["scratch.extra.weight"] = torch.zeros(1)
    broken["scratch.layer1_rn.weight"] = torch.zeros(64, 32, 1, 1)
    path = tmp_path / "broken.pt"
    torch.save(broken, path)
    before = target.state_dict()["scratch.layer2_rn.weight"].clone()
    # A file that exists but does not fit is an error even when random weights are allowed.
    with pytest.raises(WeightsError) as caught:
        load_midas_weights(target, str(path), allow_random_weights=True)
    message = str(caught.value)
    assert "missing keys (1): scratch.output_conv.4.bias" in message
    assert "unexpected keys (1): scratch.extra.weight" in message
    assert "scratch.layer1_rn.weight (64, 32, 1, 1) (model: (64, 32, 3, 3))" in message
    # Nothing was half-loaded.
    assert torch.equal(target.state_dict()["scratch.layer2_rn.weight"], before)


def test_another_model_checkpoint_is_refused(tmp_path: Path, target: MidasSmall) -> None:
    torch.save(torch.nn.Linear(3, 2).state_dict(), tmp_path / "linear.pt")
    with pytest.raises(WeightsError, match=r"missing keys \(482\).*unexpected keys \(2\)"):
        load_midas_weights(target, str(tmp_path / "linear.pt"))


def test_unreadable_and_unsafe_files_are_refused(tmp_path: Path, target: MidasSmall) -> None:
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read MiDaS weights"):
        load_midas_weights(target, str(corrupt))
    # weights_only=True: a pickle that would run code (or build arbitrary objects) is refused.
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"model": logging.getLogger("x")}, unsafe)
    with pytest.raises(WeightsError, match="cannot read MiDaS weights"):
        load_midas_weights(target, str(unsafe))
    tensor_only = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor_only)
    with pytest.raises(WeightsError, match="not a state_dict"):
        load_midas_weights(target, str(tensor_only))


def test_random_weights_are_the_same_in_every_process_and_not_degenerate() -> None:
    torch.manual_seed(123)  # the global seed must not matter
    a, status = create_midas_small("", allow_random_weights=True)
    torch.manual_seed(456)
    b, _ = create_midas_small("", allow_random_weights=True)
    assert status == "random"
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    x = torch.rand(1, 3, 128, 160, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        depth = a(x)
    assert float(depth.max()) > float(depth.min())  # a dead final ReLU gives zeros everywhere
