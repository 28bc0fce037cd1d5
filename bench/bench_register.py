"""Scan registration: vafx's model prior + non-rigid ICP against trimesh's nricp_amberg.

Data: synthetic scans (``vafx.synthetic_scan``): one subject of the ICT model
(random identity), a sequence of FRAMES frames whose expression changes from
neutral, each re-meshed by a simulated cylindrical scanner (its own
triangulation at SPACING cm, vertex noise along the normal, holes, the
under-chin and sides missing, a random rigid misalignment) with 68 noisy 3D
landmarks. They are made here with known ground truth: the true surface point of
every template vertex. The template is the ICT face region (9,409 vertices, cm).

vafx: ``register_sequence`` on the whole sequence (the first frame cold, the
rest warm-started in batches), seconds per scan = the sequence's median wall
time over repeats (compiled once before) / FRAMES.

Anchor: ``trimesh.registration.nricp_amberg`` (Amberg et al. 2007's optimal-step
NICP as trimesh implements it), per scan, from the same landmark-aligned
template (a similarity fitted to the 68 landmarks), with the same landmarks and
trimesh's default schedule (stiffer schedules in the style of Amberg et al.'s,
tried on one scan, ended 4x less accurate: 0.61-0.66 cm mean). It runs on the
first ANCHOR_SCANS scans (it takes tens of seconds per scan).

Accuracy: distance of each registered template vertex to its ground-truth
surface point, in the scan's frame, on the narrow face region (the part every
scan covers); mean and 95th percentile, per scan, then their medians.

Run:
    python bench/bench_register.py [--frames 9] [--spacing 0.15] [--anchor-scans 3]
    python bench/bench_register.py --growth          # vafx alone over scan sizes
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import trimesh
from vafx.kernels.registration import umeyama

import vafx


def _sequence(model, tp, frames: int, spacing: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    ident = 0.8 * rng.standard_normal(model.num_identity)
    names = ["jawOpen", "mouthSmile_L", "mouthSmile_R", "browInnerUp_L", "browInnerUp_R"]
    peak = rng.uniform(0.3, 0.9, len(names))
    scans = []
    for i in range(frames):
        e = np.zeros(model.num_expressions)
        for name, p in zip(names, peak):
            e[model.expression_index(name)] = p * i / max(frames - 1, 1)
        cfg = vafx.ScanConfig(spacing=spacing)
        scans.append(vafx.synthetic_scan(model, tp, 100 + i, cfg, identity=ident, expression=e))
    return scans


def _errors(scan, verts_on_scan, region):
    s, r, t = scan.pose
    truth = s * scan.truth @ np.asarray(r).T + t
    err = np.linalg.norm(verts_on_scan - truth, axis=1)[region]
    return float(err.mean()), float(np.percentile(err, 95))


def _vafx(setup, scans, config, repeat: int):
    meshes = [(s.verts, s.faces) for s in scans]
    lms = [s.landmarks for s in scans]
    regs, _ = vafx.register_sequence(setup, meshes, lms, config)  # compiles
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        regs, _ = vafx.register_sequence(setup, meshes, lms, config)
        times.append(time.perf_counter() - t)
    return regs, statistics.median(times)


def _trimesh(setup, tp, scan):
    lm_ids = np.asarray(setup.landmarks)
    ok = np.asarray(setup.landmark_ok) & np.isfinite(scan.landmarks).all(1)
    v = np.asarray(tp.vertices, np.float32)
    s, r, t = umeyama(v[lm_ids[ok]], scan.landmarks[ok], np.ones(int(ok.sum()), np.float32))
    start = float(s) * v @ np.asarray(r).T + np.asarray(t)
    source = trimesh.Trimesh(start, np.asarray(tp.faces), process=False)
    target = trimesh.Trimesh(scan.verts, scan.faces, process=False)
    t0 = time.perf_counter()
    out = trimesh.registration.nricp_amberg(
        source, target, source_landmarks=lm_ids[ok], target_positions=scan.landmarks[ok]
    )
    return np.asarray(out), time.perf_counter() - t0


def _row(name, errs, seconds):
    mean = statistics.median(e[0] for e in errs)
    p95 = statistics.median(e[1] for e in errs)
    worst = max(e[1] for e in errs)
    print(f"{name:<34s} mean {mean:6.3f} cm  p95 {p95:6.3f} cm  (worst p95 {worst:6.3f})  "
          f"{seconds:7.2f} s/scan")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=9)
    ap.add_argument("--spacing", type=float, default=0.15, help="scan sample spacing, cm")
    ap.add_argument("--anchor-scans", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--growth", action="store_true", help="vafx alone over scan spacings")
    args = ap.parse_args()

    model = vafx.load_model("ict")
    tp = vafx.template_from_model(model, "face")
    region = np.isin(tp.vertex_ids, np.asarray(model.regions["narrow_face"]))
    config = vafx.RegisterConfig()
    setup = vafx.registration_setup(tp, model, config)
    print(f"template: ICT face, {len(tp.vertices)} vertices, mean edge {float(setup.edge):.3f} cm;"
          f" error on narrow_face ({int(region.sum())} vertices)")  # fmt: skip

    if args.growth:
        for spacing in (0.3, 0.2, 0.15, 0.1):
            scans = _sequence(model, tp, args.frames, spacing)
            n = statistics.median(len(s.verts) for s in scans)
            regs, sec = _vafx(setup, scans, config, args.repeat)
            errs = [_errors(s, r.scan_verts, region) for s, r in zip(scans, regs)]
            _row(f"vafx, spacing {spacing} ({n / 1e3:.0f}k verts)", errs, sec / len(scans))
        return

    scans = _sequence(model, tp, args.frames, args.spacing)
    n = statistics.median(len(s.verts) for s in scans)
    print(f"scans: {len(scans)} frames, median {n:.0f} vertices (spacing {args.spacing} cm)")
    regs, sec = _vafx(setup, scans, config, args.repeat)
    ours = [_errors(s, r.scan_verts, region) for s, r in zip(scans, regs)]
    _row(f"vafx, {len(scans)} scans", ours, sec / len(scans))
    k = min(args.anchor_scans, len(scans))
    _row(f"vafx, first {k}", ours[:k], sec / len(scans))

    errs, secs = [], []
    for s in scans[:k]:
        out, dt = _trimesh(setup, tp, s)
        errs.append(_errors(s, out, region))
        secs.append(dt)
    _row("trimesh nricp_amberg", errs, statistics.median(secs))
    mean_ratio = statistics.median(e[0] for e in errs) / statistics.median(e[0] for e in ours[:k])
    print(f"ratio (trimesh / vafx) per scan: {statistics.median(secs) / (sec / len(scans)):5.1f}x;"
          f"  mean error trimesh / vafx: {mean_ratio:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
