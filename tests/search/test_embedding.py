"""Learned embeddings from a local ResNet backbone in the search (issue 8, build item 2)."""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np
import pytest
import rasterio

from sitewatch.errors import InputError, MissingExtraError
from sitewatch.search import embedding as emb_mod
from sitewatch.search.run import SearchParams, Source, _block_features, run_search
from sitewatch.search.tiles import Block

torch = pytest.importorskip("torch")

from sitewatch.search._backbone import Trunk, load_state, load_trunk  # noqa: E402

from .conftest import resnet_state  # noqa: E402

PARAMS = SearchParams(tile=8, stride=4, block_tiles=16, top=20, negatives=600)


def _reference_layer1(state: dict[str, object], x: torch.Tensor) -> torch.Tensor:
    """Stem and layer1 of a basic-block ResNet written out with torch.nn.functional."""
    F = torch.nn.functional

    def bn(y: torch.Tensor, name: str) -> torch.Tensor:
        return F.batch_norm(
            y, state[f"{name}.running_mean"], state[f"{name}.running_var"],
            state[f"{name}.weight"], state[f"{name}.bias"], training=False, eps=1e-5,
        )  # fmt: skip

    y = F.relu(bn(F.conv2d(x, state["conv1.weight"], stride=2, padding=3), "bn1"))
    y = F.max_pool2d(y, 3, 2, 1)
    j = 0
    while f"layer1.{j}.conv1.weight" in state:
        b = f"layer1.{j}."
        out = F.relu(bn(F.conv2d(y, state[b + "conv1.weight"], padding=1), b + "bn1"))
        out = bn(F.conv2d(out, state[b + "conv2.weight"], padding=1), b + "bn2")
        y = F.relu(out + y)
        j += 1
    return y


def test_trunk_matches_the_resnet_arithmetic_and_reads_its_shape() -> None:
    state = resnet_state(in_channels=4, blocks=(2, 2, 2, 2))
    x = torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(1))
    t1 = Trunk(state, 1)
    with torch.no_grad():
        assert torch.allclose(t1(x), _reference_layer1(state, x), atol=1e-5)
    assert t1.info.in_channels == 4 and t1.info.stride == 4 and t1.info.receptive_field == 43
    t4 = Trunk(state, 4)
    assert (t4.info.stride, t4.info.out_channels, t4.info.receptive_field) == (32, 128, 435)
    with torch.no_grad():
        assert tuple(t4(x).shape) == (1, 128, 2, 2)


def test_bottleneck_weights_in_a_checkpoint_under_a_prefix_load(make_weights) -> None:
    path = make_weights(
        wrap="state_dict", in_channels=3, blocks=(3, 4, 6, 3), bottleneck=True, prefix="backbone."
    )
    trunk = load_trunk(path, 2)
    assert "bottleneck" in trunk.info.arch and trunk.info.out_channels == 32 * 4
    assert trunk.info.stride == 8
    with torch.no_grad():
        assert tuple(trunk(torch.zeros(1, 3, 32, 32)).shape) == (1, 128, 4, 4)
    assert "conv1.weight" in load_state(path)  # the prefix is gone


def test_safetensors_weights_load_like_torch_ones(tmp_path) -> None:
    safetensors = pytest.importorskip("safetensors.torch")
    state = resnet_state(in_channels=3, blocks=(1, 1))
    path = tmp_path / "model.safetensors"
    safetensors.save_file({k: v for k, v in state.items() if isinstance(v, torch.Tensor)}, path)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(load_trunk(path, 2)(x), Trunk(state, 2)(x))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(InputError, match="cannot read backbone weights"):
        load_state(broken)


