"""Corridor wall textures: seeded crops of the source images, gratings, grey, user images; disk cache.

A corridor texture covers the textured part of one wall: `texture_length_cm` long and `wall_height_cm`
high, at `px_per_cm` (lowered automatically when the length would exceed the GL texture size limit).
For circle/leaf/rock/brick it is four crops of the category's source image placed end to end; the crop
positions are drawn from a generator seeded by the exemplar number, so leaf1, leaf2 and leaf3 differ
and each is the same on every run. `swap: k` keeps the exemplar's crops and rotates them by k, the lab's
swap corridors: swap1 shows crops (1, 2, 3, 0), swap2 (2, 3, 0, 1), swap3 (3, 0, 1, 2).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from rig.protocol import Corridor, Texture
from rig.vr.sources import SOURCE_CATEGORIES, grating_image, source_image

N_CROPS = 4
MAX_TEXTURE_PX = 16384  # GL_MAX_TEXTURE_SIZE of Mesa llvmpipe; most GPUs allow at least this
GENERATOR_VERSION = 3  # bump when the procedural images change so stale caches are not reused
DEFAULT_CACHE_DIR = Path("~/.cache/corridor-rig/textures")
GREY_LEVEL = 128


@dataclass(frozen=True)
class TextureSize:
    width_px: int
    height_px: int
    px_per_cm: float


def texture_size(length_cm: float, height_cm: float, px_per_cm: float) -> TextureSize:
    """Pixel size of a wall texture, lowering the resolution to fit the GL texture size limit."""
    ppcm = min(px_per_cm, MAX_TEXTURE_PX / length_cm, MAX_TEXTURE_PX / height_cm)
    return TextureSize(max(1, round(length_cm * ppcm)), max(1, round(height_cm * ppcm)), ppcm)


def source_size(crop_w: int, crop_h: int, px_per_cm: float) -> tuple[int, int]:
    """Source image size: at least 240 x 120 cm, and room for crops to land in many places."""
    return max(round(240 * px_per_cm), 2 * crop_w), max(round(120 * px_per_cm), 2 * crop_h)


def crop_origins(seed: int, src_w: int, src_h: int, crop_w: int, crop_h: int) -> list[tuple[int, int]]:
    """(x, y) of the N_CROPS crops of one exemplar: seeded, so the same exemplar always gets the same."""
    rng = np.random.default_rng([seed, 7919])
    xs = rng.integers(0, src_w - crop_w + 1, N_CROPS)
    ys = rng.integers(0, src_h - crop_h + 1, N_CROPS)
    return [(int(x), int(y)) for x, y in zip(xs, ys, strict=True)]


def swap_order(swap: int) -> tuple[int, ...]:
    """The crop order of swap corridor `swap` (1 .. N_CROPS - 1): the crop shown at metre m is crop
    (m + swap) mod N_CROPS of the exemplar. This is the lab's convention (Zhong et al. 2025: swap1 shows
    crops (1, 2, 3, 0), swap2 (2, 3, 0, 1)); its analysis code unswaps the recorded activity by exactly
    this rotation, so any other order would decorrelate the unswapped sequence."""
    if isinstance(swap, bool) or not isinstance(swap, int) or not 1 <= swap < N_CROPS:
        raise ValueError(f"swap must be an integer in 1..{N_CROPS - 1}, got {swap!r}")
    return tuple((m + swap) % N_CROPS for m in range(N_CROPS))


SourceFn = Callable[[str, int, int, float], np.ndarray]


def build_texture(
    texture: Texture, length_cm: float, height_cm: float, px_per_cm: float, sources: SourceFn = source_image
) -> np.ndarray:
    """The (H, W, 3) uint8 wall texture; row 0 is the top of the wall, column 0 the corridor start.
    `sources(category, width_px, height_px, px_per_cm)` supplies source images (a cache may stand in)."""
    size = texture_size(length_cm, height_cm, px_per_cm)
    w, h = size.width_px, size.height_px
    if texture.source == "grey":
        grey = np.full((h, w), GREY_LEVEL, np.uint8)
    elif texture.source == "grating":
        grey = grating_image(w, h, size.px_per_cm, texture.angle_deg, texture.period_cm)
    elif texture.source == "image":
        return _load_image(texture.path or "", w, h)
    else:
        grey = _cropped(texture, w, h, size.px_per_cm, sources)
    return np.repeat(grey[:, :, None], 3, axis=2)


def _cropped(texture: Texture, w: int, h: int, ppcm: float, sources: SourceFn) -> np.ndarray:
    edges = [round(i * w / N_CROPS) for i in range(N_CROPS + 1)]
    crop_w = max(b - a for a, b in itertools.pairwise(edges))
    src_w, src_h = source_size(crop_w, h, ppcm)
    src = sources(texture.source, src_w, src_h, ppcm)
    origins = crop_origins(texture.exemplar, src_w, src_h, crop_w, h)
    crops = [src[y : y + h, x : x + crop_w] for x, y in origins]
    if texture.swap is not None:
        crops = [crops[i] for i in swap_order(texture.swap)]
    out = np.empty((h, w), np.uint8)
    for (a, b), crop in zip(itertools.pairwise(edges), crops, strict=True):
        out[:, a:b] = crop[:, : b - a]
    return out


def _load_image(path: str, w: int, h: int) -> np.ndarray:
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"texture image {str(p)!r} does not exist")
    try:
        with Image.open(p) as im:
            # The whole image covers the textured part of the wall (stretched to its length and height).
            return np.asarray(im.convert("RGB").resize((w, h), Image.Resampling.LANCZOS), dtype=np.uint8).copy()
    except OSError as e:
        raise ValueError(f"texture image {str(p)!r} cannot be read: {e}") from e


def texture_key(texture: Texture, length_cm: float, height_cm: float, px_per_cm: float) -> str:
    """Hash of everything that determines the texture's pixels (a user image's bytes included)."""
    params = {
        "v": GENERATOR_VERSION,
        "texture": texture.model_dump(mode="json"),
        "length_cm": length_cm,
        "height_cm": height_cm,
        "px_per_cm": px_per_cm,
    }
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    if texture.source == "image":
        p = Path(texture.path or "").expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"texture image {str(p)!r} does not exist")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:32]


class TextureStore:
    """Builds wall textures on demand and keeps them in an on-disk cache keyed by their parameters."""

    def __init__(self, cache_dir: str | Path | None = None, px_per_cm: float = 10.0) -> None:
        if px_per_cm <= 0:
            raise ValueError(f"px_per_cm must be > 0, got {px_per_cm}")
        self.cache_dir = Path(cache_dir if cache_dir is not None else DEFAULT_CACHE_DIR).expanduser()
        self.px_per_cm = px_per_cm

    def path_for(self, texture: Texture, length_cm: float, height_cm: float) -> Path:
        return self.cache_dir / f"{texture_key(texture, length_cm, height_cm, self.px_per_cm)}.npy"

    def get(self, texture: Texture, length_cm: float, height_cm: float) -> np.ndarray:
        """The wall texture, from the cache when it holds it, else built and cached."""
        path = self.path_for(texture, length_cm, height_cm)
        arr = self._load(path, ndim=3)
        if arr is None:
            arr = build_texture(texture, length_cm, height_cm, self.px_per_cm, self.source)
            self._save(path, arr)
        return arr

    def source(self, category: str, width_px: int, height_px: int, px_per_cm: float) -> np.ndarray:
        """A source image, cached too: leaf1, leaf2 and leaf3 are cut from one drawing."""
        params = f"{GENERATOR_VERSION}:{category}:{width_px}:{height_px}:{px_per_cm!r}"
        path = self.cache_dir / f"source-{hashlib.sha256(params.encode()).hexdigest()[:32]}.npy"
        arr = self._load(path, ndim=2)
        if arr is None:
            arr = source_image(category, width_px, height_px, px_per_cm)
            self._save(path, arr)
        return arr

    @staticmethod
    def _load(path: Path, ndim: int) -> np.ndarray | None:
        if not path.is_file():
            return None
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None  # a damaged cache file is rebuilt rather than trusted
        return arr if arr.ndim == ndim and arr.dtype == np.uint8 else None

    def _save(self, path: Path, arr: np.ndarray) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, arr)
        tmp.replace(path)  # atomic: a concurrent reader never sees a half-written file

    def corridor(self, corridor: Corridor, wall_height_cm: float) -> np.ndarray:
        return self.get(corridor.texture, corridor.texture_length_cm, wall_height_cm)


def paper_textures() -> dict[str, Texture]:
    """The paper's corridor set (wood = brick here), plus its 0/45 degree gratings and grey."""
    out: dict[str, Texture] = {}
    for cat, exemplars in (
        ("circle", (1, 2, 3)),
        ("leaf", (1, 2, 3)),
        ("rock", (1, 2)),
        ("brick", (1, 2, 5)),
    ):
        for e in exemplars:
            out[f"{cat}{e}"] = Texture(source=cat, exemplar=e)
    out["leaf1_swap1"] = Texture(source="leaf", exemplar=1, swap=1)
    out["leaf1_swap2"] = Texture(source="leaf", exemplar=1, swap=2)
    out["grating0"] = Texture(source="grating", angle_deg=0.0, period_cm=10.0)
    out["grating45"] = Texture(source="grating", angle_deg=45.0, period_cm=10.0)
    out["grey"] = Texture(source="grey")
    return out


