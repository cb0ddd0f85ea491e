"""The learned change model: network shape, learning an obvious change, save/load, the missing
extra, and the train/eval/detect CLI on tiny synthetic OSCD cities."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from sitewatch.errors import InputError, MissingExtraError

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    """One torch thread: on a busy shared machine more threads only wait for each other."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


BANDS = ("B02", "B03", "B04", "B08")


def synthetic_pair(
    size: int = 64, seed: int = 0, square: tuple[int, int, int] = (20, 24, 18)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BEFORE/AFTER (4 bands) with a textured background, seasonal gain and noise, and a square
    whose spectrum changes strongly (bare ground to roof); returns the square's mask."""
    rng = np.random.default_rng(seed)
    from scipy import ndimage as ndi

    field = ndi.gaussian_filter(rng.normal(size=(len(BANDS), size, size)), (0, 2, 2))
    base = 1000 + 300 * field / field.std()
    before = base + rng.normal(0, 20, base.shape)
    after = 1.1 * base + 50 + rng.normal(0, 20, base.shape)
    y, x, s = square
    truth = np.zeros((size, size), dtype=bool)
    truth[y : y + s, x : x + s] = True
    after[:, truth] = np.array([2500.0, 2300.0, 2200.0, 900.0])[:, None] + rng.normal(
        0, 20, (len(BANDS), int(truth.sum()))
    )
    return before.astype(np.float32), after.astype(np.float32), truth


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_network_output_shape() -> None:
    from sitewatch.analysis.models._network import SiamDiffUNet

    net = SiamDiffUNet(6, (8, 16, 32))
    a, b = torch.randn(2, 6, 32, 48), torch.randn(2, 6, 32, 48)
    out = net(a, b)
    assert out.shape == (2, 1, 32, 48)
    # Siamese with absolute differences: the dates are interchangeable, identical inputs give
    # the same output everywhere away from the borders (no change signal)
    net.eval()
    with torch.no_grad():
        assert torch.allclose(net(a, b), net(b, a), atol=1e-5)
        assert not torch.allclose(net(a, b), net(a, a), atol=1e-3)


def test_training_steps_reduce_loss_and_find_the_square() -> None:
    from sitewatch.analysis.changeeval import LabelledPair
    from sitewatch.analysis.models import train_change_model, train_config
    from sitewatch.analysis.models.training import _loss, _prepare, _Sampler

    before, after, truth = synthetic_pair()
    pair = LabelledPair("synthetic", _raster(before), _raster(after), truth)
    config = train_config(
        epochs=150, minutes=1.0, crop=64, batch=2, lr=5e-3, widths=(8, 16, 32), seed=1, threads=1
    )
    # loss of the untrained network versus the trained one on the same fixed batch
    cities = _prepare([pair], BANDS, config.normalisation, 6.0)
    torch.manual_seed(0)
    a, b, lab, val, _ = _Sampler(cities, 64, 0.5, seed=3).batch(4)
    from sitewatch.analysis.models.changemodel import ChangeModel, ModelMeta

    torch.manual_seed(config.seed)
    untrained = ChangeModel(
        ModelMeta(bands=BANDS, widths=(8, 16, 32), normalisation=config.normalisation)
    )
    untrained.net.eval()
    with torch.no_grad():
        loss0 = float(_loss(untrained.net(a, b), lab, val))
    model = train_change_model([pair], config)
    with torch.no_grad():
        loss1 = float(_loss(model.net(a, b), lab, val))
    assert model.meta.training["steps"] >= 10
    assert loss1 < 0.8 * loss0
    prob = model.probability(before, after, BANDS)
    assert prob.shape == truth.shape
    assert iou(prob >= model.meta.threshold, truth) > 0.5
    # a new, larger, odd-sized scene: one tile, and small overlapping tiles, both find the square
    big_b, big_a, big_t = synthetic_pair(size=75, seed=2, square=(40, 30, 20))
    whole = model.probability(big_b, big_a, BANDS)
    model.meta = replace(model.meta, tile=32, overlap=16)
    tiled = model.probability(big_b, big_a, BANDS)
    assert tiled.shape == (75, 75)
    assert iou(whole >= 0.5, big_t) > 0.5
    assert iou(tiled >= 0.5, big_t) > 0.5


def test_threshold_calibration_picks_the_best_pooled_f1() -> None:
    from sitewatch.analysis.changeeval import LabelledPair
    from sitewatch.analysis.models.training import calibrate_threshold

    rng = np.random.default_rng(0)
    label = np.zeros((60, 60), dtype=bool)
    label[10:30, 10:30] = True
    # probabilities: changed pixels around 0.8, unchanged around 0.55 (an over-confident model)
    prob = np.where(label, 0.8, 0.55) + rng.normal(0.0, 0.05, label.shape)
    prob = np.clip(prob, 0.0, 1.0).astype(np.float32)

    class Fixed:
        def probability(self, before: Any, after: Any, bands: Any) -> np.ndarray:
            return prob

    pair = LabelledPair("p", _raster(np.zeros((4, 60, 60))), _raster(np.zeros((4, 60, 60))), label)
    thr, f1 = calibrate_threshold(Fixed(), [pair])  # type: ignore[arg-type]
    assert 0.6 < thr < 0.75  # between the two populations, not the default 0.5
    pred = prob >= thr
    tp, fp, fn = (pred & label).sum(), (pred & ~label).sum(), (~pred & label).sum()
    assert f1 == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-9)
    assert f1 > 0.95
    assert 2 * (prob >= 0.5)[label].sum() / ((prob >= 0.5).sum() + label.sum()) < 0.5


def _raster(data: np.ndarray) -> Any:
    from sitewatch.analysis._changeio import Raster

    return Raster(data, BANDS, None, rasterio.Affine.identity(), None)


def test_save_load_round_trip(tmp_path: Path) -> None:
    from sitewatch.analysis.models import load_model
    from sitewatch.analysis.models.changemodel import ChangeModel, ModelMeta

    torch.manual_seed(0)
    model = ChangeModel(ModelMeta(bands=BANDS, widths=(8, 16, 32), training={"steps": 3}))
    before, after, _ = synthetic_pair(size=40)
    path = tmp_path / "m" / "model.pt"
    meta_file = model.save(path)
    assert meta_file.name == "model.pt.json"
    meta = json.loads(meta_file.read_text())
    assert meta["bands"] == list(BANDS) and meta["widths"] == [8, 16, 32]
    assert meta["architecture"] == "fc_siam_diff"
    loaded = load_model(path)
    assert loaded.meta == model.meta
    np.testing.assert_array_equal(
        loaded.probability(before, after, BANDS), model.probability(before, after, BANDS)
    )
    # band names are matched by name or role, and missing bands are named
    with pytest.raises(InputError, match="lack B08"):
        loaded.probability(before[:3], after[:3], BANDS[:3])
    meta_file.unlink()
    with pytest.raises(InputError, match=r"model\.pt\.json is missing"):
        load_model(path)


