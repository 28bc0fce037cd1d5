"""Section 4.4 end to end on data vafx makes (not a speed benchmark).

1. a synthetic ICT gallery (or --gallery), 2. face images rendered from it with known V-A
(`vafx._evaluate._face_images.render_gallery_faces`), 3. one image per subject augmented at six bins
with `vafx.augment` (the subjects' own bins models: fitted on the same gallery),
4. `vafx evaluate augmentation`'s cross-validation without and with those images.
The figures show that the protocol runs; they say nothing about real-world accuracy.

Needs the ICT model. Run: python bench/evaluate_synthetic.py [--out /tmp/vafx-e2e]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from vafx.kernels.splocs import SplocsParams

import vafx
from vafx._evaluate._face_images import render_gallery_faces
from vafx._evaluate._regressor import cross_validate, format_tables, load_dataset


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("/tmp/vafx-e2e"))
    ap.add_argument("--gallery", type=Path)
    ap.add_argument("--epochs", type=int, default=80)
    args = ap.parse_args()
    t0 = time.perf_counter()
    data = Path(
        os.environ.get("VAFX_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    model = vafx.load_model(str(data / "ict"))
    if args.gallery:
        g = vafx.open_gallery(args.gallery)
    else:
        g = vafx.synthesize_gallery(
            args.out / "gallery", model, vafx.SynthConfig(subjects=8, frames=10)
        )
    bins_path = args.out / "bins.npz"
    if bins_path.exists():
        models = vafx.load_bin_models(bins_path)
    else:
        models = vafx.fit_bins(g, SplocsParams(num_components=8, num_iters=10), min_frames=5)
        vafx.save_bin_models(bins_path, models)
    csv_path = render_gallery_faces(g, model, args.out / "faces", size=128, per_sequence=2)
    x, va, subj = load_dataset(csv_path, size=64)
    print(
        f"dataset: {len(x)} rendered faces of {len(set(subj))} subjects ({time.perf_counter() - t0:.0f} s)"
    )
    rows = [line.split(",") for line in csv_path.read_text().splitlines()[1:]]
    first = {}
    for r in rows:
        first.setdefault(r[1], r[0])
    photos = [csv_path.parent / p for p in first.values()]
    subjects = {Path(p).stem: s for s, p in first.items()}
    bins = [int(b) for b in np.argsort(-models.counts)[:6]]
    man = vafx.augment(photos, args.out / "augmented", models, model, bins=bins,
                       landmarks_dir=csv_path.parent / "landmarks", subjects=subjects)  # fmt: skip
    print(
        f"augmented: {man['images']} images at bins {bins}, {man['skipped']} skipped ({time.perf_counter() - t0:.0f} s)"
    )
    aug = load_dataset(
        args.out / "augmented" / "labels.csv", args.out / "augmented", size=64, label_scale=1.0
    )
    res = cross_validate(x, va, subj, augmented=aug, folds=4, epochs=args.epochs, batch=32, lr=3e-3,
                         checkpoint_dir=args.out / "checkpoints")  # fmt: skip
    print(format_tables(res))
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
