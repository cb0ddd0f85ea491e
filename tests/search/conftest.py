"""Factories of small test rasters for the search tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS

CRS_UTM = CRS.from_epsg(32652)  # UTM 52N (Korean peninsula)
ORIGIN = (300_000.0, 4_300_000.0)


def _background(rng: np.random.Generator, size: int, bands: int) -> np.ndarray:
    base = rng.normal(0, 1, (bands, size // 8, size // 8))
    up = np.kron(base, np.ones((1, 8, 8)))
    noise = rng.normal(0, 0.4, (bands, size, size))
    img = 90 + 18 * (up + noise)
    return np.clip(img, 1, 255)


def _stamp(img: np.ndarray, r: int, c: int) -> None:
    """A bright compound: two shelters, an apron and a dark portal."""
    img[:, r - 4 : r + 4, c - 6 : c + 6] = 230
    img[:, r - 9 : r - 6, c - 5 : c + 5] = 250
    img[:, r + 6 : r + 9, c - 5 : c + 5] = 250
    img[:, r - 2 : r + 2, c + 8 : c + 10] = 5
    img[:, r + 9 : r + 11, c - 5 : c + 5] = 20  # shadow


SceneFactory = Callable[..., tuple[Path, list[tuple[float, float]], list[tuple[int, int]]]]


@pytest.fixture
def make_scene(tmp_path: Path) -> SceneFactory:
    """Write a 4-band uint8 UTM GeoTIFF with bright compounds planted at known pixels.

    Returns the path, the planted sites as (lon, lat) and as (row, col).
    """

    def make(
        size: int = 384,
        sites: int = 6,
        seed: int = 0,
        nodata_corner: bool = False,
        gsd: float = 10.0,
        name: str = "scene.tif",
    ) -> tuple[Path, list[tuple[float, float]], list[tuple[int, int]]]:
        rng = np.random.default_rng(seed)
        img = _background(rng, size, 4)
        pix: list[tuple[int, int]] = []
        while len(pix) < sites:
            r, c = (int(v) for v in rng.integers(24, size - 24, 2))
            if all(abs(r - a) + abs(c - b) > 60 for a, b in pix):
                pix.append((r, c))
        for r, c in pix:
            _stamp(img, r, c)
        data = np.rint(img).astype(np.uint8)
        if nodata_corner:
            data[:, : size // 3, : size // 3] = 0
        transform = Affine(gsd, 0, ORIGIN[0], 0, -gsd, ORIGIN[1])
        path = tmp_path / name
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=size,
            height=size,
            count=4,
            dtype="uint8",
            crs=CRS_UTM,
            transform=transform,
            nodata=0,
            photometric="MINISBLACK",
        ) as dst:
            dst.write(data)
        to_ll = Transformer.from_crs(CRS_UTM, "EPSG:4326", always_xy=True)
        lonlat = [to_ll.transform(*(transform * (c + 0.5, r + 0.5))) for r, c in pix]
        return path, [(float(a), float(b)) for a, b in lonlat], pix

    return make


@pytest.fixture
def make_dem(tmp_path: Path) -> Callable[..., Path]:
    """A planar DEM z = 1000 + gx * x_m over the scene's footprint (10 m pixels)."""

    def make(size: int = 384, gx: float = 0.1, gsd: float = 10.0) -> Path:
        cols = np.arange(size) * gsd
        z = 1000.0 + gx * np.broadcast_to(cols, (size, size))
        path = tmp_path / "dem.tif"
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=size,
            height=size,
            count=1,
            dtype="float32",
            crs=CRS_UTM,
            transform=Affine(gsd, 0, ORIGIN[0], 0, -gsd, ORIGIN[1]),
        ) as dst:
            dst.write(z.astype(np.float32), 1)
        return path

    return make


def resnet_state(
    in_channels: int = 4,
    blocks: tuple[int, ...] = (2, 2, 2, 2),
    bottleneck: bool = False,
    width: int = 16,
    seed: int = 0,
    prefix: str = "",
) -> dict[str, object]:
    """A random ResNet state dict in the torchvision layout (a narrow one by default: ``width``
    channels after the stem instead of 64), with batch-norm statistics that are not the
    identity, so loading them wrongly changes the output."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    state: dict[str, object] = {}

    def conv(name: str, out_c: int, in_c: int, k: int) -> None:
        fan = in_c * k * k
        state[f"{prefix}{name}.weight"] = torch.randn(out_c, in_c, k, k, generator=gen) / fan**0.5

    def bn(name: str, c: int) -> None:
        state[f"{prefix}{name}.weight"] = 1.0 + 0.1 * torch.randn(c, generator=gen)
        state[f"{prefix}{name}.bias"] = 0.1 * torch.randn(c, generator=gen)
        state[f"{prefix}{name}.running_mean"] = 0.1 * torch.randn(c, generator=gen)
        state[f"{prefix}{name}.running_var"] = 0.5 + torch.rand(c, generator=gen)
        state[f"{prefix}{name}.num_batches_tracked"] = torch.tensor(100)

    conv("conv1", width, in_channels, 7)
    bn("bn1", width)
    expansion = 4 if bottleneck else 1
    in_c = width
    for i, n in enumerate(blocks, start=1):
        planes = width * 2 ** (i - 1)
        for j in range(n):
            base = f"layer{i}.{j}."
            if bottleneck:
                conv(base + "conv1", planes, in_c, 1)
                conv(base + "conv2", planes, planes, 3)
                conv(base + "conv3", planes * expansion, planes, 1)
                for b, c in (("bn1", planes), ("bn2", planes), ("bn3", planes * expansion)):
                    bn(base + b, c)
            else:
                conv(base + "conv1", planes, in_c, 3)
                conv(base + "conv2", planes, planes, 3)
                bn(base + "bn1", planes)
                bn(base + "bn2", planes)
            if j == 0 and (in_c != planes * expansion or i > 1):
                conv(base + "downsample.0", planes * expansion, in_c, 1)
                bn(base + "downsample.1", planes * expansion)
            in_c = planes * expansion
    state[f"{prefix}fc.weight"] = torch.randn(10, in_c, generator=gen)
    state[f"{prefix}fc.bias"] = torch.zeros(10)
    return state


@pytest.fixture
def make_weights(tmp_path: Path) -> Callable[..., Path]:
    """Save :func:`resnet_state` (keyword arguments as there) to a .pt file; ``wrap`` nests it
    in a checkpoint dict under that key."""

    def make(name: str = "resnet.pt", wrap: str | None = None, **kw: object) -> Path:
        import torch

        state = resnet_state(**kw)  # type: ignore[arg-type]
        path = tmp_path / name
        torch.save({wrap: state} if wrap else state, path)
        return path

    return make
