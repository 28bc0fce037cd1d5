"""Face models: ICT in both forms, the SFM, eos files, the cache format, bad files."""

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tree_allclose

import vafx

# ------------------------------------------------------------------- ICT


def test_ict_npz_sizes_and_nose_tip(ict_model):
    m = ict_model
    assert (m.num_vertices, m.num_identity, m.num_expressions) == (26719, 100, 53)
    assert m.landmarks.shape == (68,) and int(m.landmarks[30]) == 4857  # iBUG 31, nose tip
    assert m.units == "cm" and m.expression_kind == "blendshapes"
    assert m.faces.shape == (25836 * 2 + 548, 3)
    assert m.uv.shape == (28911, 2) and m.faces_uv.shape == m.faces.shape
    assert "mouthSmile_L" in m.expression_names and "jawOpen" in m.expression_names
    assert m.regions["face"].shape == (9409,) and int(m.regions["teeth"][0]) == 17039
    assert m.contour_right.shape == (17,) and m.contour_left.shape == (17,)


def test_ict_folder_equals_npz(ict_dir, ict_model):
    """The upstream folder form gives bit-identical arrays for what it holds."""
    f = vafx.load_ict_folder(ict_dir / "FaceXModel", require_complete=False)
    a = ict_model
    for field in ("mean", "faces", "uv", "faces_uv", "landmarks", "contour_right", "contour_left"):
        np.testing.assert_array_equal(np.asarray(getattr(f, field)), np.asarray(getattr(a, field)))
    assert f.num_identity == 2
    np.testing.assert_array_equal(np.asarray(f.identity_basis), np.asarray(a.identity_basis[:2]))
    assert set(f.expression_names) == {"eyeBlink_L", "jawOpen", "mouthSmile_L"}
    for name in f.expression_names:
        np.testing.assert_array_equal(
            np.asarray(f.expression(name)), np.asarray(a.expression(name))
        )


def test_incomplete_ict_folder_is_refused_by_default(ict_dir):
    with pytest.raises(vafx.DataFileError, match="incomplete ICT folder"):
        vafx.load_ict_folder(ict_dir / "FaceXModel")


def _copy_ict(ict_dir, tmp_path, names=("generic_neutral_mesh.obj", "vertex_indices.json",
                                        "identity000.obj")):  # fmt: skip
    d = tmp_path / "FaceXModel"
    d.mkdir()
    for n in names:
        shutil.copy(ict_dir / "FaceXModel" / n, d / n)
    return d


def test_topology_mismatch_names_the_file(ict_dir, tmp_path):
    d = _copy_ict(ict_dir, tmp_path)
    text = (d / "identity000.obj").read_text().splitlines()
    i = next(k for k, line in enumerate(text) if line.startswith("f "))
    text[i] = "f 1/1 2/2 3/3 4/4"
    (d / "identity000.obj").write_text("\n".join(text))
    with pytest.raises(vafx.DataFileError, match=r"identity000\.obj.*same topology"):
        vafx.load_ict_folder(d, require_complete=False)


def test_vertex_count_mismatch_names_the_file(ict_dir, tmp_path):
    d = _copy_ict(ict_dir, tmp_path)
    lines = (d / "identity000.obj").read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith("v "))
    del lines[i]
    (d / "identity000.obj").write_text("\n".join(lines))
    with pytest.raises(vafx.DataFileError, match=r"identity000\.obj: has 26718 vertices"):
        vafx.load_ict_folder(d, require_complete=False)