def write_textures(
    out_dir: str | Path,
    px_per_cm: float = 10.0,
    length_cm: float = 400.0,
    wall_height_cm: float = 20.0,
    textures: dict[str, Texture] | None = None,
) -> list[Path]:
    """Write the four source images and a set of corridor textures as PNGs; returns the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    size = texture_size(length_cm, wall_height_cm, px_per_cm)
    crop_w = math.ceil(size.width_px / N_CROPS)
    src_w, src_h = source_size(crop_w, size.height_px, size.px_per_cm)
    drawn: dict[tuple[str, int, int, float], np.ndarray] = {}

    def sources(category: str, w: int, h: int, ppcm: float) -> np.ndarray:
        # each source image is drawn once and cut into every exemplar's crops
        key = (category, w, h, ppcm)
        if key not in drawn:
            drawn[key] = source_image(category, w, h, ppcm)
        return drawn[key]

    for cat in SOURCE_CATEGORIES:
        p = out / f"source_{cat}.png"
        Image.fromarray(sources(cat, src_w, src_h, size.px_per_cm)).save(p, optimize=True)
        written.append(p)
    for name, tex in (textures if textures is not None else paper_textures()).items():
        p = out / f"corridor_{name}.png"
        arr = build_texture(tex, length_cm, wall_height_cm, px_per_cm, sources)
        Image.fromarray(arr[:, :, 0] if _is_grey(arr) else arr).save(p, optimize=True)
        written.append(p)
    return written


def _is_grey(arr: np.ndarray) -> bool:
    return bool(np.array_equal(arr[:, :, 0], arr[:, :, 1]) and np.array_equal(arr[:, :, 0], arr[:, :, 2]))
