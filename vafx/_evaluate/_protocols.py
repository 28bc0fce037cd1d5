"""The paper's section 4.1: how much of valence and arousal the 3D expression explains.

Protocol (Table 1 of Kollias et al.): an expression blendshape model (PCA, in
JAX) from the apex frames of the training subjects; every frame projected on
its first k components; CCA to two dimensions against V-A on the training set;
an RBF-kernel SVR per dimension (valence, arousal) from those two canonical
variates; CCC and MSE on the test subjects (a subject-independent split, 80/20
by default). Swept over k (the paper: 84, 150, 200, 300, 500; capped by the
data). CCA and SVR come from scikit-learn (``pip install "vafx[eval]"``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from .._io._atomic import atomic_write_text
from ..kernels.metrics import ccc, mse

__all__ = ["pca_basis", "va_correlation", "format_table1"]

PAPER_COMPONENTS = (84, 150, 200, 300, 500)


def pca_basis(x: np.ndarray, k: int):
    """PCA of rows x float[m, d]: (mean float[d], components float[k, d]) via SVD in JAX."""
    xj = jnp.asarray(x, jnp.float32)
    mu = jnp.mean(xj, axis=0)
    _, _, vt = jnp.linalg.svd(xj - mu[None], full_matrices=False)
    return np.asarray(mu), np.asarray(vt[:k])


def _sklearn():
    try:
        from sklearn.cross_decomposition import CCA
        from sklearn.svm import SVR
    except ImportError:
        raise ImportError('the evaluation needs scikit-learn: pip install "vafx[eval]"') from None
    return CCA, SVR


def va_correlation(
    features: np.ndarray,
    va: np.ndarray,
    subjects: np.ndarray,
    apex: np.ndarray,
    *,
    components=PAPER_COMPONENTS,
    test_fraction: float = 0.2,
    seed: int = 0,
    max_train: int = 5000,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Run the section 4.1 protocol on any frames.

    Args:
        features: float[m, d] per frame (e.g. difference vectors, flattened).
        va: float[m, 2] labels.
        subjects: int[m] subject of each frame.
        apex: bool[m], the apex frames (they build the PCA model).
        components: the k to sweep (capped at the number of training apex frames).
        test_fraction: subjects on the test side.
        seed: seed of the split and of the SVR training subset.
        max_train: SVR training frames at most (a seeded subset; SVR is O(m^2)).
        progress: called with (settings done, settings).

    Returns:
        One dict per k: k, CCC and MSE of valence and arousal on the test
        subjects, and the sizes used.
    """
    CCA, SVR = _sklearn()
    features = np.asarray(features, np.float32)
    va = np.asarray(va, np.float32)
    subjects = np.asarray(subjects)
    for name, arr in (("features", features), ("va", va)):
        if not np.isfinite(arr).all():
            raise ValueError(f"{name}: holds NaN or infinite values")
    uniq = np.unique(subjects)
    if len(uniq) < 2:
        raise ValueError("a subject-independent split needs at least 2 subjects")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(uniq)
    n_test = min(max(int(round(test_fraction * len(uniq))), 1), len(uniq) - 1)
    test_subj = set(perm[:n_test].tolist())
    test = np.array([s in test_subj for s in subjects])
    train = ~test
    apex_train = apex & train
    ks = sorted({min(int(k), int(apex_train.sum()), features.shape[1]) for k in components})
    mu, comps = pca_basis(features[apex_train], max(ks))
    proj = (features - mu[None]) @ comps.T  # [m, kmax]
    tr = np.nonzero(train)[0]
    if len(tr) > max_train:
        tr = np.sort(rng.choice(tr, max_train, replace=False))
    rows = []
    for i, k in enumerate(ks):
        cca = CCA(n_components=2, max_iter=1000)
        cca.fit(proj[tr, :k], va[tr])
        z_tr = cca.transform(proj[tr, :k])
        z_te = cca.transform(proj[test, :k])
        pred = np.zeros((int(test.sum()), 2), np.float32)
        for j in range(2):
            svr = SVR(kernel="rbf", C=1.0, epsilon=0.05, gamma="scale")
            svr.fit(z_tr, va[tr, j])
            pred[:, j] = svr.predict(z_te)
        c = np.asarray(ccc(jnp.asarray(pred), jnp.asarray(va[test])))
        e = np.asarray(mse(jnp.asarray(pred), jnp.asarray(va[test])))
        rows.append(
            dict(
                components=k,
                ccc_valence=float(c[0]),
                ccc_arousal=float(c[1]),
                mse_valence=float(e[0]),
                mse_arousal=float(e[1]),
                train_frames=int(len(tr)),
                test_frames=int(test.sum()),
                test_subjects=int(n_test),
            )
        )
        if progress is not None:
            progress(i + 1, len(ks))
    return rows


def format_table1(rows: list[dict]) -> str:
    """The paper's Table 1 layout: CCC and MSE of valence and arousal per number of components."""
    lines = [
        f"{'components':>10} | {'CCC valence':>11} {'CCC arousal':>11} | {'MSE valence':>11} {'MSE arousal':>11}",
        "-" * 63,
    ]
    for r in rows:
        lines.append(
            f"{r['components']:>10} | {r['ccc_valence']:>11.3f} {r['ccc_arousal']:>11.3f} | "
            f"{r['mse_valence']:>11.4f} {r['mse_arousal']:>11.4f}"
        )
    return "\n".join(lines)


def write_rows_csv(rows: list[dict], path) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def gallery_va_correlation(gallery, **kwargs) -> list[dict]:
    """:func:`va_correlation` on a gallery's expression frames (difference vectors as features).

    Streams the bins; holds every frame's flattened difference vector in memory
    (m x 3n float32: 100,000 frames of 9,409 vertices are 11 GB, so pass
    ``max_frames`` to subsample large galleries).
    """
    max_frames = kwargs.pop("max_frames", 20000)
    seed = kwargs.get("seed", 0)
    recs_all, feats = [], []
    rng = np.random.default_rng(seed)
    per_bin = max(1, max_frames // max(1, int((gallery.counts() > 0).sum())))
    apex_ids = set(gallery.apex_frames()["frame"].tolist())
    for b in np.nonzero(gallery.counts())[0]:
        recs = gallery.frames_of_bin(int(b))
        d = gallery.bin_deltas(int(b))
        keep = np.arange(len(recs))
        is_apex = np.array([f in apex_ids for f in recs["frame"]])
        if len(keep) > per_bin:  # keep every apex frame, subsample the rest
            rest = np.nonzero(~is_apex)[0]
            n_rest = max(0, per_bin - int(is_apex.sum()))
            keep = np.sort(
                np.concatenate(
                    [
                        np.nonzero(is_apex)[0],
                        rng.choice(rest, min(n_rest, len(rest)), replace=False),
                    ]
                )
            )
        recs_all.append(recs[keep])
        feats.append(d[keep].reshape(len(keep), -1))
    recs = np.concatenate(recs_all)
    x = np.concatenate(feats)
    apex = np.array([f in apex_ids for f in recs["frame"]])
    va = np.stack([recs["valence"], recs["arousal"]], 1)
    return va_correlation(x, va, recs["subject"], apex, **kwargs)