def test_truncated_and_foreign_npz(ict_dir, tmp_path):
    src = (ict_dir / "ict_facekit_light.npz").read_bytes()
    bad = tmp_path / "cut.npz"
    bad.write_bytes(src[: len(src) // 2])
    with pytest.raises(vafx.DataFileError, match="cut.npz"):
        vafx.load_ict_npz(bad)
    other = tmp_path / "other.npz"
    np.savez(other, neutral=np.zeros((3, 3)))
    with pytest.raises(vafx.DataFileError, match="missing keys"):
        vafx.load_ict_npz(other)


def test_converted_folder_is_cached(ict_dir, tmp_path):
    from vafx._model._resolve import load_ict_folder_cached

    d = _copy_ict(ict_dir, tmp_path, ("generic_neutral_mesh.obj", "vertex_indices.json",
                                      "identity000.obj", "jawOpen.obj"))  # fmt: skip
    first = load_ict_folder_cached(d, require_complete=False)
    cached = list((vafx.cache_root() / "converted").glob("ict-*.npz"))
    assert len(cached) == 1
    second = load_ict_folder_cached(d, require_complete=False)
    assert tree_allclose(first, second, rtol=0, atol=0)


# ------------------------------------------------------------------- SFM


def test_sfm_sizes_blendshapes_and_nose_tip(sfm_model):
    m = sfm_model
    assert (m.num_vertices, m.num_identity, m.num_faces) == (3448, 63, 6736)
    assert m.uv.shape == (3448, 2) and m.units == "mm"
    assert m.expression_names == ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
    assert m.expression("happiness").shape == (3448, 3)
    assert int(m.landmarks[30]) == 114
    lm = np.asarray(m.landmarks)
    assert np.all(lm[list(vafx.CONTOUR_LANDMARKS_RIGHT) + list(vafx.CONTOUR_LANDMARKS_LEFT)] == -1)
    assert lm[60] == -1 and lm[64] == -1  # inner mouth corners are not defined on the SFM
    assert m.contour_right.shape == (17,) and int(m.contour_right[0]) == 380
    # eos stores an orthonormal basis: check it, and the std from the eigenvalues
    b = np.asarray(m.identity_basis, np.float64).reshape(63, -1)
    np.testing.assert_allclose(b @ b.T, np.eye(63), atol=1e-5)
    assert np.all(np.diff(np.asarray(m.identity_std)) <= 0)


def test_sfm_by_file_path_finds_its_side_files(sfm_dir):
    m = vafx.load_model_path(sfm_dir / "sfm_shape_3448.bin")
    assert m.num_expressions == 6 and int(m.landmarks[30]) == 114


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_eos_writer_reader_round_trip(sfm_model, tmp_path, version):
    """Every eos model version; v2+ carries the blendshapes, v3+ the landmarks."""
    path = tmp_path / f"m{version}.bin"
    vafx.write_eos_model(path, sfm_model, version=version)
    back = vafx.load_eos_model(path)
    np.testing.assert_array_equal(np.asarray(back.mean), np.asarray(sfm_model.mean))
    np.testing.assert_array_equal(np.asarray(back.faces), np.asarray(sfm_model.faces))
    np.testing.assert_allclose(np.asarray(back.uv), np.asarray(sfm_model.uv), atol=1e-7)
    a = jnp.linspace(-1, 1, 63)
    np.testing.assert_allclose(
        np.asarray(vafx.model_shape(back, a)),
        np.asarray(vafx.model_shape(sfm_model, a)),
        rtol=1e-4,
        atol=1e-2,  # mm; float32 basis renormalisation
    )
    if version >= 2:
        assert back.expression_names == sfm_model.expression_names
        np.testing.assert_allclose(np.asarray(back.expression_basis),
                                   np.asarray(sfm_model.expression_basis))  # fmt: skip
    if version >= 3:
        np.testing.assert_array_equal(np.asarray(back.landmarks), np.asarray(sfm_model.landmarks))


def test_eos_pca_expression_and_colour_models(tmp_path):
    """What eos's BFM 2017 / 4DFM conversions hold: colour and a PCA expression model."""
    rng = np.random.default_rng(0)
    n = 30
    q, _ = np.linalg.qr(rng.normal(size=(3 * n, 9)))
    m = vafx.make_model(
        mean=rng.normal(size=(n, 3)), faces=rng.integers(0, n, (20, 3)),
        identity_basis=q[:, :4].T.reshape(4, n, 3), identity_std=[4, 3, 2, 1],
        expression_basis=q[:, 4:7].T.reshape(3, n, 3), expression_std=[3, 2, 1],
        expression_names=["pca000", "pca001", "pca002"], expression_kind="pca",
        colour_mean=rng.uniform(size=(n, 3)), colour_basis=q[:, 7:9].T.reshape(2, n, 3),
        colour_std=[0.2, 0.1], name="bfm-like", units="mm",
        uv=rng.uniform(size=(n, 2)), faces_uv=rng.integers(0, n, (20, 3)),
    )  # fmt: skip
    path = tmp_path / "bfm.bin"
    vafx.write_eos_model(path, m, version=4)
    back = vafx.load_eos_model(path, name="bfm-like")
    assert back.expression_kind == "pca" and back.num_expressions == 3
    for f in ("mean", "identity_basis", "identity_std", "expression_basis", "expression_std",
              "colour_mean", "colour_basis", "colour_std", "faces", "faces_uv"):  # fmt: skip
        np.testing.assert_allclose(np.asarray(getattr(back, f)), np.asarray(getattr(m, f)),
                                   rtol=1e-5, atol=1e-6, err_msg=f)  # fmt: skip


def test_eos_bad_files_name_the_file(sfm_dir, tmp_path):
    data = (sfm_dir / "sfm_shape_3448.bin").read_bytes()
    cut = tmp_path / "cut.bin"
    cut.write_bytes(data[:100_000])
    with pytest.raises(vafx.DataFileError, match=r"cut\.bin: truncated"):
        vafx.load_eos_model(cut)
    wrong = tmp_path / "wrong.bin"
    wrong.write_bytes(b"\x07\x00\x00\x00" + data[4:])
    with pytest.raises(vafx.DataFileError, match=r"wrong\.bin: not an eos MorphableModel"):
        vafx.load_eos_model(wrong)
    extra = tmp_path / "extra.bin"
    extra.write_bytes(data + b"\x00" * 8)
    with pytest.raises(vafx.DataFileError, match="bytes left"):
        vafx.load_eos_model(extra)
    with pytest.raises(vafx.DataFileError, match=r"blend\.bin: truncated"):
        (tmp_path / "blend.bin").write_bytes(
            (sfm_dir / "expression_blendshapes_3448.bin").read_bytes()[:999]
        )
        vafx.read_eos_blendshapes(tmp_path / "blend.bin")


def test_eos_blendshapes_of_another_size_are_refused(sfm_dir, tmp_path):
    small = vafx.make_model(mean=np.zeros((4, 3)), faces=[[0, 1, 2], [1, 2, 3]])
    path = tmp_path / "small.bin"
    vafx.write_eos_model(path, small, version=1)
    with pytest.raises(vafx.DataFileError, match="blendshapes have 3448 vertices, the model 4"):
        vafx.load_eos_model(path, blendshapes=sfm_dir / "expression_blendshapes_3448.bin")


# ------------------------------------------------------------- cache format


@pytest.mark.parametrize("which", ["ict_model", "sfm_model"])
def test_cache_round_trip_is_exact(which, request, tmp_path):
    m = request.getfixturevalue(which)
    path = vafx.save_model(tmp_path / "m.npz", m)
    back = vafx.load_model_path(path)
    assert tree_allclose(back, m, rtol=0, atol=0)
    assert back.expression_names == m.expression_names and back.name == m.name


def test_cache_bad_files(sfm_model, tmp_path):
    path = vafx.save_model(tmp_path / "m.npz", sfm_model)
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 3])
    with pytest.raises(vafx.DataFileError, match="cut.npz"):
        vafx.load_model_file(tmp_path / "cut.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(vafx.DataFileError, match="not a vafx model file"):
        vafx.load_model_file(tmp_path / "plain.npz")


# ------------------------------------------------------- the model pytree


def test_model_is_a_pytree_through_jit_and_vmap(sfm_model):
    m = sfm_model
    leaves, tree = jax.tree_util.tree_flatten(m)
    assert tree_allclose(jax.tree_util.tree_unflatten(tree, leaves), m)
    alphas = jax.random.normal(jax.random.key(1), (4, 63))
    f = jax.jit(jax.vmap(vafx.model_shape, in_axes=(None, 0)))
    batch = np.asarray(f(m, alphas))
    for k in range(4):
        np.testing.assert_allclose(batch[k], np.asarray(vafx.model_shape(m, alphas[k])),
                                   rtol=1e-5, atol=1e-3)  # fmt: skip


def test_model_shape_adds_named_expressions(ict_model):
    m = ict_model
    w = jnp.zeros(53).at[m.expression_index("jawOpen")].set(0.5)
    v = vafx.model_shape(m, None, w)
    np.testing.assert_allclose(np.asarray(v - m.mean), 0.5 * np.asarray(m.expression("jawOpen")),
                               atol=1e-6)  # fmt: skip
    with pytest.raises(KeyError, match="no expression 'grin'"):
        m.expression_index("grin")
    with pytest.raises(ValueError, match=r"shape \(100,\)"):
        vafx.model_shape(m, jnp.zeros(3))


def test_triangulate_splits_quads_in_order():
    tris, src = vafx.triangulate(np.array([[0, 1, 2, 3], [4, 5, 6, -1]]))
    np.testing.assert_array_equal(tris, [[0, 1, 2], [0, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(src, [0, 0, 1])


def test_check_model_rejects_bad_geometry():
    with pytest.raises(ValueError, match="non-finite coordinate at vertex 1"):
        vafx.make_model(mean=[[0, 0, 0], [np.nan, 0, 0], [1, 1, 1]], faces=[[0, 1, 2]])
    with pytest.raises(ValueError, match="face indices must lie in"):
        vafx.make_model(mean=np.zeros((3, 3)), faces=[[0, 1, 3]])
    with pytest.raises(ValueError, match="expression names"):
        vafx.make_model(mean=np.zeros((3, 3)), faces=[[0, 1, 2]],
                        expression_basis=np.zeros((2, 3, 3)), expression_names=["a"])  # fmt: skip


def test_landmark_positions_mark_missing_points(sfm_model):
    pos, valid = vafx.landmark_positions(sfm_model, sfm_model.mean)
    assert pos.shape == (68, 3) and int(valid.sum()) == 50
    np.testing.assert_array_equal(np.asarray(pos[30]), np.asarray(sfm_model.mean[114]))


# ------------------------------------------------------------ resolution


def test_load_by_name_through_vafx_data(monkeypatch, ict_dir, sfm_dir):
    monkeypatch.setenv("VAFX_DATA", str(sfm_dir.parent))
    assert vafx.load_model("sfm").num_vertices == 3448
    assert vafx.load_model("ict").num_vertices == 26719


def test_missing_model_says_how_to_get_it():
    with pytest.raises(vafx.ModelNotFoundError, match="vafx fetch-model sfm"):
        vafx.load_model("sfm")
