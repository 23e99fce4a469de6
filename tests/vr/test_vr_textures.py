"""Procedural textures: deterministic, seeded crops, swaps, gratings, user images, disk cache."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rig.protocol import Texture
from rig.vr.sources import SOURCE_CATEGORIES, grating_image, source_image
from rig.vr.textures import (
    N_CROPS,
    TextureStore,
    build_texture,
    swap_order,
    texture_key,
    texture_size,
    write_textures,
)

PPCM = 3.0  # low resolution keeps these tests fast; the code paths are the same


def tex(source: str, exemplar: int = 1, **kw) -> Texture:
    return Texture(source=source, exemplar=exemplar, **kw)


@pytest.mark.parametrize("category", SOURCE_CATEGORIES)
def test_source_images_are_deterministic_and_textured(category: str) -> None:
    a = source_image(category, 300, 150, PPCM)
    b = source_image(category, 300, 150, PPCM)
    assert a.shape == (150, 300) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert a.std() > 25, "a source image should have strong contrast"


def test_source_categories_differ_from_each_other() -> None:
    imgs = [source_image(c, 300, 150, PPCM).astype(float) for c in SOURCE_CATEGORIES]
    for i in range(len(imgs)):
        for j in range(i + 1, len(imgs)):
            assert np.abs(imgs[i] - imgs[j]).mean() > 20


def test_unknown_category_is_rejected_by_name() -> None:
    with pytest.raises(ValueError, match="wood"):
        source_image("wood", 100, 100, PPCM)


def test_corridor_texture_size_and_orientation() -> None:
    arr = build_texture(tex("leaf"), 400.0, 20.0, PPCM)
    assert arr.shape == (60, 1200, 3) and arr.dtype == np.uint8


def test_exemplars_differ_and_repeat_exactly() -> None:
    leaf1 = build_texture(tex("leaf", 1), 400.0, 20.0, PPCM)
    leaf2 = build_texture(tex("leaf", 2), 400.0, 20.0, PPCM)
    leaf3 = build_texture(tex("leaf", 3), 400.0, 20.0, PPCM)
    assert np.array_equal(leaf1, build_texture(tex("leaf", 1), 400.0, 20.0, PPCM))
    for a, b in ((leaf1, leaf2), (leaf1, leaf3), (leaf2, leaf3)):
        assert np.abs(a.astype(int) - b.astype(int)).mean() > 20


def quarters(arr: np.ndarray) -> list[np.ndarray]:
    w = arr.shape[1] // N_CROPS
    return [arr[:, i * w : (i + 1) * w] for i in range(N_CROPS)]


def test_swap_rearranges_the_exemplars_crops() -> None:
    leaf1 = quarters(build_texture(tex("leaf", 1), 400.0, 20.0, PPCM))
    for k in (1, 2, 3):
        swapped = quarters(build_texture(tex("leaf", 1, swap=k), 400.0, 20.0, PPCM))
        order = swap_order(k)
        assert order != tuple(range(N_CROPS))
        for pos, src in enumerate(order):
            assert np.array_equal(swapped[pos], leaf1[src])
    assert len({swap_order(k) for k in (1, 2, 3)}) == 3


def test_swap_orders_are_the_labs() -> None:
    # Zhong et al. 2025 (the lab's analysis code unswaps by these): metre m of swap k shows crop (m + k) mod 4
    assert swap_order(1) == (1, 2, 3, 0)
    assert swap_order(2) == (2, 3, 0, 1)
    for bad in (0, 4, -1, True):
        with pytest.raises(ValueError, match="swap"):
            swap_order(bad)


def test_lab_unswap_of_rendered_swap_corridors_gives_back_leaf1() -> None:
    """Rendered pixels, 1 m = one crop: undoing the lab's rearrangement (swap1: the last metre goes to the
    front; swap2: the two halves trade places) must give leaf1's texture exactly."""
    ref = build_texture(tex("leaf", 1), 400.0, 20.0, PPCM)
    m = ref.shape[1] // N_CROPS  # pixels per metre
    s1 = build_texture(tex("leaf", 1, swap=1), 400.0, 20.0, PPCM)
    s2 = build_texture(tex("leaf", 1, swap=2), 400.0, 20.0, PPCM)
    un1 = np.concatenate([s1[:, 3 * m :], s1[:, : 3 * m]], axis=1)
    un2 = np.concatenate([s2[:, 2 * m :], s2[:, : 2 * m]], axis=1)
    assert np.array_equal(un1, ref) and np.array_equal(un2, ref)
    assert not np.array_equal(s1, ref) and not np.array_equal(s2, ref)