def test_bad_weights_are_clear_errors(make_weights, tmp_path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_state(tmp_path / "absent.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read backbone weights"):
        load_state(junk)
    other = tmp_path / "other.pt"
    torch.save({"encoder.weight": torch.zeros(3)}, other)
    with pytest.raises(InputError, match="not a ResNet"):
        load_state(other)
    short = make_weights(name="short.pt", blocks=(2, 2))
    with pytest.raises(InputError, match="no layer3"):
        load_trunk(short, 3)
    with pytest.raises(InputError, match="1 to 4"):
        load_trunk(short, 5)


def test_channel_mapping_is_checked(make_scene, make_weights) -> None:
    path, lonlat, _ = make_scene(size=96, sites=1, seed=2)
    wide = make_weights(name="s2.pt", in_channels=13, blocks=(1, 1))
    with pytest.raises(InputError, match="--backbone-bands with 13 entries"):
        run_search(path, lonlat, params=replace(PARAMS, backbone=str(wide)))
    with pytest.raises(InputError, match="has 2 entries"):
        run_search(path, lonlat, params=replace(PARAMS, backbone=str(wide), backbone_bands=(1, 2)))
    bad = (5,) + (0,) * 12
    with pytest.raises(InputError, match="band position 1-4"):
        run_search(path, lonlat, params=replace(PARAMS, backbone=str(wide), backbone_bands=bad))


def test_embeddings_do_not_depend_on_how_the_aoi_is_cut(make_scene, make_weights) -> None:
    path, _, _ = make_scene(size=160, sites=3, seed=6)
    weights = make_weights(blocks=(1, 1))
    p = replace(PARAMS, backbone=str(weights), backbone_layer=2)
    with rasterio.open(path) as ds:
        p = p.for_image(ds)
        cfg = p.features
        grid = cfg.grid(ds)
        from sitewatch.search.features import estimate_scale

        scale = estimate_scale(ds, (1, 2, 3, 4))
        emb = emb_mod.prepare_embedding(weights, ds, grid, (1, 2, 3, 4), scale, layer=2, dims=6)
    cfg = replace(cfg, embedding=emb)
    rf = load_trunk(weights, 2).info.receptive_field  # 51 px: one block per layer
    assert emb.dims == 6 and emb.stride == 8 and emb.halo >= (rf - 1) // 2 + 8
    src = Source(str(path), grid, cfg, scale, (1, 2, 3, 4))
    whole, ok, _ = _block_features(src, Block(0, 0, grid.n_rows, grid.n_cols))
    n_hand = whole.shape[-1] - 6
    pieces = np.full_like(whole, np.nan)
    for r0 in range(0, grid.n_rows, 7):  # 7 is prime to the feature stride: blocks misalign
        for c0 in range(0, grid.n_cols, 11):
            b = Block(r0, c0, min(7, grid.n_rows - r0), min(11, grid.n_cols - c0))
            f, _, _ = _block_features(src, b)
            pieces[r0 : r0 + b.n_rows, c0 : c0 + b.n_cols] = f
    np.testing.assert_allclose(pieces[ok], whole[ok], rtol=1e-4, atol=1e-4)
    emb_cols = whole[ok][:, n_hand:]
    assert emb_cols.std(axis=0).min() > 0  # the columns vary over the scene
    # the columns are principal axes: decorrelated over the image's tiles
    corr = np.corrcoef(emb_cols.T)
    assert np.abs(corr[np.triu_indices(6, 1)]).max() < 0.5


def test_search_with_a_backbone_appends_embeddings(make_scene, make_weights) -> None:
    path, lonlat, pix = make_scene(size=256, sites=5, seed=3)
    weights = make_weights(blocks=(2, 2, 2, 2))
    p = replace(PARAMS, backbone=str(weights), embed_dims=8)
    first = run_search(path, lonlat[:2], params=p)
    names = first.model.feature_names
    assert names[-9:] == (*(f"emb_{i}" for i in range(8)), "spectral_match")
    assert first.candidate_features.shape[1] == len(names)
    summary = first.summary()["embedding"]
    assert summary["layer"] == 2 and summary["dims"] == 8 and summary["channels"] == [1, 2, 3, 4]
    again = run_search(path, lonlat[:2], params=p)
    np.testing.assert_array_equal(first.scores, again.scores)  # reproducible
    plain = run_search(path, lonlat[:2], params=PARAMS)
    assert not np.array_equal(np.nan_to_num(plain.scores), np.nan_to_num(first.scores))
    # the held-out compounds are still found among the first candidates
    g = first.grid
    found = {
        i
        for c in first.candidates[:10]
        for i, (r, col) in enumerate(pix)
        if c.row * g.stride <= r < c.row * g.stride + g.tile
        and c.col * g.stride <= col < c.col * g.stride + g.tile
    }
    assert {2, 3, 4} <= found
    assert SearchParams.from_dict(p.to_dict()) == p


def test_without_torch_the_ml_extra_is_named(make_scene, make_weights, monkeypatch) -> None:
    path, lonlat, _ = make_scene(size=64, sites=1, seed=1)
    weights = make_weights(blocks=(1,))
    emb_mod._trunk.cache_clear()
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingExtraError, match=r"sitewatch\[ml\]"):
        run_search(path, lonlat, params=replace(PARAMS, backbone=str(weights)))


def test_a_cluster_worker_process_loads_the_backbone_and_agrees(make_scene, make_weights) -> None:
    distributed = pytest.importorskip("distributed")
    path, lonlat, _ = make_scene(size=160, sites=2, seed=7)
    p = replace(PARAMS, backbone=str(make_weights(blocks=(1, 1))), embed_dims=4, rerank=0.0)
    local = run_search(path, lonlat[:1], params=p)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, protocol="tcp://", host="127.0.0.1",
        dashboard_address=":0",  # a free port: 8787 may be taken
    ) as cluster:  # fmt: skip
        remote = run_search(path, lonlat[:1], params=p, scheduler=cluster.scheduler_address)
    # equal here; torch may sum convolutions in another order with other thread counts
    np.testing.assert_allclose(remote.scores, local.scores, rtol=1e-6, atol=1e-6)
    assert [(c.row, c.col) for c in remote.candidates] == [(c.row, c.col) for c in local.candidates]
