"""Loading the ICT model: vafx's OBJ reader against trimesh and numpy, and its model file.

Like for like: reading an OBJ's vertices, faces and UVs, vafx's reader against trimesh
reading the same file (the anchor a user without vafx would have); reading only the
vertices, UVs and a digest of the faces (what converting the upstream 155-file ICT folder
needs), vafx's reader without faces against a plain numpy parse of the same ``v`` and
``vt`` lines with the same SHA-1 of the ``f`` lines (trimesh cannot skip faces, so it is no
anchor for this). The last row is internal, vafx against itself: its converted model
file against the compact npz it can also read (no outside reader loads either).
Needs the data: VAFX_DATA or ../shared/data beside the repository.
Run: python bench/bench_model_load.py
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import trimesh

sys.path.insert(0, os.path.dirname(__file__))
from _timing import median_seconds, report  # noqa: E402

import vafx  # noqa: E402
from vafx._io._obj import read_obj  # noqa: E402


def main():
    root = Path(os.environ.get("VAFX_DATA", Path(__file__).resolve().parents[2] / "shared/data"))
    ict = root / "ict"
    if not ict.exists():
        sys.exit(f"no ICT data at {ict}: set VAFX_DATA")
    obj = ict / "FaceXModel" / "identity000.obj"

    def numpy_vertices():  # the same work, plainly: "v" and "vt" lines, a digest of "f" lines
        with open(obj) as fh:
            lines = fh.read().splitlines()
        v = np.array([r[2:].split()[:3] for r in lines if r.startswith("v ")], np.float64)
        vt = np.array([r[3:].split()[:2] for r in lines if r.startswith("vt ")], np.float64)
        digest = hashlib.sha1("\n".join(r[2:] for r in lines if r.startswith("f ")).encode())
        return v, vt, digest.hexdigest()

    v, vt, digest = numpy_vertices()
    mine = read_obj(obj, faces=False)
    assert np.allclose(mine.vertices, v) and np.allclose(mine.uv, vt)  # the same result
    report("one ICT OBJ, vertices, UVs, face digest", median_seconds(lambda: read_obj(obj, faces=False), 5),
           median_seconds(numpy_vertices, 5), "numpy parse")  # fmt: skip
    report("one ICT OBJ, vertices, faces and UVs", median_seconds(lambda: read_obj(obj), 5),
           median_seconds(lambda: trimesh.load(obj, process=False, maintain_order=True), 3),
           "trimesh")  # fmt: skip
    model = vafx.load_ict_npz(ict / "ict_facekit_light.npz")
    with tempfile.TemporaryDirectory() as d:
        path = vafx.save_model(Path(d) / "ict.npz", model)
        ours = median_seconds(lambda: vafx.load_model_file(path), 5)
        os.environ["VAFX_DERIVED"] = "0"  # decompressed every time
        npz = median_seconds(lambda: vafx.load_ict_npz(ict / "ict_facekit_light.npz"), 3)
        os.environ["VAFX_CACHE"] = d  # then decompressed once into a cache, memory-mapped
        del os.environ["VAFX_DERIVED"]
        vafx.load_ict_npz(ict / "ict_facekit_light.npz")
        mapped = median_seconds(lambda: vafx.load_ict_npz(ict / "ict_facekit_light.npz"), 5)
    report("internal: vafx model file vs compact npz", ours, npz, "compact npz")
    report("internal: npz via the derived cache", mapped, npz, "compact npz")


if __name__ == "__main__":
    main()