def test_grating_angle_and_period() -> None:
    ppcm = 4.0
    vertical = grating_image(400, 40, ppcm, 0.0, 10.0).astype(float)
    assert np.all(vertical == vertical[0])  # angle 0: bars are vertical, rows identical
    period_px = 10.0 * ppcm
    assert np.abs(vertical[:, :-40] - vertical[:, 40:]).max() <= 1  # repeats every period
    assert np.abs(vertical[:, : -int(period_px / 2)] - vertical[:, int(period_px / 2) :]).mean() > 100
    horizontal = grating_image(400, 80, ppcm, 90.0, 10.0).astype(float)
    assert np.all(horizontal == horizontal[:, :1])  # angle 90: columns identical
    oblique = grating_image(400, 80, ppcm, 45.0, 10.0).astype(float)
    # 45 deg: constant along the image diagonal (x + y fixed), varying along x
    k = 20
    assert np.abs(oblique[k:, :-k] - oblique[:-k, k:]).max() <= 1
    assert oblique.std() > 50


def test_grey_texture_is_uniform() -> None:
    arr = build_texture(tex("grey"), 400.0, 20.0, PPCM)
    assert np.unique(arr).tolist() == [128]


def test_image_source_loads_the_users_file(tmp_path) -> None:
    src = np.zeros((10, 40, 3), np.uint8)
    src[:, 20:, 0] = 255  # right half red
    path = tmp_path / "mine.png"
    Image.fromarray(src).save(path)
    arr = build_texture(Texture(source="image", path=str(path)), 400.0, 20.0, PPCM)
    assert arr.shape == (60, 1200, 3)
    assert arr[30, 100].tolist() == [0, 0, 0] and arr[30, 1100].tolist() == [255, 0, 0]


def test_missing_image_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        build_texture(Texture(source="image", path=str(tmp_path / "nothere.png")), 400.0, 20.0, PPCM)


def test_unreadable_image_file_is_a_clear_error(tmp_path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match="cannot be read"):
        build_texture(Texture(source="image", path=str(bad)), 400.0, 20.0, PPCM)


def test_resolution_is_lowered_to_fit_the_gl_limit() -> None:
    size = texture_size(10_000.0, 20.0, 10.0)
    assert size.width_px <= 16384 and size.px_per_cm < 10.0


def test_cache_key_depends_on_every_parameter(tmp_path) -> None:
    base = texture_key(tex("leaf", 1), 400.0, 20.0, PPCM)
    assert base == texture_key(tex("leaf", 1), 400.0, 20.0, PPCM)
    others = {
        texture_key(tex("leaf", 2), 400.0, 20.0, PPCM),
        texture_key(tex("leaf", 1, swap=1), 400.0, 20.0, PPCM),
        texture_key(tex("leaf", 1), 300.0, 20.0, PPCM),
        texture_key(tex("leaf", 1), 400.0, 30.0, PPCM),
        texture_key(tex("leaf", 1), 400.0, 20.0, 4.0),
        texture_key(tex("rock", 1), 400.0, 20.0, PPCM),
    }
    assert base not in others and len(others) == 6
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(img)
    k1 = texture_key(Texture(source="image", path=str(img)), 400.0, 20.0, PPCM)
    Image.fromarray(np.full((4, 4, 3), 9, np.uint8)).save(img)
    assert texture_key(Texture(source="image", path=str(img)), 400.0, 20.0, PPCM) != k1


def test_store_caches_on_disk_and_reuses_it(tmp_path) -> None:
    store = TextureStore(tmp_path / "cache", PPCM)
    t = tex("circle", 2)
    path = store.path_for(t, 400.0, 20.0)
    assert not path.exists()
    first = store.get(t, 400.0, 20.0)
    assert path.is_file()
    # The cached file is what a second store returns: overwrite it with a marker to prove it is read.
    marker = np.full_like(first, 7)
    np.save(path, marker)
    assert np.array_equal(TextureStore(tmp_path / "cache", PPCM).get(t, 400.0, 20.0), marker)


def test_store_rebuilds_a_damaged_cache_file(tmp_path) -> None:
    store = TextureStore(tmp_path, PPCM)
    t = tex("brick", 1)
    good = store.get(t, 400.0, 20.0)
    store.path_for(t, 400.0, 20.0).write_bytes(b"garbage")
    assert np.array_equal(store.get(t, 400.0, 20.0), good)


def test_write_textures_writes_sources_and_corridors(tmp_path) -> None:
    files = write_textures(tmp_path, px_per_cm=1.0, textures={"leaf1": tex("leaf", 1), "g": tex("grating")})
    names = sorted(p.name for p in files)
    assert names == sorted([f"source_{c}.png" for c in SOURCE_CATEGORIES] + ["corridor_leaf1.png", "corridor_g.png"])
    with Image.open(tmp_path / "corridor_leaf1.png") as im:
        assert im.size == (400, 20)
