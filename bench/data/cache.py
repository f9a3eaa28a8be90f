"""The decoded cache: images decoded and made square once, stored as uint8 (N, 3, S, S).

A cache entry is keyed by (manifest hash, size, resize method), so the same part at the same size
is decoded once, whatever suite or cell asks for it. Each entry is two files in the cache folder:
``<key>.u8`` (the raw array, read back memory-mapped) and ``<key>.json`` (shape, ids and the
sha256 of every image's decoded pixels at native resolution, used by the leakage guard). Builders
write temporary files and rename them, the JSON last, so a killed build leaves no entry behind.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bench.data.dataset import Dataset
from bench.data.errors import DataError, offenders

Progress = Callable[[int, int], None]


@dataclass
class CachedPart:
    """A part's decoded pixels.

    Attributes:
        images: uint8 (N, 3, size, size), memory-mapped copy-on-write.
        ids: the records' ids, in order.
        pixel_hashes: sha256 of each image's decoded RGB pixels at native size.
    """

    images: np.ndarray
    ids: list[str]
    pixel_hashes: list[str]


def to_square(img: Image.Image, size: int, method: str) -> np.ndarray:
    """RGB image → uint8 (3, size, size): ``crop`` resizes the shorter side to ``size`` then
    takes the centre square; ``squash`` resizes both sides to ``size``. Bilinear, antialiased."""
    img = img.convert("RGB")
    if method == "squash":
        out = img.resize((size, size), Image.BILINEAR)
    else:
        w, h = img.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        out = img.resize((nw, nh), Image.BILINEAR)
        left, top = (nw - size) // 2, (nh - size) // 2
        out = out.crop((left, top, left + size, top + size))
    return np.array(out, dtype=np.uint8).transpose(2, 0, 1)  # a writable copy


def pixel_hash(rgb: np.ndarray) -> str:
    """sha256 of an (H, W, 3) uint8 array's bytes and shape."""
    h = hashlib.sha256(str(rgb.shape).encode())
    h.update(np.ascontiguousarray(rgb).tobytes())
    return h.hexdigest()


def _decode(args: tuple[str, int, str]) -> tuple[np.ndarray | None, str]:
    path, size, method = args
    try:
        with Image.open(path) as im:
            im.load()
            rgb = im.convert("RGB")
    except Exception as exc:  # corrupt or unreadable: reported by name by the caller
        return None, f"{path} ({type(exc).__name__}: {exc})"
    return to_square(rgb, size, method), pixel_hash(np.asarray(rgb))


class DecodedCache:
    """Decoded parts under one folder."""

    def __init__(self, folder: Path, workers: int | None = None):
        self.folder = folder
        self.workers = workers or min(8, os.cpu_count() or 1)

    def key(self, ds: Dataset, part: str | None, size: int) -> str:
        """Entry key of a part at a size."""
        text = f"{ds.manifest_hash(part)}:{size}:{ds.spec.resize}"
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def get(self, ds: Dataset, part: str | None, size: int,
            progress: Progress | None = None) -> CachedPart:
        """The part's pixels at ``size`` (decoded now if the entry does not exist yet)."""
        key = self.key(ds, part, size)
        meta_path = self.folder / f"{key}.json"
        if not meta_path.exists():
            self._build(ds, part, size, key, progress)
        meta = json.loads(meta_path.read_text())
        n = meta["n"]
        images = np.memmap(self.folder / f"{key}.u8", dtype=np.uint8, mode="c",
                           shape=(n, 3, size, size))
        return CachedPart(images=images, ids=meta["ids"], pixel_hashes=meta["pixel_hashes"])

    def _build(self, ds: Dataset, part: str | None, size: int, key: str,
               progress: Progress | None) -> None:
        rows = ds.part(part)
        n = len(rows)
        if n == 0:
            raise DataError(f"dataset {ds.name!r}: part {part!r} has no images")
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp_data = self.folder / f"{key}.u8.{os.getpid()}.tmp"
        arr = np.memmap(tmp_data, dtype=np.uint8, mode="w+", shape=(n, 3, size, size))
        hashes: list[str] = [""] * n
        bad: list[str] = []
        if ds.spec.format == "synthetic":
            from bench.data import synthetic

            assert ds.spec.synthetic is not None
            idx = rows["index"].to_numpy()
            for start in range(0, n, 512):
                chunk = synthetic.render(ds.spec.synthetic, idx[start:start + 512])
                for j, img in enumerate(chunk):
                    hwc = img.transpose(1, 2, 0)
                    hashes[start + j] = pixel_hash(hwc)
                    arr[start + j] = (img if img.shape[-1] == size else
                                      to_square(Image.fromarray(hwc), size, ds.spec.resize))
                if progress:
                    progress(min(start + 512, n), n)
        else:
            jobs = [(p, size, ds.spec.resize) for p in rows["path"]]
            done = 0
            with ProcessPoolExecutor(self.workers) as pool:
                for i, (img, h) in enumerate(pool.map(_decode, jobs, chunksize=64)):
                    if img is None:
                        bad.append(h)
                    else:
                        arr[i] = img
                        hashes[i] = h
                    done += 1
                    if progress and (done % 256 == 0 or done == n):
                        progress(done, n)
        arr.flush()
        del arr
        if bad:
            tmp_data.unlink(missing_ok=True)
            raise DataError(offenders("images that cannot be decoded", bad,
                                      f"dataset {ds.name!r}"))
        os.replace(tmp_data, self.folder / f"{key}.u8")
        meta = {"n": n, "size": size, "resize": ds.spec.resize, "dataset": ds.name,
                "part": part, "ids": rows["id"].tolist(), "pixel_hashes": hashes}
        tmp_meta = self.folder / f"{key}.json.{os.getpid()}.tmp"
        tmp_meta.write_text(json.dumps(meta))
        os.replace(tmp_meta, self.folder / f"{key}.json")


def cache_dir(output: Path) -> Path:
    """The decoded cache folder: ``$BENCH_CACHE`` or ``<output>/cache``."""
    env = os.environ.get("BENCH_CACHE")
    return Path(env) if env else output / "cache"
