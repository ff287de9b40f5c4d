"""Folders of raw photos made from the committed real ones (``tests/data/photos``): the portrait at
other scales, positions on larger canvases, a mild rotation and other brightness, as a phone or a
photo manager would hand them over (uncropped, JPEG), plus the photo without a face."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PHOTOS = Path(__file__).resolve().parents[1] / "data" / "photos"
PORTRAIT = PHOTOS / "astronaut.jpg"
NO_FACE = PHOTOS / "chelsea-no-face.jpg"


def variant(scale: float = 1.0, canvas: tuple[int, int] | None = None, at: tuple[int, int] = (0, 0),
            angle: float = 0.0, brightness: float = 1.0, seed: int = 0) -> "Image.Image":
    """The portrait scaled, rotated by ``angle`` degrees, brightened, pasted at ``at`` on a
    ``canvas`` (w, h) of mild noise (None: the portrait's own frame)."""
    from PIL import Image, ImageEnhance

    im = Image.open(PORTRAIT).convert("RGB")
    if scale != 1.0:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.BICUBIC)
    if angle:
        im = im.rotate(angle, Image.BICUBIC, expand=False, fillcolor=(128, 128, 128))
    if brightness != 1.0:
        im = ImageEnhance.Brightness(im).enhance(brightness)
    if canvas is None:
        return im
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(90, 166, (canvas[1], canvas[0], 3), dtype=np.uint8))
    base.paste(im, at)
    return base


# Two labels over one person's photos: enough to check the plumbing of every command (identities,
# pairs, items), not a measure of accuracy (that needs photos of different people: bench/, LFW).
PEOPLE = {
    "eileen": {"a.jpg": dict(), "b.jpg": dict(scale=0.5, canvas=(900, 700), at=(420, 300)),
               "c.jpg": dict(angle=8.0), "d.jpg": dict(brightness=0.7)},
    "eileen-b": {"e.jpg": dict(scale=1.3), "f.jpg": dict(scale=0.7, canvas=(800, 800), at=(40, 380), seed=1),
                 "g.jpg": dict(angle=-6.0, brightness=1.25), "h.jpg": dict(scale=0.8, canvas=(640, 480), at=(200, 40),
                                                                       seed=2)},
}
SMALL_FACES = ("eileen/b.jpg", "eileen-b/f.jpg")  # faces too small to be found after a resize to 150 px


def write_raw_folder(root: Path, with_no_face: bool = True) -> Path:
    """ROOT/<person>/<photo>.jpg (see PEOPLE), and ROOT/eileen/cat.jpg without a face."""
    import shutil

    for person, photos in PEOPLE.items():
        (root / person).mkdir(parents=True, exist_ok=True)
        for name, kw in photos.items():
            variant(**kw).save(root / person / name, quality=92)
    if with_no_face:
        shutil.copyfile(NO_FACE, root / "eileen" / "cat.jpg")
    return root
