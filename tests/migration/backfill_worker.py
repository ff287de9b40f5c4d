"""Run one backfill in its own process (tests kill it with SIGKILL): GALLERY TARGET BATCH DELAY DIM [ORDER SEED]."""

import sys

from harmony.gallery.store import GalleryStore
from harmony.gallery.synthetic import HashEmbedder
from harmony.migration.backfill import run_backfill
from harmony.migration.order import OrderSpec

if __name__ == "__main__":
    gallery, target, batch, delay, dim = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    order = OrderSpec(sys.argv[6], int(sys.argv[7])) if len(sys.argv) > 6 else None
    store = GalleryStore.open(gallery, use_gpu=False)
    run_backfill(store, target, HashEmbedder(target, dim, delay_s=delay), batch_size=batch, order=order)
