"""Judges of synthesized faces: identity kept, motion shown, no blending halo.

Three measures, each from what an independent viewer can check:

- identity: dlib's ResNet face descriptor (``vafx[detect]``) of the output
  against that of its source photo; two photos of one person are usually
  within 0.6 (dlib's threshold on Labeled Faces in the Wild).
- motion: landmarks re-detected on the output (dlib's 68-point predictor, not
  vafx's fit) against those of the source photo, as affect cues in
  inter-ocular distances (:func:`affect_cues`), and against the motion the
  deformation implies (the deformed mesh's landmark vertices projected with the
  photo's fit, written by :func:`vafx.synthesize` into the sidecar).
- halo: how far Poisson blending moved the re-rendered face
  (:func:`halo_measure`), written into the sidecar at synthesis time.
- skin: whether the photo's own skin survived (:func:`skin_fidelity`): over
  the skin that moved little, the mean brightness change and the ratio of
  fine-detail energy of output to photo, written into the sidecar at
  synthesis time (where each pixel's motion is known).

:func:`evaluate_synthesis` runs them over a folder of outputs with their
sidecars (``vafx augment`` or ``vafx synthesize``) and writes a CSV row per
image, a summary and a figure (``vafx evaluate synthesis``).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from .._errors import DataFileError
from .._io._atomic import atomic_path, atomic_write_text
from ._affect_judge import face_crop

__all__ = ["affect_cues", "evaluate_synthesis", "halo_measure", "skin_fidelity"]

#: iBUG 68 indices (0-based).
_LEFT_EYE, _RIGHT_EYE = slice(36, 42), slice(42, 48)
_BROWS = slice(17, 27)
_CORNERS = [48, 54]
_LIP_CENTRE = [51, 57, 62, 66]
_REGIONS = {"mouth": slice(48, 68), "brows": _BROWS, "eyes": slice(36, 48)}

#: What the judges flag (the issue's acceptance levels).
IDENTITY_LIMIT = 0.6
HALO_MEAN_LIMIT = 3.0
HALO_BLOB_LIMIT = 0.01
#: Skin fidelity (issue 37): the face's brightness may move at most this many grey
#: levels, and keep at least this share of its fine-detail energy.
BRIGHTNESS_LIMIT = 3.0
DETAIL_LIMIT = 0.85
#: Skin "moved little": pixels whose content moved at most this far (pixels).
MOVED_LITTLE = 2.0


def inter_ocular(landmarks) -> float:
    """Distance between the eye centres of 68 iBUG landmarks float[68, 2], in pixels."""
    p = np.asarray(landmarks, np.float64)
    return float(np.linalg.norm(p[_LEFT_EYE].mean(0) - p[_RIGHT_EYE].mean(0)))


def affect_cues(landmarks, iod: float | None = None) -> dict:
    """Affect cues of 68 iBUG landmarks, in inter-ocular distances (up and open positive).

    Args:
        landmarks: float[68, 2] pixels (x right, y down).
        iod: the unit (default: these landmarks' own inter-ocular distance);
            pass the source photo's to compare two images of one face.

    Returns:
        dict of ``corner_lift`` (mouth corners above the lips' centre),
        ``mouth_open`` (inner lips apart) and ``brow_height`` (brows above the
        eye centres).
    """
    p = np.asarray(landmarks, np.float64)
    unit = inter_ocular(p) if iod is None else float(iod)
    eyes_y = 0.5 * (p[_LEFT_EYE, 1].mean() + p[_RIGHT_EYE, 1].mean())
    return dict(
        corner_lift=float(p[_LIP_CENTRE, 1].mean() - p[_CORNERS, 1].mean()) / unit,
        mouth_open=float(p[66, 1] - p[62, 1]) / unit,
        brow_height=float(eyes_y - p[_BROWS, 1].mean()) / unit,
    )


def halo_measure(output, rendered, face, threshold: float = 20.0) -> dict:
    """How far blending moved a re-rendered face, in grey levels.

    Args:
        output: uint8[H, W, 3], the blended image.
        rendered: uint8[H, W, 3], the re-rendering before blending.
        face: bool[H, W], the face's pixels.
        threshold: grey levels above which a pixel's correction counts as a halo.

    Returns:
        dict: ``mean`` absolute correction over the face (channel maximum),
        ``blob`` the largest connected region above ``threshold`` as a fraction
        of the face, ``max`` the largest correction.
    """
    face = np.asarray(face, bool)
    if not face.any():
        return dict(mean=0.0, blob=0.0, max=0.0)
    rows, cols = np.nonzero(face.any(1))[0], np.nonzero(face.any(0))[0]
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    o, r = np.asarray(output)[box], np.asarray(rendered)[box]
    face = face[box]
    corr = (np.maximum(o, r) - np.minimum(o, r)).max(-1)  # |o - r| in uint8, no copies
    big = (corr > threshold) & face
    blob = 0.0
    if big.any():
        from skimage.measure import label  # scipy.ndimage: 0.2 s to import, only for a halo

        lab = label(big, connectivity=1)
        blob = float(np.bincount(lab.ravel())[1:].max()) / float(face.sum())
    return dict(mean=float(corr[face].mean()), blob=blob, max=float(corr[face].max()))


def _laplacian(grey: np.ndarray) -> np.ndarray:
    """5-point Laplacian of float[H, W] (edges replicated)."""
    p = np.pad(grey, 1, mode="edge")
    return p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * grey


def skin_fidelity(photo, output, skin) -> dict:
    """How much of the photo's own skin an output kept, over the pixels ``skin``.

    Args:
        photo: uint8[H, W, 3], the source photo (or its crop).
        output: uint8[H, W, 3], the synthesized image, aligned with it.
        skin: bool[H, W], the skin to judge: synthesis passes the skin that
            was sampled from the photo and moved at most :data:`MOVED_LITTLE`
            pixels (where a change of brightness or texture can only be the
            renderer's).

    Returns:
        dict: ``brightness`` the mean change of luma (Rec. 601) over ``skin``,
        grey levels (output minus photo); ``detail`` the variance of the
        5-point Laplacian of luma of output over that of the photo, over the
        skin pixels whose whole stencil is skin (1 keeps the photo's fine
        texture, under 1 smooths it); ``pixels`` the count judged. NaN where
        no pixel qualifies.
    """
    skin = np.asarray(skin, bool)
    w = np.array([0.299, 0.587, 0.114])
    a = np.asarray(photo, np.float64)[..., :3] @ w
    b = np.asarray(output, np.float64)[..., :3] @ w
    inner = skin.copy()
    inner[1:, :] &= skin[:-1, :]
    inner[:-1, :] &= skin[1:, :]
    inner[:, 1:] &= skin[:, :-1]
    inner[:, :-1] &= skin[:, 1:]
    inner[[0, -1], :] = False
    inner[:, [0, -1]] = False
    n = int(inner.sum())
    if not skin.any() or n < 2:
        return dict(brightness=float("nan"), detail=float("nan"), pixels=int(skin.sum()))
    la, lb = _laplacian(a)[inner], _laplacian(b)[inner]
    va = float(la.var())
    return dict(
        brightness=float((b - a)[skin].mean()),
        detail=float(lb.var() / va) if va > 0 else float("nan"),
        pixels=int(skin.sum()),
    )


def _read(path: Path) -> np.ndarray:
    from .._io._photos import read_photo

    return read_photo(path)


def _find_photo(side: dict, sidecar: Path, photos: Path | None) -> Path:
    name = Path(side.get("photo", ""))
    for cand in ([photos / name.name, photos / name] if photos else []) + [
        name,
        sidecar.parent / name,
    ]:
        if cand.is_file():
            return cand
    raise DataFileError(sidecar, f"source photo {str(name)!r} not found (pass --photos DIR)")


def _image_of(side: dict, sidecar: Path) -> Path:
    for cand in (
        [sidecar.parent.parent / side["image"], sidecar.parent / side["image"]]
        if "image" in side
        else []
    ):
        if cand.is_file():
            return cand
    for ext in (".png", ".jpg", ".jpeg"):
        cand = sidecar.with_suffix(ext)
        if cand.is_file():
            return cand
    raise DataFileError(sidecar, "its image is missing")


def _sidecars(folder: Path) -> list[Path]:
    out = []
    for p in sorted(folder.rglob("*.json")):
        if p.name in ("manifest.json", "summary.json", "contact_sheet.json"):
            continue
        try:
            side = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(side, dict) and "target_va" in side and "photo" in side:
            out.append(p)
    return out


def evaluate_synthesis(
    folder: str | os.PathLike,
    *,
    photos: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    progress=None,
    judge=None,
) -> dict:
    """Judge every synthesized image of a folder against its source photo.

    Args:
        folder: outputs with their JSON sidecars (``vafx augment``'s folder, or
            ``vafx synthesize`` outputs side by side).
        photos: where the source photos are (default: the sidecars' paths).
        out: where to write ``judges.csv``, ``summary.json`` and ``judges.png``
            (default: ``folder``).
        progress: called with (images done, images).
        judge: an affect judge (:func:`vafx._evaluate._affect_judge.load_judge`, or
            its spec): each output's and each source photo's face is judged, the
            rows get the judged V-A (and top class), and the summary the
            agreement with the targets (:func:`~vafx._evaluate._affect_judge.judge_report`)
            and, for category targets, the share judged as the target's category.

    Returns:
        The summary: counts, the worst and mean identity distance, the images
        that fail a judge, and means of the cue changes.
    """
    from .._fit._landmarks import NoFaceError, detect_landmarks, face_descriptor

    folder = Path(folder)
    out = Path(out) if out is not None else folder
    photos = Path(photos) if photos is not None else None
    paths = _sidecars(folder)
    if not paths:
        raise DataFileError(folder, "no synthesized images with vafx sidecars found")
    if judge is not None and not callable(judge):
        from ._affect_judge import load_judge

        judge = load_judge(judge)
    crops: list = []  # (row index or photo path, face crop) for the judge
    cache: dict = {}
    rows = []
    for i, sp in enumerate(paths):
        side = json.loads(sp.read_text())
        src_path = _find_photo(side, sp, photos)
        if src_path not in cache:
            src = _read(src_path)
            lm = detect_landmarks(src, name=str(src_path))
            cache[src_path] = (lm, face_descriptor(src, name=str(src_path)))
            if judge is not None:
                crops.append((src_path, face_crop(src, lm, judge.face_size)))
        src_lm, src_desc = cache[src_path]
        img_path = _image_of(side, sp)
        img = _read(img_path)
        # a V-A target's own pair; an emotion's or AUs' label (its circumplex place), if any
        va = side.get("target_va") or side.get("label_va") or (float("nan"), float("nan"))
        row = dict(image=str(img_path), photo=str(src_path), valence=va[0], arousal=va[1])
        emotion = (side.get("target") or {}).get("emotion")
        if emotion:
            row["emotion"] = emotion
        if judge is not None:
            crops.append((len(rows), face_crop(img, src_lm, judge.face_size)))
        try:
            lm = detect_landmarks(img, name=str(img_path))
            row["identity"] = float(np.linalg.norm(face_descriptor(img) - src_desc))
        except NoFaceError:
            lm = None
            row["identity"] = float("nan")
        iod = inter_ocular(src_lm)
        before = affect_cues(src_lm, iod)
        after = affect_cues(lm, iod) if lm is not None else dict.fromkeys(before, np.nan)
        for k in before:
            row[f"d_{k}"] = after[k] - before[k]
        implied = side.get("landmarks", {})
        if lm is not None and implied:

            def arr(ps):
                return np.array([[np.nan, np.nan] if q is None else q for q in ps], np.float64)

            moved = arr(implied["implied"]) - arr(implied["fitted"])
            seen = lm - src_lm
            for name, sl in _REGIONS.items():
                row[f"motion_err_{name}"] = float(
                    np.nanmean(np.linalg.norm(seen[sl] - moved[sl], axis=1)) / iod
                )
                row[f"motion_implied_{name}"] = float(
                    np.nanmean(np.linalg.norm(moved[sl], axis=1)) / iod
                )
        halo = side.get("blend", {})
        row["halo_mean"] = halo.get("correction_mean", float("nan"))
        row["halo_blob"] = halo.get("correction_blob", float("nan"))
        skin = side.get("skin") or {}
        row["skin_brightness"] = _num(skin.get("brightness_change"))
        row["skin_detail"] = _num(skin.get("detail_ratio"))
        row["failed"] = ";".join(_failures(row))
        rows.append(row)
        if progress:
            progress(i + 1, len(paths))
    summary = _summary(rows)
    if judge is not None:
        summary["judge"] = _judge_rows(judge, rows, crops)
    out.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, keys, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "judges.csv", buf.getvalue())
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    _figure(rows, out / "judges.png")
    return summary


def _judge_rows(judge, rows: list[dict], crops: list) -> dict:
    """Run the judge over the crops (64 at a time), fill the rows, return its report."""
    from ._affect_judge import class_name, judge_report

    va, classes = [], []
    for i in range(0, len(crops), 64):
        v, probs = judge(np.stack([c for _, c in crops[i : i + 64]]))
        va.append(v)
        if probs is not None:
            names = list(probs)
            top = np.argmax(np.stack([probs[n] for n in names], -1), -1)
            classes += [class_name(names[k]) for k in top]
    va = np.concatenate(va)
    by_key = {key: k for k, (key, _) in enumerate(crops)}
    for i, row in enumerate(rows):
        k, p = by_key[i], by_key[Path(row["photo"])]
        row["judged_valence"], row["judged_arousal"] = (float(x) for x in va[k])
        row["photo_judged_valence"], row["photo_judged_arousal"] = (float(x) for x in va[p])
        if classes:
            row["judged_class"], row["photo_judged_class"] = classes[k], classes[p]
    get = lambda *keys: np.array([[r[k] for k in keys] for r in rows], np.float64)  # noqa: E731
    report = judge_report(
        get("valence", "arousal"),
        get("judged_valence", "judged_arousal"),
        get("photo_judged_valence", "photo_judged_arousal"),
    )
    report["name"] = judge.name
    cat = [r for r in rows if "emotion" in r and classes]
    if cat:
        # the share of outputs the judge puts in their target's category, against the
        # share of their source photos it already puts there
        hit = [r["judged_class"] == class_name(r["emotion"]) for r in cat]
        was = [r["photo_judged_class"] == class_name(r["emotion"]) for r in cat]
        per = {}
        for r, h, w in zip(cat, hit, was):
            e = per.setdefault(class_name(r["emotion"]), dict(n=0, outputs=0, photos=0))
            e["n"] += 1
            e["outputs"] += int(h)
            e["photos"] += int(w)
        report["categories"] = dict(n=len(cat), outputs=float(np.mean(hit)),
                                    photos=float(np.mean(was)), per_category=per)  # fmt: skip
    return report


def _num(x) -> float:
    return float("nan") if x is None else float(x)


def _failures(row: dict) -> list[str]:
    bad = []
    if np.isfinite(row.get("skin_brightness", np.nan)) and (
        abs(row["skin_brightness"]) > BRIGHTNESS_LIMIT
    ):
        bad.append("skin brightness")
    if np.isfinite(row.get("skin_detail", np.nan)) and row["skin_detail"] < DETAIL_LIMIT:
        bad.append("skin detail")
    if not np.isfinite(row["identity"]):
        bad.append("no face re-detected")
    elif row["identity"] > IDENTITY_LIMIT:
        bad.append("identity")
    if np.isfinite(row["halo_mean"]) and (
        row["halo_mean"] > HALO_MEAN_LIMIT or row["halo_blob"] > HALO_BLOB_LIMIT
    ):
        bad.append("halo")
    return bad


def _summary(rows: list[dict]) -> dict:
    ident = np.array([r["identity"] for r in rows], np.float64)
    fin = ident[np.isfinite(ident)]
    mean = {k: float(np.nanmean([r.get(k, np.nan) for r in rows]))
            for k in rows[0] if k.startswith(("d_", "motion_", "halo_", "skin_"))}  # fmt: skip
    return dict(
        images=len(rows),
        failed=[dict(image=r["image"], why=r["failed"]) for r in rows if r["failed"]],
        identity_max=float(fin.max()) if fin.size else None,
        identity_mean=float(fin.mean()) if fin.size else None,
        means=mean,
    )


def _figure(rows: list[dict], path: Path) -> None:
    """Targets in the V-A plane, coloured by identity distance and by the mouth-corner change."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the figure is optional (vafx[plot]); the CSV holds everything
        return
    va = np.array([[r["valence"], r["arousal"]] for r in rows])
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), constrained_layout=True)
    for ax, key, title, cmap in zip(
        axes,
        ("identity", "d_corner_lift", "d_mouth_open"),
        ("identity distance (dlib)", "mouth corners up (IOD)", "mouth opening (IOD)"),
        ("viridis", "coolwarm", "coolwarm"),
    ):
        v = np.array([r[key] for r in rows], np.float64)
        sc = ax.scatter(va[:, 0], va[:, 1], c=v, cmap=cmap, s=60, edgecolors="k")
        bad = np.array([bool(r["failed"]) for r in rows])
        if bad.any():
            ax.scatter(va[bad, 0], va[bad, 1], marker="x", c="r", s=80, label="failed")
            ax.legend(loc="lower left")
        ax.set(xlim=(-1.05, 1.05), ylim=(-1.05, 1.05), xlabel="valence", ylabel="arousal",
               title=title, aspect="equal")  # fmt: skip
        fig.colorbar(sc, ax=ax, shrink=0.8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
