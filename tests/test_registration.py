"""Scan registration: the kernels against independent references, and the whole command."""

from __future__ import annotations

import csv

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from vafx.kernels import registration as reg

import vafx
from vafx._cli import main
from vafx._gallery import _register as R
from vafx._gallery._register_files import read_scan
from vafx._gallery._scans import ScanConfig, synthetic_scan

finite = st.floats(-3, 3, allow_nan=False, width=32)


def _closest_reference(p, a, b, c, n=200):
    """Brute force: the nearest of a dense barycentric sampling, then of the edges (float64)."""
    u, v = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n))
    keep = u + v <= 1
    u, v = u[keep], v[keep]
    pts = a + u[:, None] * (b - a) + v[:, None] * (c - a)
    return np.min(np.linalg.norm(pts - p, axis=1))


@given(arrays(np.float32, (4, 3), elements=finite))
def test_closest_on_triangle_is_no_farther_than_any_surface_point(x):
    p, a, b, c = (x[i].astype(np.float64) for i in range(4))
    q, bary = closest_on_triangles(*(jnp.asarray(y, jnp.float32) for y in (p, a, b, c)))
    q, bary = np.asarray(q, np.float64), np.asarray(bary, np.float64)
    # on the triangle: barycentric weights in [0, 1] summing to 1, and q their combination
    assert np.all(bary >= -1e-4) and abs(bary.sum() - 1) < 1e-4
    np.testing.assert_allclose(bary @ np.stack([a, b, c]), q, atol=1e-3)
    # no sampled point of the triangle is nearer (the sampling's own error: 1/200 of an edge)
    d = np.linalg.norm(q - p)
    edge = max(np.linalg.norm(b - a), np.linalg.norm(c - a), np.linalg.norm(c - b))
    assert d <= _closest_reference(p, a, b, c) + 1e-3 + 1e-6 * edge


def closest_on_triangles(*a):
    return reg.closest_on_triangles(*a)


@given(st.integers(0, 10_000))
def test_umeyama_recovers_a_similarity(seed):
    rng = np.random.default_rng(seed)
    src = rng.standard_normal((30, 3))
    w = rng.uniform(0.5, 1.5, 30)
    axis = rng.standard_normal(3)
    r = np.asarray(vafx.kernels.camera.so3_exp(jnp.asarray(axis, jnp.float32)), np.float64)
    s, t = rng.uniform(0.5, 2), rng.standard_normal(3)
    dst = s * src @ r.T + t
    s1, r1, t1 = reg.umeyama(*(jnp.asarray(x, jnp.float32) for x in (src, dst, w)))
    np.testing.assert_allclose(float(s1), s, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(r1), r, atol=1e-4)
    np.testing.assert_allclose(np.asarray(t1), t, atol=1e-3)