def test_log_reflectance_inputs_keep_absolute_brightness() -> None:
    from sitewatch.analysis.models.changemodel import ChangeModel, ModelMeta, model_inputs

    before = np.maximum(synthetic_pair(size=32)[0], 100.0)  # positive, as reflectances are
    z = model_inputs(before, "per_image_zscore", 6.0)
    zl = model_inputs(before, "zscore_log", 6.0)
    assert z.shape == before.shape and zl.shape == (2 * len(BANDS), 32, 32)
    np.testing.assert_array_equal(zl[: len(BANDS)], z)
    # the z-score cannot tell a bright image from a dark one; the log channels can, on a fixed
    # scale: digital numbers and reflectance fractions give the same inputs
    bright = model_inputs(2 * before, "zscore_log", 6.0)
    np.testing.assert_allclose(bright[: len(BANDS)], z, atol=1e-5)
    np.testing.assert_allclose(bright[len(BANDS) :] - zl[len(BANDS) :], np.log(2), atol=1e-5)
    np.testing.assert_allclose(model_inputs(before / 10000, "zscore_log", 6.0), zl, atol=1e-4)
    nan = before.copy()
    nan[:, 0, 0] = np.nan
    assert np.isfinite(model_inputs(nan, "zscore_log", 6.0)).all()
    with pytest.raises(InputError, match="unknown input normalisation"):
        model_inputs(before, "minmax", 6.0)
    model = ChangeModel(ModelMeta(bands=BANDS, widths=(8, 16), normalisation="zscore_log"))
    assert model.net.in_channels == 2 * len(BANDS)


def test_index_inputs_are_the_spectral_indices_the_bands_allow() -> None:
    from sitewatch.analysis.change import indices_for
    from sitewatch.analysis.models.changemodel import (
        INDEX_SCALE,
        ChangeModel,
        ModelMeta,
        model_inputs,
    )

    rng = np.random.default_rng(3)
    six = ("B02", "B03", "B04", "B08", "B11", "B12")
    image = rng.uniform(200.0, 4000.0, (6, 16, 16)).astype(np.float32)
    blue, green, red, nir, swir1, _ = image.astype(np.float64)
    x = model_inputs(image, "zscore_indices", 6.0, six)
    assert x.shape == (10, 16, 16)
    np.testing.assert_array_equal(x[:6], model_inputs(image, "per_image_zscore", 6.0))
    expected = [
        (nir - red) / (nir + red),
        (swir1 - nir) / (swir1 + nir),
        (green - swir1) / (green + swir1),
        (swir1 + red - nir - blue) / (swir1 + red + nir + blue),
    ]
    for channel, index in zip(x[6:], expected, strict=True):
        np.testing.assert_allclose(channel, INDEX_SCALE * index, atol=1e-5)
    # ratios of bands: a gain common to one date's bands cancels, and reflectance fractions give
    # the same inputs as digital numbers
    np.testing.assert_allclose(model_inputs(1.7 * image, "zscore_indices", 6.0, six), x, atol=1e-5)
    np.testing.assert_allclose(model_inputs(image / 1e4, "zscore_indices", 6.0, six), x, atol=1e-4)
    # bands are matched by role; without swir1 only the NDVI is left; no data and zero sums give 0
    assert indices_for(("blue", "green", "red", "nir")) == ("ndvi",)
    assert indices_for(("b1", "b2")) == ()
    holes = image[:4].copy()
    holes[:, 0, 0] = np.nan
    holes[2:, 1, 1] = 0.0
    four = model_inputs(holes, "zscore_indices", 6.0, ("blue", "green", "red", "nir"))
    assert four.shape == (5, 16, 16) and np.isfinite(four).all()
    assert four[4, 0, 0] == 0.0 and four[4, 1, 1] == 0.0
    with pytest.raises(InputError, match="need the names of the 6 bands"):
        model_inputs(image, "zscore_indices", 6.0)
    model = ChangeModel(ModelMeta(bands=six, widths=(8, 16), normalisation="zscore_indices"))
    assert model.net.in_channels == 10
    assert model.prepare(image[::-1], six[::-1]).shape == (10, 16, 16)
    np.testing.assert_array_equal(model.prepare(image[::-1], six[::-1]), x)


def test_tta_output_is_equivariant_to_flips_and_rotations() -> None:
    from sitewatch.analysis.models.changemodel import ChangeModel, ModelMeta

    torch.manual_seed(0)
    before, after, _ = synthetic_pair(size=32)
    plain = ChangeModel(ModelMeta(bands=BANDS, widths=(8, 16, 32)))
    tta = ChangeModel(replace(plain.meta, tta=True), plain.net)

    def prob(m: Any, t: Any) -> np.ndarray:
        return m.probability(t(before).copy(), t(after).copy(), BANDS)

    base_plain, base_tta = prob(plain, lambda x: x), prob(tta, lambda x: x)
    for t in (lambda x: x[:, :, ::-1], lambda x: np.rot90(x, 1, (1, 2))):
        # averaging over the 8 transforms makes the map commute with each of them; one pass
        # of an untrained network does not
        np.testing.assert_allclose(prob(tta, t), t(base_tta[None])[0], atol=1e-5)
        assert np.abs(prob(plain, t) - t(base_plain[None])[0]).max() > 1e-4


