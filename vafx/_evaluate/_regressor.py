"""The paper's section 4.4: does augmentation help a V-A regressor? (Tables 2 and 3.)

A compact CNN in plain JAX (three 3x3 convolutions with stride 2, global
average pooling, a dense layer, tanh outputs for valence and arousal), trained
with optax (Adam, MSE) on face crops resized to ``size`` x ``size``, in
person-independent k-fold cross-validation, without and with the augmented
images of the training folds' people only. Metrics per fold and their mean:
Pearson CC, CCC and MSE of valence and arousal (labels in [-1, 1]; AFEW-VA's
[-10, 10] are divided by 10 and the MSE reported on that scale too).

Datasets are a folder of images plus a CSV: ``image,subject,valence,arousal``
(optional ``video,frame`` columns are kept for reference). The augmented set
is the output folder of ``vafx augment`` (its labels.csv has the same columns
plus the source photo). Each fold's trained parameters are checkpointed; a
re-run skips finished folds.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._errors import DataFileError, VafxError
from .._io._atomic import atomic_path, atomic_write_text
from ..kernels.metrics import ccc, mse, pcc

__all__ = ["cross_validate", "init_cnn", "load_dataset", "person_folds", "predict"]


def load_dataset(csv_path, image_dir=None, size: int = 64, label_scale: float | None = None):
    """Images float32[m, size, size, 3] in [0, 1], V-A float32[m, 2] in [-1, 1], subjects (str).

    ``label_scale`` divides the labels (None: 10 when any |label| > 1, as AFEW-VA, else 1).
    """
    from skimage.transform import resize

    from .._io._photos import read_photo

    csv_path = Path(csv_path)
    root = Path(image_dir) if image_dir is not None else csv_path.parent
    try:
        reader = csv.DictReader(csv_path.read_text().splitlines())
        rows = list(reader)
    except (OSError, UnicodeDecodeError) as e:
        raise DataFileError(csv_path, f"cannot read ({e})") from None
    need = {"image", "subject", "valence", "arousal"}
    if reader.fieldnames and need <= set(reader.fieldnames) and not rows:
        raise DataFileError(csv_path, "holds a header and no rows")
    if not rows or not need <= set(rows[0]):
        raise DataFileError(csv_path, f"line 1: the header needs columns {sorted(need)}")
    imgs, va, subj = [], [], []
    for line, r in enumerate(rows, start=2):
        try:
            v = (float(r["valence"]), float(r["arousal"]))
        except ValueError:
            raise DataFileError(csv_path, f"line {line}: valence/arousal are not numbers") from None
        if not np.isfinite(v).all():
            raise DataFileError(csv_path, f"line {line}: valence/arousal must be finite, got {v}")
        img = read_photo(root / r["image"])
        imgs.append(resize(img, (size, size), anti_aliasing=True).astype(np.float32))
        va.append(v)
        subj.append(str(r["subject"]))
    va = np.asarray(va, np.float32)
    scale = label_scale if label_scale is not None else (10.0 if np.abs(va).max() > 1 else 1.0)
    va = va / scale
    if np.abs(va).max() > 1 + 1e-6:
        raise DataFileError(
            csv_path, f"labels reach {np.abs(va).max():.3f} after dividing by {scale}"
        )
    return np.stack(imgs), va, np.asarray(subj)


def person_folds(subjects, k: int = 5, seed: int = 0) -> list[np.ndarray]:
    """k person-disjoint folds: lists of subject names (every subject in exactly one)."""
    uniq = np.unique(np.asarray(subjects))
    if not 2 <= k <= len(uniq):
        raise ValueError(f"{k} folds need between 2 and {len(uniq)} subjects' worth of people")
    perm = np.random.default_rng(seed).permutation(uniq)
    return [np.sort(f) for f in np.array_split(perm, k)]


def init_cnn(key, channels=(16, 32, 64)):
    """Parameters of the compact CNN (a pytree)."""
    params = []
    cin = 3
    for c in channels:
        key, k1 = jax.random.split(key)
        params.append(
            dict(w=jax.random.normal(k1, (3, 3, cin, c)) * np.sqrt(2 / (9 * cin)), b=jnp.zeros(c))
        )
        cin = c
    key, k1 = jax.random.split(key)
    head = dict(w=jax.random.normal(k1, (cin, 2)) * np.sqrt(1 / cin), b=jnp.zeros(2))
    return dict(conv=params, head=head)


def predict(params, images):
    """float[B, H, W, 3] -> float[B, 2] in (-1, 1)."""
    x = images
    for layer in params["conv"]:
        x = jax.lax.conv_general_dilated(
            x, layer["w"], (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        x = jax.nn.relu(x + layer["b"][None, None, None, :])
    x = jnp.mean(x, axis=(1, 2))
    return jnp.tanh(x @ params["head"]["w"] + params["head"]["b"][None, :])


def _train(images, va, *, epochs, batch, lr, seed):
    # optax mixes Python floats with int32 step counts: standard promotion here,
    # whatever the caller's setting (tests run with strict promotion)
    with jax.numpy_dtype_promotion("standard"):
        return _train_inner(images, va, epochs=epochs, batch=batch, lr=lr, seed=seed)


def _train_inner(images, va, *, epochs, batch, lr, seed):
    key = jax.random.key(seed)
    params = init_cnn(key)
    opt = optax.adam(lr)
    state = opt.init(params)

    @jax.jit
    def step(params, state, x, y):
        loss, g = jax.value_and_grad(lambda p: jnp.mean((predict(p, x) - y) ** 2))(params)
        upd, state = opt.update(g, state, params)
        return optax.apply_updates(params, upd), state, loss

    rng = np.random.default_rng(seed)
    n = len(images)
    for _ in range(epochs):
        order = rng.permutation(n)
        for i in range(0, n - batch + 1 if n >= batch else 1, batch):
            idx = order[i : i + batch]
            params, state, _ = step(params, state, jnp.asarray(images[idx]), jnp.asarray(va[idx]))
    return params


def _metrics(pred, va) -> dict:
    p, y = jnp.asarray(pred), jnp.asarray(va)
    out = {}
    for name, f in (("pcc", pcc), ("ccc", ccc), ("mse", mse)):
        v = np.asarray(f(p, y))
        out[f"{name}_valence"], out[f"{name}_arousal"] = float(v[0]), float(v[1])
    return out


def cross_validate(
    images, va, subjects, *, augmented=None, folds: int = 5, epochs: int = 10, batch: int = 64,
    lr: float = 1e-3, seed: int = 0, checkpoint_dir=None, progress: Callable[[int, int], None] | None = None,
) -> dict:  # fmt: skip
    """Person-independent k-fold CV without and with augmentation.

    Args:
        images, va, subjects: the dataset (:func:`load_dataset`).
        augmented: (images, va, subjects) of the augmented set, or None (then
            only "without" is run). Only images of a fold's training people
            join its training set.
        folds, epochs, batch, lr, seed: training settings.
        checkpoint_dir: per fold and setting, the parameters and metrics are
            saved here; finished folds are loaded instead of retrained.

    Returns:
        {"without": [per-fold metrics..., ], "with": [...], "folds": [test subjects...]}
    """
    subjects = np.asarray(subjects)
    for name, arr in (("images", images), ("va", va)) + (
        (("augmented images", augmented[0]), ("augmented va", augmented[1])) if augmented else ()
    ):
        if not np.isfinite(np.asarray(arr)).all():
            raise ValueError(f"{name}: holds NaN or infinite values")
    fold_subjects = person_folds(subjects, folds, seed)
    settings = ["without"] + (["with"] if augmented is not None else [])
    out = {s: [] for s in settings}
    out["folds"] = [f.tolist() for f in fold_subjects]
    total, done = len(settings) * folds, 0
    ck = Path(checkpoint_dir) if checkpoint_dir is not None else None
    for setting in settings:
        for i, test_people in enumerate(fold_subjects):
            path = ck / f"{setting}_fold{i}.json" if ck else None
            if path is not None and path.exists():
                out[setting].append(json.loads(path.read_text()))
            else:
                test = np.isin(subjects, test_people)
                x, y = images[~test], va[~test]
                if setting == "with":
                    ax, ay, asubj = augmented
                    keep = ~np.isin(np.asarray(asubj), test_people)  # never a test person's face
                    x, y = np.concatenate([x, ax[keep]]), np.concatenate([y, ay[keep]])
                params = _train(x, y, epochs=epochs, batch=batch, lr=lr, seed=seed + i)
                pred = np.asarray(predict(params, jnp.asarray(images[test])))
                if not np.isfinite(pred).all():
                    raise VafxError(
                        f"{setting} augmentation, fold {i}: the regressor's predictions are not "
                        f"finite (training diverged; try a smaller --lr)"
                    )
                m = _metrics(pred, va[test])
                m["fold"], m["test_subjects"], m["train_images"] = i, len(test_people), int(len(x))
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    atomic_write_text(path, json.dumps(m))
                    leaves = {str(j): np.asarray(a) for j, a in enumerate(jax.tree.leaves(params))}
                    with atomic_path(path.with_suffix(".npz")) as tmp, open(tmp, "wb") as fh:
                        np.savez(fh, **leaves)
                out[setting].append(m)
            done += 1
            if progress is not None:
                progress(done, total)
    return out


def format_tables(result: dict) -> str:
    """Tables 2/3 layout: per fold and mean, PCC / CCC / MSE for valence and arousal."""
    keys = [
        "pcc_valence",
        "pcc_arousal",
        "ccc_valence",
        "ccc_arousal",
        "mse_valence",
        "mse_arousal",
    ]
    lines = []
    for setting in ("without", "with"):
        if setting not in result:
            continue
        lines.append(f"{setting} augmentation")
        lines.append(f"{'fold':>6} " + " ".join(f"{k:>12}" for k in keys))
        for m in result[setting]:
            lines.append(f"{m['fold']:>6} " + " ".join(f"{m[k]:>12.3f}" for k in keys))
        mean = {k: float(np.mean([m[k] for m in result[setting]])) for k in keys}
        lines.append(f"{'mean':>6} " + " ".join(f"{mean[k]:>12.3f}" for k in keys))
    return "\n".join(lines)
