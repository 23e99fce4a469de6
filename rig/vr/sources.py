"""Procedural source images (circle, leaf, rock, brick) and gratings, as grey uint8 arrays.

The paper's source photographs cannot be shipped, so each category is drawn procedurally from a fixed
seed: the same size and resolution always give the same pixels. Feature sizes are given in cm and
scaled by `px_per_cm`, so a wall looks the same at any texture resolution.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SOURCE_CATEGORIES = ("circle", "leaf", "rock", "brick")

# One fixed seed per category: source images never change between runs or machines.
_CATEGORY_SEEDS = {"circle": 1101, "leaf": 2202, "rock": 3303, "brick": 4404}


def source_image(category: str, width_px: int, height_px: int, px_per_cm: float) -> np.ndarray:
    """The (height_px, width_px) uint8 grey source image of one category."""
    if category not in _CATEGORY_SEEDS:
        raise ValueError(f"unknown texture category {category!r}; known: {', '.join(SOURCE_CATEGORIES)}")
    if width_px < 8 or height_px < 8:
        raise ValueError(f"source image too small: {width_px}x{height_px} px")
    rng = np.random.default_rng(_CATEGORY_SEEDS[category])
    if category in ("circle", "leaf"):
        # Shapes are drawn without antialiasing, so draw them at twice the size and average down:
        # smooth edges that do not turn into staircases when the mouse is close to the wall.
        big = _circles if category == "circle" else _leaves
        img = big(rng, 2 * width_px, 2 * height_px, 2 * px_per_cm)
        small = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
        return np.asarray(small.resize((width_px, height_px), Image.Resampling.BOX), dtype=np.uint8)
    img = (_rocks if category == "rock" else _bricks)(rng, width_px, height_px, px_per_cm)
    out: np.ndarray = np.clip(img, 0, 255).astype(np.uint8)
    return out


def grating_image(
    width_px: int, height_px: int, px_per_cm: float, angle_deg: float, period_cm: float
) -> np.ndarray:
    """A sinusoidal grating; angle 0 = vertical bars (luminance varies along the corridor)."""
    x = (np.arange(width_px) + 0.5) / px_per_cm
    y = (np.arange(height_px) + 0.5) / px_per_cm
    a = math.radians(angle_deg)
    phase = (np.cos(a) * x[None, :] + np.sin(a) * y[:, None]) * (2 * math.pi / period_cm)
    out: np.ndarray = np.round(127.5 + 127.5 * np.cos(phase)).astype(np.uint8)
    return out


def fractal_noise(
    rng: np.random.Generator, h: int, w: int, beta: float, cutoff_px: float = 1.0
) -> np.ndarray:
    """Zero-mean, unit-variance noise with a 1/f**beta amplitude spectrum (filtered in Fourier space)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    amp = f ** (-beta) * np.exp(-((f * cutoff_px) ** 2))
    amp[0, 0] = 0.0
    spec = np.fft.rfft2(rng.standard_normal((h, w)).astype(np.float32)) * amp
    out = np.fft.irfft2(spec, s=(h, w)).astype(np.float32)
    normalised: np.ndarray = (out - out.mean()) / (out.std() + 1e-9)
    return normalised


def _circles(rng: np.random.Generator, w: int, h: int, ppcm: float) -> np.ndarray:
    # Many overlapping discs of assorted size and grey level, each with a darker rim, like the
    # paper's "circle" photograph: the edges give strong local contrast at several scales.
    img = Image.new("L", (w, h), 90)
    draw = ImageDraw.Draw(img)
    area_cm2 = w * h / ppcm**2
    n = int(area_cm2 / 6)
    for _ in range(n):
        r = ppcm * float(np.exp(rng.uniform(np.log(0.8), np.log(6.0))))
        cx, cy = rng.uniform(-r, w + r), rng.uniform(-r, h + r)
        fill = int(rng.integers(30, 240))
        rim = max(1, int(round(ppcm * rng.uniform(0.1, 0.35))))
        box = (cx - r, cy - r, cx + r, cy + r)
        draw.ellipse(box, fill=fill, outline=int(max(0, fill - 90)), width=rim)
    return np.asarray(img, dtype=np.float32)


def _leaf_outline(length: float, width: float, n: int = 24) -> np.ndarray:
    """Leaf polygon in its own frame: base at (0, 0), tip at (length, 0)."""
    t = np.linspace(0.0, 1.0, n)
    half = 0.5 * width * np.sin(np.pi * t) ** 0.9 * (1.0 - 0.35 * t)
    upper = np.stack([t * length, half], axis=1)
    lower = np.stack([t[::-1] * length, -half[::-1]], axis=1)
    return np.concatenate([upper, lower[1:-1]])