def test_inference_runs_channels_last_and_gives_the_weights_back_as_they_were() -> None:
    from sitewatch.analysis.models.changemodel import ChangeModel, ModelMeta

    torch.manual_seed(0)
    model = ChangeModel(ModelMeta(bands=BANDS, widths=(8, 16, 32), tile=64, overlap=16))
    before, after, _ = synthetic_pair(size=64)
    a, b = model.prepare(before, BANDS), model.prepare(after, BANDS)
    model.net.eval()
    with torch.no_grad():
        plain = model.net(torch.from_numpy(a[None]), torch.from_numpy(b[None]))[0, 0].numpy()
    first = model.net.encoder[0][0].weight
    layouts: list[bool] = []
    forward = model.net.forward

    def spy(*args: Any) -> Any:
        layouts.append(first.is_contiguous(memory_format=torch.channels_last))
        layouts.append(first.is_contiguous())
        return forward(*args)

    model.net.forward = spy  # type: ignore[method-assign]
    # one tile covers the image: the logits are the network's own, to float rounding
    np.testing.assert_allclose(model.logits(a, b), plain, atol=1e-4)
    assert layouts == [True, False]  # channels-last weights while it ran
    assert model.net.encoder[0][0].weight is first  # the same parameters (an optimiser's)...
    assert all(p.is_contiguous() for p in model.net.parameters())  # ...in their usual layout


def test_the_cli_offers_the_models_normalisations_and_says_its_defaults() -> None:
    import click

    from sitewatch.analysis.models.changemodel import NORMALISATIONS
    from sitewatch.analysis.models.training import TrainConfig
    from sitewatch.cli.change import train_oscd

    options = {p.name: p for p in train_oscd.params if isinstance(p, click.Option)}
    assert isinstance(options["normalisation"].type, click.Choice)
    assert tuple(options["normalisation"].type.choices) == NORMALISATIONS
    helps = {name: p.help or "" for name, p in options.items()}
    d = TrainConfig()
    said = {"normalisation": d.normalisation, "widths": ",".join(map(str, d.widths)),
            "lr": d.lr, "weight_decay": d.weight_decay, "dropout": d.dropout,
            "change_fraction": d.change_fraction, "ema": d.ema, "retries": d.retries}  # fmt: skip
    for name, value in said.items():
        assert f"the model's default, {value})" in helps[name], name


def test_schedule_follows_the_steps_unless_the_budget_runs_short() -> None:
    from sitewatch.analysis.models.training import _schedule

    # 600 steps within 900 s: the steps' share, even while the clock runs ahead of it
    assert _schedule(100, 600, 300.0, 900.0) == pytest.approx(100 / 600)
    assert _schedule(450, 600, 600.0, 900.0) == pytest.approx(450 / 600)
    # half the budget spent with a third of the steps: the budget will stop the run, so the
    # clock's share drives the rate down by then
    assert _schedule(200, 600, 500.0, 900.0) == pytest.approx(500 / 900)
    assert _schedule(200, 600, 950.0, 900.0) == 1.0
    # no step limit: the clock's share; no budget: the steps' share
    assert _schedule(5, None, 450.0, 900.0) == pytest.approx(0.5)
    assert _schedule(5, 10, 1e6, None) == pytest.approx(0.5)


