"""Run one backfill in its own process (tests kill it with SIGKILL): GALLERY TARGET BATCH DELAY."""

import sys

from harmony.gallery.store import GalleryStore
from harmony.gallery.synthetic import HashEmbedder
from harmony.migration.backfill import run_backfill

if __name__ == "__main__":
    gallery, target, batch, delay, dim = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    store = GalleryStore.open(gallery, use_gpu=False)
    run_backfill(store, target, HashEmbedder(target, dim, delay_s=delay), batch_size=batch)
