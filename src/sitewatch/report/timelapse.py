"""A site through time: an animated GIF (Pillow, always available) or MP4 (imageio-ffmpeg).

Every frame uses one contrast stretch computed on all frames, so brightness changes are real and
not an artefact of per-frame stretching, and carries its date (and sensor) as a label.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

from ..errors import InputError, MissingExtraError
from ..files import atomic_path
from ._imagery import NO_IMAGE_FILL, ImageChip, percentile_stretch, to_rgb

__all__ = ["timelapse_frames", "write_timelapse"]

log = logging.getLogger(__name__)


def _sort_key(chip: ImageChip) -> datetime:
    a = chip.acquired
    if a is None:
        return datetime.min
    return a.replace(tzinfo=None) if isinstance(a, datetime) else datetime(a.year, a.month, a.day)


def timelapse_frames(
    chips: Sequence[ImageChip],
    *,
    percentiles: tuple[float, float] = (2.0, 98.0),
    min_size: int = 256,
    label: bool = True,
) -> list[Image.Image]:
    """RGB frames, oldest first, on the first chip's size (upscaled to at least ``min_size``)."""
    if not chips:
        raise InputError("a time-lapse needs at least one image chip")
    ordered = sorted(chips, key=_sort_key)
    stretch = percentile_stretch(ordered, percentiles)
    h, w = ordered[0].height, ordered[0].width
    scale = max(1, int(np.ceil(min_size / max(1, min(h, w)))))
    size = (w * scale, h * scale)
    size = (size[0] + size[0] % 2, size[1] + size[1] % 2)  # even sizes for video encoders
    font = ImageFont.load_default(size=max(12, size[1] // 24))
    frames = []
    for chip in ordered:
        rgb: NDArray[Any] = np.round(to_rgb(chip, stretch, fill=NO_IMAGE_FILL) * 255).astype(
            np.uint8
        )
        img = Image.fromarray(rgb, mode="RGB")
        if img.size != size:
            img = img.resize(size, Image.Resampling.NEAREST)
        if label:
            text = " · ".join(t for t in (chip.date_text or "date unknown", chip.sensor) if t)
            draw = ImageDraw.Draw(img)
            x0, _, x1, y1 = draw.textbbox((0, 0), text, font=font)
            pad = 4
            draw.rectangle((0, 0, x1 - x0 + 2 * pad, y1 + 2 * pad), fill=(0, 0, 0))
            draw.text((pad - x0, pad), text, fill=(255, 255, 255), font=font)
        frames.append(img)
    return frames


def write_timelapse(
    chips: Sequence[ImageChip],
    path: str | Path,
    *,
    fps: float = 1.5,
    percentiles: tuple[float, float] = (2.0, 98.0),
    min_size: int = 256,
) -> Path:
    """Write an animated ``.gif`` or ``.mp4`` of the chips (date label on each frame) atomically."""
    target = Path(path)
    fmt = target.suffix.lower()
    if fmt not in (".gif", ".mp4"):
        raise InputError(f"cannot write a time-lapse as {target.name}: use a .gif or .mp4 name")
    if not fps > 0:
        raise InputError(f"frames per second must be positive, got {fps}")
    frames = timelapse_frames(chips, percentiles=percentiles, min_size=min_size)
    with atomic_path(target, parents=True) as tmp:
        if fmt == ".gif":
            frames[0].save(
                tmp,
                format="GIF",
                save_all=True,
                append_images=frames[1:],
                duration=round(1000 / fps),
                loop=0,
                optimize=False,
            )
        else:
            _write_mp4(frames, tmp, fps)
    log.info("wrote a %d-frame time-lapse to %s", len(frames), target)
    return target


def _write_mp4(frames: Sequence[Image.Image], path: Path, fps: float) -> None:
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise MissingExtraError(
            "imageio-ffmpeg", "video", "MP4 time-lapses (GIF needs nothing)"
        ) from exc
    w, h = frames[0].size
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (w, h),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        macro_block_size=2,
        output_params=["-f", "mp4"],
    )
    writer.send(None)
    try:
        for frame in frames:
            writer.send(np.ascontiguousarray(np.asarray(frame, dtype=np.uint8)).tobytes())
    finally:
        writer.close()