def test_a_seeded_run_trains_the_same_weights_on_a_slow_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A machine busy enough that the clock's share of the budget runs ahead of the steps'
    (here 8 s a step against a 60 s budget for 3 steps) trains what an idle one does."""
    from types import SimpleNamespace

    from sitewatch.analysis.changeeval import LabelledPair
    from sitewatch.analysis.models import train_change_model, train_config, training

    before, after, truth = synthetic_pair(size=32)
    pair = LabelledPair("synthetic", _raster(before), _raster(after), truth)
    config = train_config(  # no retry (three steps may leave the network "dead")
        steps=3, minutes=1.0, crop=32, batch=1, widths=(8, 16), threads=1, retries=0
    )
    idle = train_change_model([pair], config)
    ticks = iter(range(0, 10_000, 8))
    monkeypatch.setattr(training, "time", SimpleNamespace(monotonic=lambda: float(next(ticks))))
    busy = train_change_model([pair], config)
    assert busy.meta.training["steps"] == idle.meta.training["steps"] == 3
    assert busy.meta.training["seconds"] >= 24.0  # the slow clock was read
    for a, b in zip(idle.net.parameters(), busy.net.parameters(), strict=True):
        assert torch.equal(a, b)


def test_step_limit_and_weight_average() -> None:
    from sitewatch.analysis.changeeval import LabelledPair
    from sitewatch.analysis.models import train_change_model, train_config

    before, after, truth = synthetic_pair(size=32)
    pair = LabelledPair("synthetic", _raster(before), _raster(after), truth)
    kw: dict[str, Any] = dict(minutes=None, crop=32, batch=1, widths=(8, 16), threads=1)
    runs = [
        train_change_model([pair], train_config(steps=3, ema=ema, calibrate=False, **kw))
        for ema in (0.0, 0.9)
    ]
    assert [m.meta.training["steps"] for m in runs] == [3, 3]
    # same seed and batches: the averaged weights lag behind the last ones
    w = [torch.cat([p.detach().ravel() for p in m.net.parameters()]) for m in runs]
    assert not torch.allclose(w[0], w[1])
    with pytest.raises(InputError, match="ema"):
        train_config(steps=3, ema=1.0)
    with pytest.raises(InputError, match="needs a limit"):
        train_config(minutes=None, steps=None)
    for bad, said in (({"crop": 8}, "crop must be at least 16 px, got 8"),
                      ({"batch": 0}, "batch must be at least 1 crop, got 0"),
                      ({"lr": 0.0}, "lr must be > 0, got 0.0"),
                      ({"lr": float("nan")}, "lr must be > 0"),
                      ({"weight_decay": -1e-4}, "weight_decay must be >= 0"),
                      ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
                      ({"widths": (16,)}, "widths must be two or more"),
                      ({"widths": (16, 0)}, "widths must be two or more"),
                      ({"normalisation": "minmax"}, "known: per_image_zscore")):  # fmt: skip
        with pytest.raises(InputError, match=said):
            train_config(steps=3, **bad)


def test_training_starts_at_the_changed_share_of_its_crops() -> None:
    import math

    from sitewatch.analysis.changeeval import LabelledPair
    from sitewatch.analysis.models import train_change_model, train_config
    from sitewatch.analysis.models._network import SiamDiffUNet

    net = SiamDiffUNet(4, (8, 16))
    for share, want in ((0.04, 0.04), (0.0, 1e-3), (0.9, 0.5)):  # clipped to [0.001, 0.5]
        net.start_at_prior(share)
        assert float(net.head.bias.detach()) == pytest.approx(math.log(want / (1 - want)), rel=1e-6)
    # crops as large as the image: the share is the label's own, 18 x 18 of 64 x 64 pixels
    before, after, truth = synthetic_pair()
    pair = LabelledPair("synthetic", _raster(before), _raster(after), truth)
    kw: dict[str, Any] = dict(minutes=None, steps=1, crop=64, batch=1, widths=(8, 16), threads=1)
    info = train_change_model([pair], train_config(**kw)).meta.training
    assert info["initial_change_share"] == pytest.approx(324 / 4096, abs=1e-4)
    off = train_change_model([pair], train_config(start_at_prior=False, **kw)).meta.training
    assert off["initial_change_share"] is None
    assert 0.0 <= info["training_crop_recall"] <= 1.0


def _small_square_pair() -> tuple[Any, dict[str, Any]]:
    """A 32 px pair with a 12 px changed square, and training settings that learn it in 100
    steps: for the tests of dead networks."""
    from sitewatch.analysis.changeeval import LabelledPair

    before, after, truth = synthetic_pair(size=32, square=(8, 8, 12))
    pair = LabelledPair("synthetic", _raster(before), _raster(after), truth)
    return pair, dict(minutes=None, crop=32, batch=2, widths=(8, 16), threads=1)


def test_a_network_that_cannot_vote_for_change_is_reported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from sitewatch.analysis.models import train_change_model, train_config
    from sitewatch.analysis.models._network import SiamDiffUNet

    pair, kw = _small_square_pair()
    model = train_change_model([pair], train_config(steps=100, lr=5e-3, **kw))
    assert model.meta.training["training_crop_recall"] > 0.5
    assert not any("training failed" in r.message for r in caplog.records)

    # a network whose output bias outweighs any feature (what dead change-voting channels do)
    def dead(self: Any, share: float) -> None:
        with torch.no_grad():
            self.head.bias.fill_(-1e3)

    monkeypatch.setattr(SiamDiffUNet, "start_at_prior", dead)
    model = train_change_model([pair], train_config(steps=1, lr=1e-9, retries=0, **kw))
    assert model.meta.training["training_crop_recall"] == 0.0
    assert "dead_seeds" not in model.meta.training
    assert any("training failed" in r.message and "another seed" in r.message
               for r in caplog.records)  # fmt: skip
    # with retries, each dead network is trained again from the seed plus 1000
    caplog.clear()
    model = train_change_model([pair], train_config(steps=1, lr=1e-9, seed=3, retries=2, **kw))
    info = model.meta.training
    assert info["dead_seeds"] == [3, 1003] and info["seed"] == 2003
    assert info["training_crop_recall"] == 0.0
    said = [r.message for r in caplog.records]
    assert sum("training again from seed" in m for m in said) == 2
    assert any("from seeds 3, 1003, 2003" in m and "training failed" in m for m in said)
    # the tries share the wall-clock budget: a retry gets what is left of it, none when nothing is
    caplog.clear()
    kw["minutes"] = 5.0
    info = train_change_model([pair], train_config(steps=1, lr=1e-9, retries=1, **kw)).meta.training
    assert info["dead_seeds"] == [0] and 4.0 < info["minutes"] < 5.0
    caplog.clear()
    kw["minutes"] = 1e-9
    info = train_change_model([pair], train_config(steps=1, lr=1e-9, retries=2, **kw)).meta.training
    assert "dead_seeds" not in info and info["seed"] == 0
    assert any("no time was left" in r.message for r in caplog.records)
    with pytest.raises(InputError, match="retries must be 0 or more"):
        train_config(steps=1, retries=-1)


def test_a_dead_network_is_trained_again_from_another_seed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from sitewatch.analysis.models import train_change_model, train_config
    from sitewatch.analysis.models._network import SiamDiffUNet

    pair, kw = _small_square_pair()
    alive = SiamDiffUNet.start_at_prior
    tries: list[int] = []

    def dies_first(self: Any, share: float) -> None:  # only the first network dies
        tries.append(1)
        if len(tries) == 1:
            with torch.no_grad():
                self.head.bias.fill_(-1e3)
        else:
            alive(self, share)

    from sitewatch.analysis.models import training

    prepared: list[int] = []
    prepare = training._prepare

    def counted(*a: Any, **k: Any) -> Any:
        prepared.append(1)
        return prepare(*a, **k)

    monkeypatch.setattr(SiamDiffUNet, "start_at_prior", dies_first)
    monkeypatch.setattr(training, "_prepare", counted)
    model = train_change_model([pair], train_config(steps=100, lr=5e-3, **kw))
    info = model.meta.training
    assert len(tries) == 2 and info["dead_seeds"] == [0] and info["seed"] == 1000
    assert len(prepared) == 1  # the retry reuses the prepared inputs
    assert info["training_crop_recall"] > 0.5  # the second network learnt the change
    said = [r.message for r in caplog.records]
    assert any("seed 0 marks none" in m and "training again from seed 1000" in m for m in said)
    assert not any("training failed" in m for m in said)


def test_training_is_reproducible_from_its_seed() -> None:
    from sitewatch.analysis.changeeval import LabelledPair
    from sitewatch.analysis.models import train_change_model, train_config

    before, after, truth = synthetic_pair(size=32)
    pair = LabelledPair("synthetic", _raster(before), _raster(after), truth)
    kw: dict[str, Any] = dict(minutes=None, steps=3, crop=32, batch=2, widths=(8, 16), threads=1)

    def weights(seed: int, before: int) -> torch.Tensor:
        torch.manual_seed(before)  # whatever the global generator held beforehand
        model = train_change_model([pair], train_config(seed=seed, **kw))
        return torch.cat([p.detach().ravel() for p in model.net.parameters()])

    # the seed fixes the initial weights as well as the crops and dropout: the same seed gives
    # the same network bit for bit (the cross-validation's figures depend on it), another does not
    assert torch.equal(weights(0, before=1), weights(0, before=2))
    assert not torch.allclose(weights(0, before=1), weights(1, before=1))


def test_device_names_are_checked_and_models_move_between_devices(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sitewatch.analysis.models import load_model, train_config
    from sitewatch.analysis.models.changemodel import ChangeModel, ModelMeta, resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(InputError, match="use cpu, cuda or cuda:N"):
        resolve_device("gpu0")
    with pytest.raises(InputError, match="unsupported device 'meta'"):
        resolve_device("meta")
    # on a machine without a GPU (CI), asking for one says what to use instead
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="sees no CUDA GPU; use --device cpu"):
        resolve_device("cuda")
    with pytest.raises(InputError, match="device must be a name"):
        train_config(device="", steps=1)
    with pytest.raises(InputError, match="threads must be at least 1"):
        train_config(threads=0, steps=1)  # torch itself would raise a bare RuntimeError
    with pytest.raises(InputError, match="sees no CUDA GPU"):  # refused with the settings
        train_config(device="cuda", steps=1)
    model = ChangeModel(ModelMeta(bands=BANDS, widths=(8, 16))).to("cpu")
    assert model.device == torch.device("cpu")
    with pytest.raises(InputError, match="sees no CUDA GPU"):
        model.to("cuda:0")
    # the weights file holds CPU tensors, whatever device trained them
    path = tmp_path / "m.pt"
    model.save(path)
    state = torch.load(path, weights_only=True)  # no map_location: tensors where they were saved
    assert state and all(v.device.type == "cpu" for v in state.values())
    assert load_model(path).device == torch.device("cpu")


def test_older_descriptions_still_load_and_unknown_versions_fail() -> None:
    from sitewatch.analysis.models.changemodel import ModelMeta

    meta = ModelMeta(bands=BANDS, tta=True, prior="cva")
    d = json.loads(meta.to_json())
    assert d["version"] == 3
    d.update(version=2)
    del d["prior"]
    assert ModelMeta.from_json(json.dumps(d), "m.json") == replace(meta, prior="none")
    d.update(version=1)
    del d["tta"]
    assert ModelMeta.from_json(json.dumps(d), "m.json") == replace(meta, tta=False, prior="none")
    d.update(version=99)
    with pytest.raises(InputError, match="version 99 is not supported"):
        ModelMeta.from_json(json.dumps(d), "m.json")


def test_cva_prior_marks_the_changed_square_on_the_image_wide_scale() -> None:
    from sitewatch.analysis.models.changemodel import model_inputs, pair_prior

    before, after, truth = synthetic_pair(size=64)
    a = model_inputs(before, "per_image_zscore", 6.0)
    b = model_inputs(after, "per_image_zscore", 6.0)
    valid = np.ones(truth.shape, dtype=bool)
    assert pair_prior(a, b, valid, "none", len(BANDS)) is None
    pr = pair_prior(a, b, valid, "cva", len(BANDS))
    assert pr is not None and pr.shape == (1, 64, 64) and pr.dtype == np.float32
    # 1 is the unsupervised method's default threshold (median + 5 robust SD): the square is
    # far above it, the seasonal gain and noise around it below
    inner = np.zeros_like(truth)
    inner[22:36, 26:40] = True
    assert pr[0][inner].min() > 1.0
    assert np.median(pr[0][~truth]) < 0.1 and pr.max() <= 4.0 and pr.min() >= -1.0
    # pixels without data get 0 and do not enter the median
    valid[:8] = False
    pr2 = pair_prior(a, b, valid, "cva", len(BANDS))
    assert pr2 is not None and (pr2[0, :8] == 0).all()
    # identical dates: no change anywhere
    assert not pair_prior(a, a, np.ones_like(valid), "cva", len(BANDS)).any()  # type: ignore[union-attr]
    with pytest.raises(InputError, match="unknown prior"):
        pair_prior(a, b, valid, "irmad", len(BANDS))


def test_pair_channels_reach_the_output_and_train_with_the_prior(tmp_path: Path) -> None:
    from sitewatch.analysis.changeeval import LabelledPair
    from sitewatch.analysis.models import load_model, train_change_model, train_config
    from sitewatch.analysis.models._network import SiamDiffUNet

    torch.manual_seed(0)
    net = SiamDiffUNet(4, (8, 16), pair_channels=1).eval()
    a, b = torch.randn(1, 4, 16, 16), torch.randn(1, 4, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(
            net(a, b, torch.zeros(1, 1, 16, 16)), net(a, b, torch.ones(1, 1, 16, 16))
        )
    with pytest.raises(ValueError, match="1 pair channel"):
        net(a, b)
    with pytest.raises(ValueError, match="0 pair channel"):
        SiamDiffUNet(4, (8, 16))(a, b, torch.zeros(1, 1, 16, 16))

    before, after, truth = synthetic_pair(size=32)
    pair = LabelledPair("synthetic", _raster(before), _raster(after), truth)
    cfg = train_config(
        steps=3, minutes=None, crop=32, batch=2, widths=(8, 16), threads=1, prior="cva"
    )
    model = train_change_model([pair], cfg)
    assert model.meta.prior == "cva" and model.net.pair_channels == 1
    path = tmp_path / "model.pt"
    model.save(path)
    loaded = load_model(path)
    assert loaded.meta.prior == "cva"
    np.testing.assert_array_equal(
        loaded.probability(before, after, BANDS), model.probability(before, after, BANDS)
    )
    # with test-time augmentation the pair channel is flipped and rotated with the images
    tta = loaded
    tta.meta = replace(loaded.meta, tta=True)
    flipped = tta.probability(before[:, :, ::-1].copy(), after[:, :, ::-1].copy(), BANDS)
    np.testing.assert_allclose(flipped, tta.probability(before, after, BANDS)[:, ::-1], atol=1e-5)
    with pytest.raises(InputError, match="unknown prior"):
        train_config(steps=3, prior="irmad")


def test_hard_negatives_are_unlabelled_strong_changes_and_get_sampled() -> None:
    from sitewatch.analysis.changeeval import LabelledPair
    from sitewatch.analysis.models import train_config
    from sitewatch.analysis.models.training import _prepare, _Sampler

    before, after, truth = synthetic_pair(size=64)
    field = np.zeros_like(truth)
    field[44:60, 4:20] = True  # a field between seasons: strong change, not construction
    after[:, field] = before[:, field] * np.array([0.5, 0.6, 0.4, 2.5])[:, None]
    pair = LabelledPair("synthetic", _raster(before), _raster(after), truth)
    (city,) = _prepare([pair], BANDS, "per_image_zscore", 6.0, hard=True)
    hard = np.zeros(truth.size, dtype=bool)
    hard[city.hard] = True
    hard = hard.reshape(truth.shape)
    assert not (hard & truth).any() and (hard & field).sum() > 0.8 * field.sum()
    assert (hard & ~field).sum() < 0.05 * hard.sum()
    assert _prepare([pair], BANDS, "per_image_zscore", 6.0)[0].hard.size == 0
    # half the crops on the change, the other half on hard negatives: every crop holds one
    sampler = _Sampler([city], 16, 0.5, seed=0, hard_fraction=0.5)
    n_field = 0
    for _ in range(40):
        a, b, lab, _val, _pair = sampler._one()
        assert lab.any() or np.abs(b - a).max() > 3  # the field is far outside the noise
        n_field += int(not lab.any())
    assert 10 <= n_field <= 30
    with pytest.raises(InputError, match="hard_fraction"):
        train_config(steps=3, change_fraction=0.5, hard_fraction=0.6)


def test_jitter_gives_each_date_its_own_band_gains_and_offsets() -> None:
    from sitewatch.analysis.changeeval import LabelledPair
    from sitewatch.analysis.models.training import _prepare, _Sampler

    before, _, truth = synthetic_pair(size=48)
    pair = LabelledPair("same", _raster(before), _raster(before.copy()), truth)
    cities = _prepare([pair], BANDS, "per_image_zscore", 6.0)
    a, b, *_ = _Sampler(cities, 32, 0.5, seed=0).batch(4)
    assert torch.equal(a, b)  # identical dates, no augmentation: identical crops
    a, b, *_ = _Sampler(cities, 32, 0.5, seed=0, jitter=0.1).batch(4)
    assert not torch.allclose(a, b, atol=1e-3)
    for i in range(4):
        for c in range(len(BANDS)):
            x, y = a[i, c].numpy().ravel(), b[i, c].numpy().ravel()
            slope, offset = np.polyfit(x, y, 1)
            # the dates differ by a gain and an offset per band, nothing else
            np.testing.assert_allclose(slope * x + offset, y, atol=1e-4)
            assert 0.5 < slope < 1.5 and abs(offset) < 0.5


def test_equal_city_weighting_draws_as_many_crops_from_a_small_city() -> None:
    from sitewatch.analysis.changeeval import LabelledPair
    from sitewatch.analysis.models import train_config
    from sitewatch.analysis.models.training import _prepare, _Sampler

    small_before, small_after, small_truth = synthetic_pair(size=32, seed=1, square=(8, 8, 8))
    big_before, big_after, big_truth = synthetic_pair(size=96, seed=2)
    pairs = [
        LabelledPair("small", _raster(small_before), _raster(small_after), small_truth),
        LabelledPair("big", _raster(big_before), _raster(big_after), big_truth),
    ]
    cities = _prepare(pairs, BANDS, "per_image_zscore", 6.0)
    by_area = _Sampler(cities, 16, 0.5, seed=0)
    np.testing.assert_allclose(by_area.weights, [0.1, 0.9])  # 32^2 against 96^2 pixels
    equal = _Sampler(cities, 16, 0.5, seed=0, city_weighting="equal")
    np.testing.assert_allclose(equal.weights, [0.5, 0.5])
    with pytest.raises(InputError, match=r"city weighting 'even'.*area, equal"):
        train_config(steps=3, city_weighting="even")


def test_zoom_cuts_larger_and_smaller_windows_resampled_to_the_crop() -> None:
    from sitewatch.analysis.changeeval import LabelledPair
    from sitewatch.analysis.models import train_config
    from sitewatch.analysis.models.training import _prepare, _Sampler

    before, after, truth = synthetic_pair(size=96, square=(40, 40, 12))  # 144 changed pixels
    cities = _prepare([LabelledPair("s", _raster(before), _raster(after), truth)], BANDS,
                      "per_image_zscore", 6.0)  # fmt: skip
    plain = _Sampler(cities, 32, 1.0, seed=0).batch(24)
    assert {int(n) for n in plain[2].sum(dim=(1, 2, 3))} <= set(range(145))
    a, b, lab, val, pair = _Sampler(cities, 32, 1.0, seed=0, zoom=1.0).batch(24)
    assert a.shape == b.shape == (24, len(BANDS), 32, 32) and lab.shape == (24, 1, 32, 32)
    assert pair.shape == (24, 0, 32, 32) and bool((val == 1).all())
    assert set(torch.unique(lab).tolist()) <= {0.0, 1.0}  # labels stay labels
    counts = lab.sum(dim=(1, 2, 3))
    # a window twice the crop shrinks the square to a quarter of its pixels, half the crop
    # enlarges it four times (up to the crop's edge)
    assert float(counts.max()) > 200 and 0 < float(counts.min()) < 100
    with pytest.raises(InputError, match="zoom"):
        train_config(steps=3, zoom=1.5)


def test_the_dice_term_can_be_left_out_of_the_loss() -> None:
    from sitewatch.analysis.models.training import _loss

    logits = torch.tensor([[[[2.0, -1.0], [0.5, -3.0]]]])
    label = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    valid = torch.tensor([[[[1.0, 1.0], [1.0, 0.0]]]])  # the last pixel does not count
    p = 1 / (1 + np.exp(-np.array([2.0, -1.0, 0.5])))  # the valid pixels' probabilities
    bce = -(np.log(p[0]) + np.log(1 - p[1]) + np.log(1 - p[2])) / 3
    assert float(_loss(logits, label, valid, dice=False)) == pytest.approx(bce, rel=1e-5)
    dice = 1 - (2 * p[0] + 1) / (p.sum() + 1 + 1)
    assert float(_loss(logits, label, valid)) == pytest.approx(bce + dice, rel=1e-5)


def test_missing_torch_raises_missing_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sitewatch.analysis import models

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingExtraError, match=r"sitewatch\[ml\]"):
        models.load_model(tmp_path / "model.pt")
    with pytest.raises(MissingExtraError, match="learned change model"):
        models.train_config(minutes=1.0)


# --- CLI on synthetic OSCD cities ---------------------------------------------------------------


def write_city(root: Path, name: str, seed: int) -> np.ndarray:
    before, after, truth = synthetic_pair(size=48, seed=seed, square=(10 + seed, 14, 14))
    transform = from_origin(500_000.0, 4_200_000.0, 10.0, 10.0)
    for folder, img in (("imgs_1", before), ("imgs_2", after)):
        (root / name / folder).mkdir(parents=True)
        for i, band in enumerate(BANDS):
            with rasterio.open(
                root / name / folder / f"{name}_{band}.tif", "w", driver="GTiff", width=48,
                height=48, count=1, dtype="float32", crs="EPSG:32652", transform=transform,
            ) as dst:  # fmt: skip
                dst.write(img[i : i + 1])
    (root / name / "cm").mkdir()
    with rasterio.open(
        root / name / "cm" / f"{name}-cm.tif", "w", driver="GTiff", width=48, height=48,
        count=1, dtype="uint8", crs="EPSG:32652", transform=transform,
    ) as dst:  # fmt: skip
        dst.write((1 + truth).astype(np.uint8)[None])
    (root / name / "dates.txt").write_text("date_1: 20160101\ndate_2: 20170101\n")
    return truth


def test_cli_train_eval_detect(sw: Any, tmp_path: Path) -> None:
    root = tmp_path / "oscd"
    write_city(root, "alpha", 0)
    write_city(root, "beta", 1)
    model = tmp_path / "model.pt"
    r = sw("change", "train-oscd", str(root), "-o", str(model), "--minutes", "0.05",
           "--steps", "4", "--calibrate", "--crop", "32", "--batch", "2", "--threads", "1",
           "--prior", "cva", "--hard-fraction", "0.25", "--jitter", "0.05", "--normalisation",
           "per_image_zscore", "--widths", "8,16,32", "--lr", "0.001", "--weight-decay", "0",
           "--dropout", "0", "--change-fraction", "0.4", "--ema", "0.9", "--retries", "0", "--json")  # fmt: skip
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["training"]["prior"] == "cva" and out["training"]["hard_fraction"] == 0.25
    assert out["training"]["jitter"] == 0.05
    assert out["training"]["normalisation"] == "per_image_zscore"
    assert out["training"]["widths"] == [8, 16, 32] and out["training"]["lr"] == 0.001
    assert out["training"]["weight_decay"] == 0 and out["training"]["dropout"] == 0
    assert out["training"]["change_fraction"] == 0.4 and out["training"]["ema"] == 0.9
    assert out["training"]["retries"] == 0
    assert out["bands"] == list(BANDS) and out["training"]["pairs"] == ["alpha", "beta"]
    assert 1 <= out["training"]["steps"] <= 4 and out["training"]["seconds"] < 30
    assert "threshold_f1_on_training_pairs" in out["training"]  # --calibrate
    assert model.is_file() and Path(str(model) + ".json").is_file()

    r = sw("change", "eval-oscd", str(root), "--model", str(model), "--json")
    assert r.code == 0, r.err
    res = json.loads(r.out)
    assert set(res["per_item"]) == {"alpha", "beta"}
    moved = [k for k, v in sorted(res["per_item"].items()) if v["coregistration"]["corrected"]]
    assert out["training"]["coregistered"] == moved  # the same measurement in training
    assert res["model"]["bands"] == list(BANDS) and res["model"]["tta"] is True
    pooled = res["pooled"]
    assert pooled["tp"] + pooled["fp"] + pooled["fn"] + pooled["tn"] == 2 * 48 * 48

    r = sw("change", "detect", str(root / "alpha" / "imgs_1"), str(root / "alpha" / "imgs_2"),
           "-o", str(tmp_path / "c.tif"), "--model", str(model), "--json")  # fmt: skip
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["method"] == "siam_diff_unet" == summary["config"]["method"]
    assert summary["config"]["trained_on"] == ["alpha", "beta"]
    with rasterio.open(tmp_path / "c.tif") as ds:
        prob = ds.read(2)
        assert ds.count == 2 and np.nanmin(prob) >= 0 and np.nanmax(prob) <= 1
    assert summary["config"]["tta"] is True  # train-oscd's models average 8 transforms
    # the cover filter applies to the model's patches too: none ends as vegetation here
    r = sw("change", "detect", str(root / "alpha" / "imgs_1"), str(root / "alpha" / "imgs_2"),
           "-o", str(tmp_path / "v.tif"), "--model", str(model), "--after-cover", "vegetation",
           "--json")  # fmt: skip
    assert r.code == 0, r.err
    only = json.loads(r.out)
    assert only["config"]["after_covers"] == ["vegetation"] and only["changed_pixels"] == 0
    assert summary["changed_pixels"] > 0  # which the filter removed
    with rasterio.open(tmp_path / "v.tif") as ds:  # the probabilities stay as they were
        np.testing.assert_allclose(ds.read(2), prob, atol=1e-6)
    # --no-tta: one pass a tile (8x faster), other probabilities
    r = sw("change", "detect", str(root / "alpha" / "imgs_1"), str(root / "alpha" / "imgs_2"),
           "-o", str(tmp_path / "e.tif"), "--model", str(model), "--no-tta", "--json")  # fmt: skip
    assert r.code == 0, r.err
    assert json.loads(r.out)["config"]["tta"] is False
    with rasterio.open(tmp_path / "e.tif") as ds:
        single = ds.read(2)
    assert np.nanmax(np.abs(single - prob)) > 1e-4
    r = sw("change", "detect", str(root / "alpha" / "imgs_1"), str(root / "alpha" / "imgs_2"),
           "-o", str(tmp_path / "f.tif"), "--no-tta")  # fmt: skip
    assert r.code == 2 and "give --model too" in r.err

    r = sw("change", "detect", str(root / "alpha" / "imgs_1"), str(root / "alpha" / "imgs_2"),
           "-o", str(tmp_path / "d.tif"), "--model", str(tmp_path / "none.pt"))  # fmt: skip
    assert r.code == 2 and "no such model file" in r.err


def test_cli_cross_validation_scores_every_city_once(sw: Any, tmp_path: Path) -> None:
    root = tmp_path / "oscd"
    truths = {name: write_city(root, name, seed) for seed, name in enumerate(("a", "b", "c"))}
    small = ("--steps", "2", "--crop", "32", "--batch", "2", "--threads", "1", "--widths",
             "8,16,32", "--retries", "0", "--json")  # fmt: skip
    r = sw("change", "cv-oscd", str(root), "--folds", "2", *small)
    assert r.code == 0, r.err
    res = json.loads(r.out)
    # fold 0 tests on a and c (sorted, every second one), fold 1 on b; each trains on the rest
    assert [(f["test"], f["train"]) for f in res["folds"]] == [
        (["a", "c"], ["b"]),
        (["b"], ["a", "c"]),
    ]
    assert set(res["per_item"]) == set(truths) and res["after_covers"] == []
    for name, s in res["per_item"].items():  # each city's counts cover its pixels and labels
        assert s["tp"] + s["fn"] == int(truths[name].sum())
        assert s["tp"] + s["fp"] + s["fn"] + s["tn"] == 48 * 48
    for key in ("tp", "fp", "fn", "tn"):
        assert res["pooled"][key] == sum(s[key] for s in res["per_item"].values())
    # and the detected pixels by kind of change: each one counted once
    assert sum(c["tp"] + c["fp"] for c in res["by_kind"].values()) == (
        res["pooled"]["tp"] + res["pooled"]["fp"]
    )
    # the synthetic cities hold no vegetation (NDVI ~0 before and after): keeping only change
    # that ends as vegetation leaves nothing, and four bands without SWIR are warned about
    r = sw("change", "cv-oscd", str(root), "--folds", "2", "--after-cover", "vegetation", *small)
    assert r.code == 0, r.err
    kept = json.loads(r.out)
    assert kept["after_covers"] == ["vegetation"] and "without a SWIR band" in r.err
    assert kept["pooled"]["tp"] + kept["pooled"]["fp"] == 0
    assert kept["pooled"]["fn"] == sum(int(t.sum()) for t in truths.values())


def test_cli_training_defaults_are_the_libraries() -> None:
    """The CLI cannot import torch to read TrainConfig's defaults, so it repeats them: a change
    of one without the other would train the CLI's models on other settings than the
    cross-validation figures were measured with."""
    from sitewatch.analysis.models import train_config
    from sitewatch.cli.change import cv_oscd, train_oscd

    lib = train_config()
    for command in (train_oscd, cv_oscd):
        cli = {p.name: p.default for p in command.params}
        assert cli["crop"] == lib.crop and cli["batch"] == lib.batch
        assert (cli["steps"], cli["minutes"], cli["seed"]) == (lib.steps, lib.minutes, lib.seed)
        assert (cli["threads"], cli["device"]) == (lib.threads, lib.device)


def _whole_image_probability(model: Any, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """The model's probability the plain way: whole prepared images, then the tiles."""
    from sitewatch.analysis.models.changemodel import pair_prior

    valid = np.isfinite(before).all(axis=0) & np.isfinite(after).all(axis=0)
    a, b = model.prepare(before, BANDS), model.prepare(after, BANDS)
    pair = pair_prior(a, b, valid, model.meta.prior, len(BANDS))
    logit = model.logits(a, b, pair)
    prob = (1.0 / (1.0 + np.exp(-np.clip(logit, -60, 60)))).astype(np.float32)
    prob[~valid] = np.nan
    return prob


