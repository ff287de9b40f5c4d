"""Issue 17, item 4: no image file is fatal, scan agrees with build, odd modes decode correctly.

A valid 48 KB 20,000 x 20,000 1-bit PNG used to raise PIL's DecompressionBombError out of every
command (build, add, search, a migration at the same batch on every resume, eval); `data scan`
missed a truncated JPEG that build then skipped; a 16-bit PNG came out 99.8% white.
"""

from __future__ import annotations

import json
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image, ImageOps
from typer.testing import CliRunner

from harmony.cli.data import app as data_app
from harmony.cli.eval import eval_command
from harmony.cli.gallery import app as gallery_app
from harmony.cli.migrate import app as migrate_app
from harmony.data.folder import scan_folder
from harmony.data.images import MAX_PIXELS, SCAN_SIZE, check_image, load_image, load_images, to_rgb
from harmony.gallery.catalog import build_gallery
from tests.gallery.helpers import env, shared_versions  # noqa: F401  (fixtures)

runner = CliRunner()
TOO_LARGE = f"too large: 20000x20000 pixels, limit {MAX_PIXELS:,}"


def invoke(app, *args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def as_json(app, *args):
    r = invoke(app, *args, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def huge_png(path: Path) -> Path:
    """A valid 20,000 x 20,000 1-bit PNG of about 48 KB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("1", (20000, 20000)).save(path)
    assert path.stat().st_size < 100_000
    return path


def smooth(h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    """An RGB picture of flat 16 x 16 blocks (JPEG keeps it almost exactly), not symmetric."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)
    return np.repeat(np.repeat(blocks, 16, 0), 16, 1)


def no_bomb_warning(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    return out


# -- the decoder -------------------------------------------------------------------------------

def test_huge_png_is_refused_from_its_header_and_the_rest_decodes(tmp_path):
    huge = huge_png(tmp_path / "huge.png")
    good = tmp_path / "good.png"
    Image.fromarray(smooth()).save(good)
    d = no_bomb_warning(lambda: load_images([huge, good], 32))
    assert list(d.ok) == [False, True] and d.images.shape == (1, 32, 32, 3)
    assert d.unusable[0].path == str(huge) and TOO_LARGE in d.unusable[0].reason
    assert "cannot read image" in d.unusable[0].reason


def test_the_limit_admits_a_phone_photo_and_large_images_decode_reduced(tmp_path):
    assert 12_000 * 9_000 <= MAX_PIXELS < 20_000 * 20_000
    big = Image.new("1", (12_000, 9_000))  # 108 MP: over PIL's own warning threshold (89 MP)
    big.paste(1, (0, 0, 6_000, 9_000))  # left half white
    big.save(tmp_path / "big.png")
    img = no_bomb_warning(lambda: load_image(tmp_path / "big.png", 32))
    assert img.shape == (32, 32, 3) and (img[:, :15] == 255).all() and (img[:, 17:] == 0).all()
    # a large JPEG is scaled while it decodes (draft) and matches a full decode + resize
    rng = np.random.default_rng(1)
    photo = np.asarray(Image.fromarray(rng.integers(0, 256, (25, 20, 3), dtype=np.uint8)).resize((2000, 2500)))
    Image.fromarray(photo).save(tmp_path / "photo.jpg", quality=95)
    with Image.open(tmp_path / "photo.jpg") as im:
        full = np.asarray(im.convert("RGB").resize((32, 32), Image.BILINEAR), dtype=np.int16)
    fast = load_image(tmp_path / "photo.jpg", 32).astype(np.int16)
    assert np.abs(fast - full).mean() < 2.0


def test_sixteen_bit_grey_png_looks_like_its_eight_bit_twin(tmp_path):
    rng = np.random.default_rng(2)
    g16 = rng.integers(0, 65536, (48, 48), dtype=np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode.startswith("I")
    g8 = np.round(g16 / 257).astype(np.uint8)
    Image.fromarray(g8).save(tmp_path / "g8.png")
    got = load_image(tmp_path / "g16.png", 48).astype(int)
    twin = load_image(tmp_path / "g8.png", 48).astype(int)
    assert np.abs(got - twin).max() <= 1
    assert (got == 255).mean() < 0.05  # was 99.8% white
    # the same rule for a 32-bit "I" image holding 16-bit values
    as_i = np.asarray(to_rgb(Image.fromarray(g16.astype(np.int32), "I"))).astype(int)
    assert np.abs(as_i - twin).max() <= 1


def _png16_rgb(path: Path, rgb16: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG written by hand (PIL cannot write one)."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\0" + rgb16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_sixteen_bit_rgb_png_looks_like_its_eight_bit_twin(tmp_path):
    rng = np.random.default_rng(3)
    rgb16 = rng.integers(0, 65536, (40, 40, 3), dtype=np.uint16)
    _png16_rgb(tmp_path / "c16.png", rgb16)
    got = load_image(tmp_path / "c16.png", 40).astype(int)
    assert np.abs(got - np.round(rgb16 / 257)).max() <= 1


def test_transparency_is_composited_on_white(tmp_path):
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., 0] = 200  # red-ish everywhere
    rgba[:, :16, 3] = 0  # left: fully transparent
    rgba[:, 16:, 3] = 255  # right: opaque
    rgba[:4, 16:, 3] = 128  # a half-transparent strip
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    got = load_image(tmp_path / "rgba.png", 32).astype(int)
    assert (got[:, :16] == 255).all()
    assert (got[4:, 16:] == [200, 0, 0]).all()
    np.testing.assert_allclose(got[:4, 16:], np.broadcast_to([228, 127, 127], (4, 16, 3)), atol=1)
    la = Image.fromarray(rgba[..., [0, 3]], "LA")
    la.save(tmp_path / "la.png")
    got = load_image(tmp_path / "la.png", 32)
    assert (got[:, :16] == 255).all() and (got[4:, 16:] == 200).all()
    # a palette image whose index 0 is transparent
    p = Image.new("P", (32, 32), 0)
    p.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    p.paste(1, (16, 0, 32, 32))
    p.save(tmp_path / "p.png", transparency=0)
    got = load_image(tmp_path / "p.png", 32)
    assert (got[:, :16] == 255).all() and (got[:, 16:] == [0, 0, 255]).all()


def test_cmyk_and_grey_and_one_bit_convert(tmp_path):
    rgb = smooth()
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.tif")
    assert np.abs(load_image(tmp_path / "cmyk.tif", 64).astype(int) - rgb).max() <= 1
    grey = rgb[..., 1]
    Image.fromarray(grey, "L").save(tmp_path / "l.png")
    got = load_image(tmp_path / "l.png", 64)
    assert (got == grey[..., None]).all()
    Image.fromarray(grey > 127).save(tmp_path / "one.png")
    assert set(np.unique(load_image(tmp_path / "one.png", 64))) <= {0, 255}


def test_exif_rotated_jpeg_decodes_upright(tmp_path):
    upright = smooth(64, 64, seed=4)
    Image.fromarray(upright).save(tmp_path / "upright.jpg", quality=95, subsampling=0)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": stored rotated 90 CCW
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    stored.save(tmp_path / "rotated.jpg", quality=95, subsampling=0, exif=exif.tobytes())
    with Image.open(tmp_path / "rotated.jpg") as im:
        assert np.abs(np.asarray(ImageOps.exif_transpose(im)).astype(int) - upright).mean() < 2  # the fixture is right
        raw = np.asarray(im.convert("RGB")).astype(int)
    got = load_image(tmp_path / "rotated.jpg", 64).astype(int)
    twin = load_image(tmp_path / "upright.jpg", 64).astype(int)
    assert np.abs(got - upright).mean() < 2 and np.abs(got - twin).max() <= 8
    assert np.abs(raw - upright).mean() > 20  # not upright unless the tag is applied


# -- scan agrees with build --------------------------------------------------------------------

def hostile_folder(root: Path) -> tuple[Path, set[str]]:
    """Two identities of good faces plus every kind of bad file; returns the bad files' paths."""
    from tests.gallery.helpers import write_faces

    write_faces(root, 3, 3)
    d = root / "id000"
    jpeg = d / "truncated.jpg"
    Image.fromarray(smooth(64, 64)).save(jpeg, quality=90)
    jpeg.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    (d / "empty.png").write_bytes(b"")
    (d / "text.png").write_text("not an image at all\n")
    huge_png(root / "id001" / "huge.png")
    bad = {str(p) for p in (jpeg, d / "empty.png", d / "text.png", root / "id001" / "huge.png")}
    return root, bad


def test_scan_and_build_list_the_same_unusable_files_with_the_same_reasons(env, tmp_path, caplog):
    root, bad = hostile_folder(tmp_path / "hostile")
    idx = no_bomb_warning(lambda: scan_folder(root))
    assert set(idx.unreadable) == bad  # the truncated JPEG was missed before
    assert len(idx) == 9 and idx.identities == ["id000", "id001", "id002"]
    reasons = {u.path: u.reason for u in idx.unusable}
    assert TOO_LARGE in reasons[str(root / "id001" / "huge.png")]
    assert "truncated" in reasons[str(root / "id000" / "truncated.jpg")]
    # build decodes at the version's size (32 px), scan at SCAN_SIZE: same files, same reasons
    assert SCAN_SIZE != 32
    d = load_images(sorted(bad), 32)
    assert not d.ok.any() and {u.path: u.reason for u in d.unusable} == reasons
    assert all(check_image(p) is None for p in idx.paths)

    out = as_json(data_app, "scan", root)
    assert {u["path"]: u["reason"] for u in out["unreadable"]} == reasons and out["images"] == 9
    r = invoke(data_app, "scan", root)
    assert r.exit_code == 0 and "4 unreadable image(s) skipped" in r.stderr and "too large: 20000x20000" in r.stderr

    r = invoke(gallery_app, "build", "--name", "g", "--version", "v1", "--data", root, "--json")
    assert r.exit_code == 0, r.output
    built = json.loads(r.stdout)
    assert set(built["unreadable"]) == bad and built["n_items"] == 9
    assert "DecompressionBomb" not in r.output
    assert all(f"skipped: {reason}" in caplog.text for reason in reasons.values())  # the log (stderr) says why


# -- every command skips it --------------------------------------------------------------------

def test_build_add_and_search_skip_the_huge_png(env, caplog):
    huge = huge_png(env.faces / "id003" / "huge.png")
    r = invoke(gallery_app, "build", "--name", "prod", "--version", "v1", "--data", env.faces)
    assert r.exit_code == 0, r.output
    assert "48 items of 12 identities" in r.stdout and str(huge) in r.stderr and TOO_LARGE in caplog.text

    extra = env.tmp / "extra" / "zed"
    extra.mkdir(parents=True)
    Image.open(env.faces / "id000" / "000.png").save(extra / "a.png")
    huge_png(extra / "huge.png")
    added = as_json(gallery_app, "add", "--name", "prod", extra)
    assert added["added"] == 1 and [Path(p).name for p in added["unreadable"]] == ["huge.png"]

    out = as_json(gallery_app, "search", "--name", "prod", "--query", env.faces / "id003", "-k", "2")
    assert len(out["results"]) == 4 and [Path(p).name for p in out["unreadable"]] == ["huge.png"]
    assert all(res["hits"][0]["identity"] == "id003" for res in out["results"])


def test_migration_with_a_huge_source_completes_and_lists_it(env):
    build_gallery(env.reg, "prod", "v1", env.faces)
    huge_png(env.faces / "id005" / "002.png")  # a source replaced after the build
    r = invoke(migrate_app, "gallery", "--gallery", "prod", "--to", "v2", "--batch-size", "8", "--swap")
    assert r.exit_code == 2 and "1 item(s)" in r.stderr and "--allow-missing" in r.stderr, r.output
    assert "id005/002.png" in r.stderr and "DecompressionBomb" not in r.output
    again = invoke(migrate_app, "gallery", "--gallery", "prod", "--to", "v2", "--batch-size", "8")
    assert again.exit_code == 0, again.output  # a resume is not stuck at that batch
    st = as_json(migrate_app, "status", "--gallery", "prod")
    assert st["latest"]["state"] == "ready"
    assert [f["item_id"] for f in st["latest"]["counts"]["failed_items"]] == ["id005/002.png"]
    assert as_json(migrate_app, "swap", "--gallery", "prod", "--allow-missing")["missing"] == 1
    assert env.reg.get_gallery("prod").version == "v2"


def test_eval_on_a_folder_with_a_huge_png_skips_and_lists_it(env):
    app = typer.Typer()
    app.command("eval")(eval_command)

    @app.callback()
    def _root() -> None:
        """Stand-in root app."""

    huge = huge_png(env.faces / "id001" / "huge.png")
    r = invoke(app, "eval", "--version", "v1", "--data", env.faces, "--far", 0.1, "--registry", env.root)
    assert r.exit_code == 0, r.output
    assert "1 unreadable image(s), skipped:" in r.output and str(huge.absolute()) in r.output
    assert "(48 images, 12 identities)" in r.output
