"""Standardize a float32 file larger than memory, chunk by chunk.

    python examples/standardize_memmap.py [GIGABYTES] [DIRECTORY]

Writes a random (rows, 32) float32 file of the given size (default 2 GB)
into DIRECTORY (default: a temporary one), fits cnorm.StandardScaler over
np.memmap chunks with partial_fit, standardizes the file in place chunk by
chunk, and prints a progress bar and the per-feature mean and std after.
"""
import sys
import tempfile
from pathlib import Path

import numpy as np

import cnorm

FEATURES = 32
CHUNK_ROWS = 1 << 18   # 32 MiB of float32 per chunk


def write_data(path, rows, seed=0):
    rng = np.random.default_rng(seed)
    data = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, FEATURES))
    centre = rng.uniform(-100, 100, FEATURES).astype(np.float32)
    spread = rng.uniform(0.5, 20, FEATURES).astype(np.float32)
    for i in range(0, rows, CHUNK_ROWS):
        n = min(CHUNK_ROWS, rows - i)
        data[i:i + n] = rng.standard_normal((n, FEATURES), np.float32) * spread + centre
    data.flush()
    return centre, spread


def progress(label, done, total):
    width = 40
    filled = width * done // total
    print(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {100 * done // total:3d}%",
          end="" if done < total else "\n", flush=True)


def standardize_file(path, show=progress):
    """Fit over chunks, then transform in place chunk by chunk; the scaler."""
    data = np.load(path, mmap_mode="r+")
    rows = data.shape[0]
    scaler = cnorm.StandardScaler(copy=False)
    for i in range(0, rows, CHUNK_ROWS):
        scaler.partial_fit(data[i:i + CHUNK_ROWS])
        show("fit      ", min(i + CHUNK_ROWS, rows), rows)
    for i in range(0, rows, CHUNK_ROWS):
        chunk = data[i:i + CHUNK_ROWS]
        scaler.transform(chunk)          # in place: copy=False on a writable memmap
        show("transform", min(i + CHUNK_ROWS, rows), rows)
    data.flush()
    return scaler


def main(gigabytes=2.0, directory=None):
    rows = int(gigabytes * 1e9) // (4 * FEATURES)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        path = Path(tmp) / "features.npy"
        write_data(path, rows)
        scaler = standardize_file(path)
        after = cnorm.Moments.of(np.load(path, mmap_mode="r"))
        print(f"{rows} rows x {FEATURES} features; fitted mean[:3] {scaler.mean_[:3]}")
        print(f"after: |mean| <= {np.abs(after.mean).max():.2e}, "
              f"|std - 1| <= {np.abs(after.std() - 1).max():.2e}")
        return after


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 2.0,
         sys.argv[2] if len(sys.argv) > 2 else None)