@pytest.mark.parametrize("prior", ["none", "cva"])
def test_inference_reads_stored_integers_window_by_window(prior: str) -> None:
    """Images as stored (uint16 with a no-data value) give what their float copies with NaN
    give, and both what whole prepared images give; nothing but the window is converted."""
    from sitewatch.analysis.models.changemodel import ChangeModel, ModelMeta

    torch.manual_seed(0)
    meta = ModelMeta(bands=BANDS, widths=(8, 16, 32), tile=32, overlap=8, prior=prior)
    model = ChangeModel(meta)
    before, after, _ = synthetic_pair(size=70)
    b16, a16 = (np.clip(np.round(x), 1, 60000).astype(np.uint16) for x in (before, after))
    b16[:, 5:9, 10:30] = 0  # no data in BEFORE
    a16[2, 40:44, :] = 0  # and in one band of AFTER
    bf = np.where(b16 == 0, np.nan, b16).astype(np.float32)
    af = np.where(a16 == 0, np.nan, a16).astype(np.float32)
    stored = model.probability(b16, a16, BANDS, nodata_before=0, nodata_after=0)
    floats = model.probability(bf, af, BANDS)
    np.testing.assert_array_equal(np.isnan(stored), np.isnan(floats))
    assert np.isnan(stored[5:9, 10:30]).all() and np.isnan(stored[40:44]).all()
    assert np.isfinite(stored).sum() == 70 * 70 - 4 * 20 - 4 * 70
    np.testing.assert_allclose(stored, floats, atol=1e-6)
    np.testing.assert_allclose(stored, _whole_image_probability(model, bf, af), atol=1e-5)
    # progress reaches 1 once, after the last of the 9 tiles (32 px, 24 px apart, over 70 px)
    seen: list[float] = []
    model.probability(b16, a16, BANDS, nodata_before=0, nodata_after=0, progress=seen.append)
    assert len(seen) == 9 and seen[-1] == 1.0 and seen == sorted(seen)
    with pytest.raises(InputError, match="no pixel with data in both"):
        model.probability(np.zeros_like(b16), a16, BANDS, nodata_before=0)


