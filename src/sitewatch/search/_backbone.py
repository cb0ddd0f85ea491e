"""A ResNet trunk built from a local state dict (torch; used through :mod:`.embedding`).

The architecture is read from the weights, so the torchvision, timm and TorchGeo layouts of
ResNet-18/34 (basic blocks) and ResNet-50/101/152 (bottlenecks) load as they are: ``conv1``,
``bn1``, ``layer{1..4}.{j}.conv{1,2[,3]}``, ``bn{...}``, ``downsample.{0,1}``, ``fc``, under any
common prefix (``backbone.``, ``encoder.``, ``model.``, ``module.``), inside a checkpoint's
``state_dict`` or ``model`` entry or not, from a ``torch.save`` file (read with
``weights_only``: no code in it runs) or a ``.safetensors`` file (timm's hub format). The trunk stops after ``layer`` (1-4); later layers and
the classifier head are ignored. Batch norm runs in inference mode (its running statistics).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InputError, MissingExtraError

__all__ = ["Trunk", "TrunkInfo", "load_state", "load_trunk"]

_STEM_KEY = "conv1.weight"
_BLOCK_KEY = re.compile(r"^layer([1-4])\.(\d+)\.")


@dataclass(frozen=True)
class TrunkInfo:
    """What a trunk takes and gives: input channels, output channels, total stride, receptive
    field (pixels on a side), and the architecture it was read as."""

    in_channels: int
    out_channels: int
    stride: int
    receptive_field: int
    arch: str


def load_state(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a weights file, with any common key prefix removed."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"backbone weights {p} not found; give the path of a local weights file")
    try:
        if p.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(p), device="cpu")
        else:
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except ImportError as exc:
        raise MissingExtraError("safetensors", "ml", "reading .safetensors weights") from exc
    except Exception as exc:  # torch raises several types for a file that is not a checkpoint
        raise InputError(
            f"cannot read backbone weights {p}: not a PyTorch checkpoint that loads without "
            f"running code ({type(exc).__name__}); give a PyTorch state dict (.pt/.pth) or "
            ".safetensors file of a ResNet, such as torchvision's, timm's or TorchGeo's"
        ) from exc
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping):
        raise InputError(f"backbone weights {p} hold a {type(obj).__name__}, not a state dict")
    stems = [k for k in obj if isinstance(k, str) and k.endswith(_STEM_KEY) and "layer" not in k]
    if not stems:
        raise InputError(
            f"backbone weights {p} are not a ResNet (no {_STEM_KEY!r} key); sitewatch reads "
            "ResNet-18/34/50/101/152 weights in the torchvision/timm/TorchGeo layout"
        )
    prefix = min(stems, key=len)[: -len(_STEM_KEY)]
    return {
        k[len(prefix) :]: v
        for k, v in obj.items()
        if isinstance(k, str) and k.startswith(prefix) and isinstance(v, Tensor)
    }


def _strided_conv(n_convs: int) -> int:
    """Which convolution of a block carries its stride: the first of a basic block (two
    convolutions), the 3x3 of a bottleneck (three; torchvision's "ResNet v1.5", as timm's)."""
    return 1 if n_convs == 2 else 2


class _Block(nn.Module):
    """A residual block (basic: two 3x3 convolutions; bottleneck: 1x1, 3x3, 1x1)."""

    def __init__(self, shapes: list[torch.Size], stride: int, downsample: bool) -> None:
        super().__init__()
        self.n = len(shapes)
        for i, shape in enumerate(shapes, start=1):
            k = int(shape[-1])
            s = stride if i == _strided_conv(self.n) else 1
            setattr(self, f"conv{i}", nn.Conv2d(int(shape[1]), int(shape[0]), k, s, k // 2,
                                                bias=False))  # fmt: skip
            setattr(self, f"bn{i}", nn.BatchNorm2d(int(shape[0])))
        self.downsample: nn.Module | None = None
        if downsample:
            out_c, in_c = int(shapes[-1][0]), int(shapes[0][1])
            self.downsample = nn.Sequential(
                nn.Conv2d(in_c, out_c, 1, stride, bias=False), nn.BatchNorm2d(out_c)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = x
        for i in range(1, self.n + 1):
            out = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(out))
            if i < self.n:
                out = torch.relu(out)
        identity = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + identity)


class Trunk(nn.Module):
    """The stem and the first ``layer`` residual stages of a ResNet."""

    def __init__(self, state: Mapping[str, Tensor], layer: int) -> None:
        super().__init__()
        stem = state[_STEM_KEY]
        self.conv1 = nn.Conv2d(int(stem.shape[1]), int(stem.shape[0]), int(stem.shape[-1]), 2,
                               int(stem.shape[-1]) // 2, bias=False)  # fmt: skip
        self.bn1 = nn.BatchNorm2d(int(stem.shape[0]))
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        blocks: dict[int, set[int]] = {}
        for k in state:
            m = _BLOCK_KEY.match(k)
            if m:
                blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
        missing = [i for i in range(1, layer + 1) if i not in blocks]
        if missing:
            raise InputError(
                f"the backbone weights have no layer{missing[0]}; give a backbone layer of at "
                f"most {max(blocks, default=0)}"
            )
        bottleneck = "layer1.0.conv3.weight" in state
        rf, jump = int(stem.shape[-1]), 2  # the stem convolution, then the max-pool
        rf, jump = rf + 2 * jump, jump * 2
        for i in range(1, layer + 1):
            mods = []
            for j in sorted(blocks[i]):
                base = f"layer{i}.{j}."
                shapes = [state[f"{base}conv{n}.weight"].shape for n in (1, 2, 3)
                          if f"{base}conv{n}.weight" in state]  # fmt: skip
                if len(shapes) not in (2, 3):
                    raise InputError(
                        f"backbone block {base[:-1]} has {len(shapes)} convolution(s); a ResNet "
                        "block has 2 (basic) or 3 (bottleneck)"
                    )
                down = f"{base}downsample.0.weight" in state
                stride = 2 if (j == 0 and i > 1) else 1
                mods.append(_Block(shapes, stride, down))
                for n, shape in enumerate(shapes, start=1):
                    rf += (int(shape[-1]) - 1) * jump
                    jump *= stride if n == _strided_conv(len(shapes)) else 1
            setattr(self, f"layer{i}", nn.Sequential(*mods))
        self.layers = layer
        per_layer = [len(blocks[i]) for i in sorted(blocks)]
        arch = f"ResNet, {'bottleneck' if bottleneck else 'basic'} blocks {per_layer}"
        out_c = int(
            state[f"layer{layer}.{max(blocks[layer])}.conv{3 if bottleneck else 2}.weight"].shape[0]
        )
        self.info = TrunkInfo(int(stem.shape[1]), out_c, jump, rf, arch)
        own = self.state_dict()
        absent = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
        if absent:
            raise InputError(f"the backbone weights lack {absent[0]} (and {len(absent) - 1} more)")
        wrong = [k for k in own if k in state and own[k].shape != state[k].shape]
        if wrong:
            raise InputError(
                f"backbone weight {wrong[0]} has shape {tuple(state[wrong[0]].shape)}, expected "
                f"{tuple(own[wrong[0]].shape)}"
            )
        self.load_state_dict({k: state[k] for k in own if k in state}, strict=False)
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        for i in range(1, self.layers + 1):
            x = getattr(self, f"layer{i}")(x)
        return x


def load_trunk(path: str | Path, layer: int) -> Trunk:
    """The trunk of the ResNet whose weights are at ``path``, up to ``layer`` (1-4)."""
    if not 1 <= layer <= 4:
        raise InputError(f"backbone layer must be 1 to 4, got {layer}")
    return Trunk(load_state(path), layer)
