"""Loading the ICT model: vafx's model file vs the compact npz and the upstream OBJs.

The anchor is trimesh reading the same upstream OBJ files (what a user without vafx's
reader would do). Needs the data: VAFX_DATA or ../shared/data beside the repository.
Run: python bench/bench_model_load.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

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
    report("one ICT OBJ, vertices in file order", median_seconds(lambda: read_obj(obj, faces=False), 5),
           median_seconds(lambda: trimesh.load(obj, process=False, maintain_order=True), 3),
           "trimesh")  # fmt: skip
    report("ICT neutral OBJ with faces and UVs", median_seconds(lambda: read_obj(obj), 5),
           median_seconds(lambda: trimesh.load(obj, process=False, maintain_order=True), 3),
           "trimesh")  # fmt: skip
    model = vafx.load_ict_npz(ict / "ict_facekit_light.npz")
    with tempfile.TemporaryDirectory() as d:
        path = vafx.save_model(Path(d) / "ict.npz", model)
        ours = median_seconds(lambda: vafx.load_model_file(path), 5)
        npz = median_seconds(lambda: vafx.load_ict_npz(ict / "ict_facekit_light.npz"), 3)
    report("full ICT model: vafx file vs compact npz", ours, npz, "compact npz")


if __name__ == "__main__":
    main()
