"""Gallery store: generate and store a synthetic ICT gallery; read one bin's D back.

Generates FRAMES synthetic frames (default 100,000) of the ICT face region (9,409
vertices) into a temporary gallery, reporting frames/s and the peak resident memory.
There is no anchor doing the same work (no other tool stores a 4D gallery); what is printed
beside it is a floor, not an anchor: writing the same number of bytes with numpy's
``tofile`` in the same process (the disk's write speed), where vafx also synthesizes every
frame, checksums every file and fsyncs it. Then reads the largest bin's difference matrix
D with ``Gallery.bin_deltas``; the floor: reading the same chunk files' bytes with plain
file reads (vafx also verifies and assembles them). The ratio says how near the disk's
speed vafx runs. Where the OS page cache still holds the files (no permission to drop
it), both reads are memory-speed.

Needs the ICT model ($VAFX_DATA or ../shared/data). Run:
    python bench/bench_gallery.py [--frames 100000] [--dir /some/disk]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _timing import median_seconds, report  # noqa: E402

import vafx  # noqa: E402


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--dir", default=None, help="where to write the gallery (a temp folder)")
    args = ap.parse_args()
    data = os.environ.get("VAFX_DATA") or str(
        Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    model = vafx.load_ict_npz(Path(data) / "ict" / "ict_facekit_light.npz")
    per_subject = 28 * 24
    subjects = -(-args.frames // per_subject)
    cfg = vafx.SynthConfig(subjects=subjects, frames=24)
    root = Path(tempfile.mkdtemp(dir=args.dir, prefix="vafx-bench-gallery-"))
    try:
        t0 = time.perf_counter()
        g = vafx.synthesize_gallery(root / "g", model, cfg)
        t_ours = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
        nbytes = g.num_frames * g.template.num_vertices * 3 * 4
        n_files = sum(len(c["files"]) for c in g.manifest["checkpoints"])
        print(
            f"generated and stored {g.num_frames} frames (+{g.num_sequences} neutrals) of "
            f"{g.template.num_vertices} vertices: {t_ours:.1f} s, {g.num_frames / t_ours:.0f} "
            f"frames/s, {nbytes / 2**30:.2f} GiB in {n_files} files; peak RSS {rss:.2f} GiB"
        )
        block = np.random.default_rng(0).standard_normal(
            (1024, g.template.num_vertices, 3), np.float32
        )
        t0 = time.perf_counter()
        with open(root / "raw.bin", "wb") as fh:
            written = 0
            while written < nbytes:
                block.tofile(fh)
                written += block.nbytes
            fh.flush()
            os.fsync(fh.fileno())
        t_raw = time.perf_counter() - t0
        (root / "raw.bin").unlink()
        report("store the gallery (GiB/s)", t_ours, t_raw, "floor: numpy tofile")
        print(
            f"    vafx {nbytes / 2**30 / t_ours:.2f} GiB/s, raw write {nbytes / 2**30 / t_raw:.2f} GiB/s"
        )

        b = int(np.argmax(g.counts()))
        files = [g.path / f"bins/b{b:03d}/c{c:05d}.npy" for c in g._chunks_of_bin(b)]
        size = sum(f.stat().st_size for f in files)

        def raw_read():
            for f in files:
                with open(f, "rb") as fh:
                    while fh.read(1 << 24):
                        pass

        cold = drop_caches()
        t0 = time.perf_counter()
        d = g.bin_deltas(b)
        t_cold = time.perf_counter() - t0
        drop_caches()
        t0 = time.perf_counter()
        raw_read()
        t_cold_raw = time.perf_counter() - t0
        if cold:
            report(f"bin {b} D {d.shape}, cold cache", t_cold, t_cold_raw, "floor: raw read")
        t_warm = median_seconds(lambda: g.bin_deltas(b), repeat=5)
        t_warm_raw = median_seconds(raw_read, repeat=5)
        report(f"bin {b} D {d.shape}, page cache", t_warm, t_warm_raw, "floor: raw read")
        print(
            f"    {size / 2**20:.0f} MiB in {len(files)} chunks: vafx {size / 2**30 / t_warm:.2f} GiB/s, "
            f"raw {size / 2**30 / t_warm_raw:.2f} GiB/s"
            + ("" if cold else "; (could not drop the page cache: both reads are from memory)")
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
