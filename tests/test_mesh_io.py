"""Mesh export through trimesh: vertex order kept, UVs per corner preserved."""

import numpy as np
import pytest
import trimesh

import vafx


@pytest.mark.parametrize("suffix", [".obj", ".ply"])
def test_ict_export_keeps_vertex_order_and_uvs(ict_model, tmp_path, suffix):
    m = ict_model
    path = vafx.export_mesh(tmp_path / f"face{suffix}", m.mean, m.faces, m.uv, m.faces_uv)
    back = trimesh.load(path, process=False, maintain_order=True)
    n = m.num_vertices
    assert back.vertices.shape[0] >= n  # seam vertices are appended
    np.testing.assert_allclose(back.vertices[:n], np.asarray(m.mean), atol=1e-6)
    np.testing.assert_array_equal(back.faces.shape, m.faces.shape)
    np.testing.assert_allclose(back.vertices[back.faces], np.asarray(m.mean)[np.asarray(m.faces)],
                               atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(back.visual.uv[back.faces],
                               np.asarray(m.uv)[np.asarray(m.faces_uv)], atol=1e-6)  # fmt: skip


def test_export_without_uv_and_bad_input(tmp_path):
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float)
    p = vafx.export_mesh(tmp_path / "t.obj", v, [[0, 1, 2]])
    np.testing.assert_allclose(trimesh.load(p, process=False).vertices, v)
    with pytest.raises(ValueError, match="NaN"):
        vafx.export_mesh(tmp_path / "n.obj", v * np.nan, [[0, 1, 2]])
    with pytest.raises(ValueError, match="mesh format"):
        vafx.export_mesh(tmp_path / "t.stl", v, [[0, 1, 2]])
    assert not (tmp_path / "n.obj").exists()