def test_grid_and_walk_find_the_brute_force_nearest_vertex():
    rng = np.random.default_rng(0)
    # a wavy sheet as a grid mesh, queries near it
    u, v = np.meshgrid(np.linspace(0, 4, 40), np.linspace(0, 3, 30))
    verts = np.stack([u, v, 0.2 * np.sin(2 * u) * np.cos(v)], -1).reshape(-1, 3).astype(np.float32)
    ids = np.arange(40 * 30).reshape(30, 40)
    a, b, c, d = ids[:-1, :-1], ids[:-1, 1:], ids[1:, :-1], ids[1:, 1:]
    faces = np.concatenate([np.stack([a, c, b], -1), np.stack([b, c, d], -1)]).reshape(-1, 3)
    target = jax.tree_util.tree_map(jnp.asarray, reg.surface_target(verts, faces, 0.3))
    q = verts[rng.integers(0, len(verts), 300)] + 0.05 * rng.standard_normal((300, 3))
    q = q.astype(np.float32)
    truth = np.argmin(((q[:, None] - verts[None]) ** 2).sum(-1), axis=1)
    v, dist = reg.nearest_vertex(target, jnp.asarray(q), block=128)
    np.testing.assert_array_equal(np.asarray(v), truth)
    np.testing.assert_allclose(
        np.asarray(dist), np.linalg.norm(q - verts[truth], axis=1), atol=1e-5
    )
    # the walk from a vertex three edges away (in both directions) ends there too
    row, col = np.clip(truth // 40 + 3, 0, 29), np.clip(truth % 40 - 3, 0, 39)
    start = ids[row, col]
    walked = reg.walk_nearest(target, jnp.asarray(q), jnp.asarray(start), 8)
    np.testing.assert_array_equal(np.asarray(walked), truth)
    # closest surface points are no farther than the nearest vertex, and on the sheet
    cl = reg.closest_points(target, jnp.asarray(q), walked)
    assert np.all(np.asarray(cl.distance) <= np.asarray(dist) + 1e-6)
    assert np.asarray(cl.border).any() and not np.asarray(cl.border).all()


def test_nicp_solve_matches_a_sparse_direct_solve():
    """The conjugate-gradient step against scipy's sparse LU of the same normal equations (float64)."""
    sparse = pytest.importorskip("scipy.sparse")
    from scipy.sparse.linalg import spsolve

    rng = np.random.default_rng(1)
    u, v = np.meshgrid(np.linspace(0, 2, 12), np.linspace(0, 2, 10))
    src = np.stack([u, v, 0.1 * u * v], -1).reshape(-1, 3)
    ids = np.arange(120).reshape(10, 12)
    a, b, c, d = ids[:-1, :-1], ids[:-1, 1:], ids[1:, :-1], ids[1:, 1:]
    faces = np.concatenate([np.stack([a, c, b], -1), np.stack([b, c, d], -1)]).reshape(-1, 3)
    n = len(src)
    tgt = src + 0.1 * rng.standard_normal(src.shape)
    w = (rng.uniform(size=n) > 0.3).astype(np.float64)
    alpha, gamma = 0.7, 1.3
    graph = reg.template_graph(faces, n)
    with jax.enable_x64(True):
        x0 = np.tile(np.concatenate([np.eye(3), np.zeros((1, 3))]), (n, 1, 1))
        x, _ = reg.nicp_solve(
            reg.TemplateGraph(jnp.asarray(graph.neighbours), jnp.asarray(graph.degree, jnp.float64)),
            jnp.asarray(src), jnp.asarray(tgt), jnp.asarray(w), jnp.float64(alpha),
            jnp.float64(gamma), jnp.asarray(x0), tol=1e-12, maxiter=5000,
        )  # fmt: skip
        x = np.asarray(x)
    # Amberg et al.'s system: A = [alpha M (x) G; W D], B = [0; W U]
    e = np.unique(
        np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1), axis=0
    )
    m = sparse.coo_matrix(
        (np.r_[np.ones(len(e)), -np.ones(len(e))], (np.r_[np.arange(len(e)), np.arange(len(e))], np.r_[e[:, 0], e[:, 1]])),
        shape=(len(e), n),
    )  # fmt: skip
    g = np.diag([1, 1, 1, gamma])
    dmat = sparse.lil_matrix((n, 4 * n))
    for i in range(n):
        dmat[i, 4 * i : 4 * i + 4] = np.r_[src[i], 1] * np.sqrt(w[i])
    a_mat = sparse.vstack([alpha * sparse.kron(m, g), dmat.tocsr()]).tocsc()
    b_mat = np.vstack([np.zeros((4 * len(e), 3)), tgt * np.sqrt(w)[:, None]])
    ref = spsolve((a_mat.T @ a_mat).tocsc(), a_mat.T @ b_mat).reshape(n, 4, 3)
    np.testing.assert_allclose(x, ref, atol=1e-6)


# ------------------------------------------------------------------ the face
@pytest.fixture(scope="module")
def face(ict_model):
    tp = vafx.template_from_model(ict_model, "face")
    region = np.isin(tp.vertex_ids, np.asarray(ict_model.regions["narrow_face"]))
    return ict_model, tp, region


COARSE = ScanConfig(spacing=0.3, rotation=15.0, translation=2.0)


@pytest.mark.slow
def test_registration_lands_on_the_true_surface_points(face):
    """A re-meshed, noisy, holed, misaligned ICT face: mean error < 0.1 cm, p95 < 0.25 cm."""
    model, tp, region = face
    setup = R.registration_setup(tp, model)
    scans = [synthetic_scan(model, tp, seed, COARSE) for seed in (11, 12)]
    regs, reports = R.register_sequence(
        setup, [(s.verts, s.faces) for s in scans], [s.landmarks for s in scans]
    )
    for s, r, rep in zip(scans, regs, reports):
        ps, pr, pt = s.pose
        on_scan = ps * s.truth @ pr.T + pt
        err = np.linalg.norm(r.scan_verts - on_scan, axis=1)[region]
        assert err.mean() < 0.1 and np.percentile(err, 95) < 0.25, (
            err.mean(),
            np.percentile(err, 95),
        )
        # back in the template's frame (the pose removed) it is as close
        err_t = np.linalg.norm(r.verts - s.truth, axis=1)[region]
        assert err_t.mean() < 0.12
        assert 0.05 < rep.unmatched < 0.6  # holes and the uncovered neck and sides
        assert rep.from_scan_mean < 0.05