def _leaves(rng: np.random.Generator, w: int, h: int, ppcm: float) -> np.ndarray:
    # Overlapping pointed leaves, each with a midrib and paired side veins; drawn back to front so
    # later leaves hide earlier ones as in a pile of foliage.
    img = Image.new("L", (w, h), 25)
    draw = ImageDraw.Draw(img)
    area_cm2 = w * h / ppcm**2
    n = int(area_cm2 / 14)
    for _ in range(n):
        length = ppcm * rng.uniform(5.0, 11.0)
        width = length * rng.uniform(0.35, 0.55)
        ang = rng.uniform(0, 2 * np.pi)
        c, s = np.cos(ang), np.sin(ang)
        rot = np.array([[c, -s], [s, c]])
        base = np.array([rng.uniform(-length, w + length), rng.uniform(-length, h + length)])

        def place(
            pts: np.ndarray, rot: np.ndarray = rot, base: np.ndarray = base
        ) -> list[tuple[float, float]]:
            return [tuple(p) for p in (pts @ rot.T + base)]

        tone = int(rng.integers(70, 215))
        vein = int(min(255, tone + 45)) if rng.random() < 0.5 else int(max(0, tone - 55))
        draw.polygon(place(_leaf_outline(length, width)), fill=tone, outline=int(max(0, tone - 60)))
        stem = np.array([[-0.12 * length, 0.0], [length * 0.97, 0.0]])
        draw.line(place(stem), fill=vein, width=max(1, int(round(0.22 * ppcm))))
        n_veins = int(rng.integers(4, 7))
        for k in range(1, n_veins + 1):
            x0 = length * k / (n_veins + 1.2)
            reach = 0.5 * width * np.sin(np.pi * x0 / length) ** 0.9 * (1 - 0.35 * x0 / length) * 0.7
            for side in (1.0, -1.0):
                seg = np.array([[x0, 0.0], [x0 + reach * 0.8, side * reach]])
                draw.line(place(seg), fill=vein, width=max(1, int(round(0.12 * ppcm))))
    img = img.filter(ImageFilter.GaussianBlur(radius=0.06 * ppcm))
    return np.asarray(img, dtype=np.float32)


def _rocks(rng: np.random.Generator, w: int, h: int, ppcm: float) -> np.ndarray:
    # Cellular (Worley) stones: each cell a stone with its own tone, lit from the upper left so it
    # looks rounded, dark cracks where two cells meet, and granite-like grain on top. The cells are
    # computed at half resolution (they are smooth) and upsampled, which keeps this well under a second.
    hw, hh = max(4, w // 2), max(4, h // 2)
    cell = 6.0 * ppcm / 2
    gw, gh = int(np.ceil(hw / cell)) + 2, int(np.ceil(hh / cell)) + 2
    jitter = rng.uniform(0.05, 0.95, (gh, gw, 2))
    pts = (np.stack(np.meshgrid(np.arange(gw), np.arange(gh)), axis=-1) + jitter) * cell
    tones = rng.uniform(70, 190, (gh, gw)).astype(np.float32)
    ys, xs = np.mgrid[0:hh, 0:hw].astype(np.float32)
    xs += cell
    ys += cell
    ci, cj = (ys // cell).astype(np.int32), (xs // cell).astype(np.int32)
    d1 = np.full((hh, hw), np.inf, np.float32)
    d2 = np.full((hh, hw), np.inf, np.float32)
    tone = np.zeros((hh, hw), np.float32)
    lit = np.zeros((hh, hw), np.float32)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            i, j = np.clip(ci + di, 0, gh - 1), np.clip(cj + dj, 0, gw - 1)
            dx, dy = xs - pts[i, j, 0], ys - pts[i, j, 1]
            d = np.hypot(dx, dy)
            closer = d < d1
            d2 = np.where(closer, d1, np.minimum(d2, d))
            tone = np.where(closer, tones[i, j], tone)
            # light from the upper left: the side of a stone facing it is brighter
            lit = np.where(closer, -(dx + dy) / (1.4 * cell), lit)
            d1 = np.where(closer, d, d1)
    edge = np.clip((d2 - d1) / cell * 4.0, 0, 1)  # 0 on a crack, 1 well inside a stone
    stone = tone * (0.25 + 0.75 * np.sqrt(edge)) * (1.0 + 0.35 * np.clip(lit, -1, 1))
    big = np.asarray(Image.fromarray(stone.astype(np.float32), mode="F").resize((w, h), Image.Resampling.BILINEAR))
    grain = fractal_noise(rng, h, w, beta=0.5)
    mottle = fractal_noise(rng, h, w, beta=1.5)
    out: np.ndarray = big + 16 * grain + 14 * mottle
    return out


def _bricks(rng: np.random.Generator, w: int, h: int, ppcm: float) -> np.ndarray:
    # Running-bond brick wall: rows offset by half a brick, light mortar joints, each brick its own
    # tone with a little grain and darker edges.
    bw, bh, mortar = 10.0 * ppcm, 4.0 * ppcm, 0.8 * ppcm
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    row = np.floor(ys / bh).astype(np.int32)
    xo = xs + np.where(row % 2 == 1, bw / 2, 0.0)
    col = np.floor(xo / bw).astype(np.int32)
    fx, fy = xo - col * bw, ys - row * bh
    n_rows, n_cols = int(h / bh) + 2, int(w / bw) + 3
    tones = rng.uniform(70, 170, (n_rows, n_cols)).astype(np.float32)
    tone = tones[row, col]
    # distance to the nearest joint, in pixels
    dj = np.minimum(np.minimum(fx, bw - fx), np.minimum(fy, bh - fy))
    in_mortar = dj < mortar / 2
    bevel = np.clip((dj - mortar / 2) / (0.5 * ppcm), 0, 1)
    grain = fractal_noise(rng, h, w, beta=0.8)
    img = np.where(in_mortar, 215 + 8 * grain, tone * (0.7 + 0.3 * bevel) + 10 * grain)
    return img