def test_image_statistics_in_blocks_match_the_whole_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """A large image's statistics, and its CVA distances, gathered in blocks of a few rows are
    the whole image's: the blocks' moments merge exactly, the smoothing's halo covers its
    kernel."""
    from sitewatch.analysis.models import changemodel as cm

    before, after, _ = synthetic_pair(size=64)
    before[1, :3] = np.nan
    after[:, 60:] = np.nan
    whole = cm.input_scale(before)
    ok = np.isfinite(before[1])
    assert whole.mean[1] == float(before[1][ok].astype(np.float64).mean())
    assert whole.sd[1] == float(before[1][ok].astype(np.float64).std())
    valid = np.isfinite(before).all(axis=0) & np.isfinite(after).all(axis=0)
    za = cm.normalise_image(before, 6.0)
    zb = cm.normalise_image(after, 6.0)
    dist_whole = cm._cva_prior(lambda rows: (za[:, rows], zb[:, rows]), valid)
    monkeypatch.setattr(cm, "BLOCK_PX", 64 * 5)  # blocks of 5 rows: 13 of them
    assert cm._block_rows(64) == 5
    blocks = cm.input_scale(before)
    np.testing.assert_allclose(blocks.mean, whole.mean, rtol=1e-12)  # type: ignore[arg-type]
    np.testing.assert_allclose(blocks.sd, whole.sd, rtol=1e-12)
    dist_blocks = cm._cva_prior(lambda rows: (za[:, rows], zb[:, rows]), valid)
    np.testing.assert_array_equal(dist_blocks.dist, dist_whole.dist)
    # the scale of a large image comes from a regular sample: close to all pixels'
    assert abs(dist_blocks.median - dist_whole.median) < 0.05 * dist_whole.spread
    # a band without data has no mean and normalises to 0
    empty = before.copy()
    empty[2] = np.nan
    assert cm.input_scale(empty).mean[2] is None
    assert not cm.normalise_image(empty, 6.0)[2].any()