def _write_sequence(root, model, tp, n_frames, seed=0):
    """n_frames re-meshed frames of one subject, an expression rising; CSV and landmarks."""
    rng = np.random.default_rng(seed)
    ident = 0.8 * rng.standard_normal(model.num_identity)
    rows = []
    for i in range(n_frames):
        e = np.zeros(model.num_expressions)
        e[model.expression_index("jawOpen")] = 0.6 * i / n_frames
        e[model.expression_index("mouthSmile_L")] = 0.8 * i / n_frames
        e[model.expression_index("mouthSmile_R")] = 0.8 * i / n_frames
        s = synthetic_scan(model, tp, 1000 + i, ScanConfig(spacing=0.35, rotation=8, translation=1.0),
                           identity=ident, expression=e)  # fmt: skip
        d = root / "scans" / "s1" / "happy"
        d.mkdir(parents=True, exist_ok=True)
        import trimesh

        trimesh.Trimesh(s.verts * 10, s.faces, process=False).export(d / f"{i}.ply")  # in mm
        lm = root / "lm" / "s1" / "happy"
        lm.mkdir(parents=True, exist_ok=True)
        np.savetxt(lm / f"{i}.txt", s.landmarks * 10)
        rows.append(dict(subject="s1", sequence="happy", frame=i, valence=round(0.8 * i / n_frames, 3),
                         arousal=round(0.5 * i / n_frames, 3), neutral=int(i == 0)))  # fmt: skip
    with open(root / "frames.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root / "frames.csv"


@pytest.mark.slow
def test_thirty_scans_registered_imported_and_binned_by_commands(tmp_path, face, ict_dir, capsys):
    model, tp, _ = face
    model_file = str(ict_dir / "ict_facekit_light.npz")
    annotations = _write_sequence(tmp_path, model, tp, 30)
    out = tmp_path / "registered"
    args = ["gallery", "register", str(tmp_path / "scans"), "--annotations", str(annotations),
            "-o", str(out), "--landmarks", str(tmp_path / "lm"), "--model", model_file, "--scale", "0.1"]  # fmt: skip
    assert main(args) == 0
    report = list(csv.DictReader(open(out / "registration.csv")))
    assert len(report) == 30
    assert all(float(r["from_scan_mean"]) < 0.05 for r in report)
    # a re-run finds the sequence done and rewrites nothing
    mtime = (out / "s1" / "happy" / "3.obj").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "s1" / "happy" / "3.obj").stat().st_mtime_ns == mtime
    # other settings into the same folder: refused with a one-line reason
    assert main(args[:-1] + ["0.2"]) == 2
    assert "other input or settings" in capsys.readouterr().err
    gal = tmp_path / "gallery"
    assert main(["gallery", "import", str(out), "--annotations", str(out / "frames.csv"),
                 "-o", str(gal), "--model", model_file]) == 0  # fmt: skip
    g = vafx.open_gallery(gal)
    assert g.num_frames == 29
    assert main(["bins", "fit", str(gal), "-o", str(tmp_path / "bins.npz"), "--components", "2",
                 "--iters", "2", "--min-frames", "2", "--means-only"]) == 0  # fmt: skip
    models = vafx.load_bin_models(tmp_path / "bins.npz")
    # the smiling, open-mouthed frames moved the mouth corners: the fullest bin's mean is no zero
    k = int(np.argmax(g.counts()))
    assert np.abs(np.asarray(models.means[k])).max() > 0.05


def test_bad_scans_get_one_line_errors(tmp_path, face):
    bad = tmp_path / "flat.obj"
    bad.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    with pytest.raises(vafx.DataFileError, match="too few"):
        read_scan(bad)
    pts = tmp_path / "points.ply"
    import trimesh

    trimesh.PointCloud(np.random.default_rng(0).standard_normal((500, 3))).export(pts)
    with pytest.raises(vafx.DataFileError, match="no triangles|cannot read"):
        read_scan(pts)
    model, tp, _ = face
    s = synthetic_scan(model, tp, 5, COARSE)
    lm = tmp_path / "lm.txt"
    np.savetxt(lm, s.landmarks[:60])
    from vafx._gallery._register_files import read_landmarks3d

    with pytest.raises(vafx.DataFileError, match="68 rows"):
        read_landmarks3d(lm)


@pytest.mark.slow
def test_a_scan_far_from_any_face_is_refused(face):
    model, tp, _ = face
    setup = R.registration_setup(tp, model)
    s = synthetic_scan(model, tp, 7, COARSE)
    far = s.verts * 4.0  # wrong units: four times too large, and no landmarks
    with pytest.raises(R.RegistrationError, match="cannot be registered"):
        R.register_sequence(setup, [(far, s.faces)], [None], names=["far.ply"])
