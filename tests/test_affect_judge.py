"""Affect judges a user plugs in: loading, face crops, the circumplex projection, the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import vafx
from vafx._evaluate._affect_judge import (
    CLASS_VA,
    Judge,
    concordance,
    face_crop,
    judge_report,
    load_judge,
    project_classes,
)
from vafx._evaluate._judges import _judge_rows

STAND_IN = '''
import numpy as np

face_size = 32


def judge(faces):
    """Valence from the red channel, arousal from the green one (a stand-in, not a model)."""
    f = faces.astype(np.float64) / 255
    return np.stack([2 * f[..., 0].mean((1, 2)) - 1, 2 * f[..., 1].mean((1, 2)) - 1], -1)


judge.face_size = face_size


def classes(faces):
    """'happy' as bright as the face, the rest 'sad'."""
    m = faces.astype(np.float64).mean((1, 2, 3)) / 255
    return {"happy": m, "sad": 1 - m}


def broken(faces):
    return np.zeros((len(faces), 3))


raise_on_import = False
'''


def test_a_class_judge_is_projected_onto_the_circumplex():
    probs = {"happy": np.array([1.0, 0.5, 0.0]), "Sad": np.array([0.0, 0.5, 2.0])}
    va = project_classes(probs)
    np.testing.assert_allclose(va[0], CLASS_VA["happiness"])
    np.testing.assert_allclose(va[1], (np.array(CLASS_VA["happiness"]) + CLASS_VA["sadness"]) / 2)
    np.testing.assert_allclose(va[2], CLASS_VA["sadness"])  # renormalized
    with pytest.raises(ValueError, match="no V-A place.*'elated'"):
        project_classes({"elated": np.ones(2)})
    mine = project_classes({"elated": np.ones(1)}, places={"elated": (0.9, 0.9)})
    np.testing.assert_allclose(mine, [[0.9, 0.9]])


@given(
    x=st.lists(st.floats(-1, 1), min_size=3, max_size=40),
    a=st.floats(0.2, 3),
    b=st.floats(-1, 1),
)
def test_concordance_is_lins_formula(x, a, b):
    """Against Lin (1989) written with numpy's correlation: 2 r sx sy / (sx^2 + sy^2 + dm^2)."""
    x = np.asarray(x)
    if x.std() < 1e-3:
        return
    y = a * x + b + 0.1 * np.cos(7 * x)
    r = np.corrcoef(x, y)[0, 1]
    ref = 2 * r * x.std() * y.std() / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)
    assert concordance(x, y) == pytest.approx(ref, rel=1e-9, abs=1e-12)
    assert concordance(x, x) == pytest.approx(1.0)
    assert abs(concordance(x, y)) <= abs(r) + 1e-12  # concordance never exceeds correlation


def test_report_is_the_regression_of_the_judged_change_on_the_target():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    target = rng.uniform(-1, 1, (40, 2))
    photo = rng.uniform(-0.3, 0.3, (40, 2))
    judged = photo + target * [0.6, 0.2] + rng.normal(0, 0.1, (40, 2))
    rep = judge_report(target, judged, photo)
    for k, name in enumerate(("valence", "arousal")):
        fit = scipy_stats.linregress(target[:, k], judged[:, k] - photo[:, k])
        assert rep[name]["slope"] == pytest.approx(fit.slope, rel=1e-9)
        assert rep[name]["r"] == pytest.approx(fit.rvalue, rel=1e-9)
        assert rep[name]["ccc"] == pytest.approx(concordance(target[:, k], judged[:, k]))
    assert rep["valence"]["slope"] == pytest.approx(0.6, abs=0.06) and rep["n"] == 40


def test_face_crop_is_the_square_around_the_landmarks():
    """An image whose pixels hold their own coordinates: the crop's centre is the landmarks'
    box centre, raised for the forehead, and its side 1.3 times the box's."""
    h, w = 200, 240
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x, y, np.zeros_like(x)], -1).astype(np.uint8)
    pts = np.stack(np.meshgrid(np.linspace(100, 160, 17), np.linspace(80, 140, 4)), -1)
    pts = pts.reshape(-1, 2)[:68]
    crop = face_crop(img, pts, 78).astype(float)  # side 78 px: one crop pixel per image pixel
    assert crop.shape == (78, 78, 3)
    assert crop[39, :, 0].mean() == pytest.approx(130, abs=1)  # x centre
    assert crop[:, 39, 1].mean() == pytest.approx(110 - 6, abs=1)  # y centre, 6 px higher
    assert crop[0, 0, 0] == pytest.approx(130 - 39, abs=1)
    # past the image's edge: the edge repeated, never a wrap or a zero
    edge = face_crop(img, pts - [120, 0], 78).astype(float)  # 29 columns left of x = 0
    assert edge[:, :26, 0].max() <= 1 and edge[:, 40, 0].mean() == pytest.approx(11, abs=1)


def test_judges_load_from_a_file_or_fail_clearly(tmp_path):
    f = tmp_path / "stand_in.py"
    f.write_text(STAND_IN)
    faces = np.zeros((3, 32, 32, 3), np.uint8)
    faces[1] = 255
    j = load_judge(f"{f}:judge")
    assert j.face_size == 32
    va, probs = j(faces)
    np.testing.assert_allclose(va, [[-1, -1], [1, 1], [-1, -1]])
    assert probs is None
    va, probs = load_judge(f"{f}:classes")(faces)
    np.testing.assert_allclose(va[1], CLASS_VA["happiness"])
    assert set(probs) == {"happy", "sad"}
    with pytest.raises(ValueError, match=r"expected float\[3, 2\]"):
        load_judge(f"{f}:broken")(faces)
    with pytest.raises(ValueError, match="has no 'nothing'"):
        load_judge(f"{f}:nothing")
    with pytest.raises(vafx.VafxError, match="judge file not found"):
        load_judge(f"{tmp_path / 'missing.py'}:judge")
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('no weights here')\n")
    with pytest.raises(vafx.VafxError, match=r"bad\.py.*RuntimeError: no weights here"):
        load_judge(f"{bad}:judge")
    with pytest.raises(vafx.VafxError, match="judge model not found"):
        load_judge(tmp_path / "model.onnx")
    (tmp_path / "model.onnx").write_bytes(b"")
    with pytest.raises(vafx.VafxError, match="needs this description"):
        load_judge(tmp_path / "model.onnx")
    with pytest.raises(ValueError, match="FILE.py:NAME"):
        load_judge("no_colon")


def test_rows_get_the_judged_va_and_the_category_shares():
    """Two photos, three outputs: the rows take their crops' judgements, the report the
    change against the photo's, and the categories the share of top classes that match."""

    def classes(faces):
        m = faces.astype(np.float64).mean((1, 2, 3)) / 255
        return {"happy": m, "sad": 1 - m}

    judge = Judge(classes, "stand-in")
    face = lambda v: np.full((4, 4, 3), v, np.uint8)  # noqa: E731
    rows = [
        dict(photo="a.png", valence=0.8, arousal=0.3, emotion="happiness"),
        dict(photo="a.png", valence=-0.7, arousal=-0.3, emotion="sadness"),
        dict(photo="b.png", valence=0.8, arousal=0.3, emotion="happiness"),
    ]
    crops = [(Path("a.png"), face(100)), (0, face(230)), (1, face(30)),
             (Path("b.png"), face(60)), (2, face(220))]  # fmt: skip
    rep = _judge_rows(judge, rows, crops)
    happy, sad = np.array(CLASS_VA["happiness"]), np.array(CLASS_VA["sadness"])
    m = 230 / 255
    np.testing.assert_allclose([rows[0]["judged_valence"], rows[0]["judged_arousal"]],
                               m * happy + (1 - m) * sad)  # fmt: skip
    assert rows[0]["judged_class"] == "happiness" and rows[1]["judged_class"] == "sadness"
    assert rows[2]["judged_class"] == "happiness" and rows[2]["photo_judged_class"] == "sadness"
    c = rep["categories"]
    assert c["n"] == 3 and c["outputs"] == 1.0
    # both photos are judged sad: the sad target was met before synthesis, no happy one
    assert c["photos"] == pytest.approx(1 / 3)
    assert c["per_category"]["happiness"] == dict(n=2, outputs=2, photos=0)
    assert rep["name"] == "stand-in" and rep["n"] == 3


def test_an_onnx_judge_is_run_as_its_description_says(tmp_path):
    """A stand-in ONNX model the test builds (mean grey level m -> logits (m, -m)), run
    by onnxruntime after vafx's preprocessing (grey, NCHW, scaled), softmaxed into classes."""
    onnx = pytest.importorskip("onnx", reason="the ONNX judge test builds its model with onnx")
    pytest.importorskip("onnxruntime", reason="ONNX judges run with onnxruntime (vafx[judge])")
    import json

    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=0),
        helper.make_node("Neg", ["m"], ["n"]),
        helper.make_node("Concat", ["m", "n"], ["y"], axis=1),
    ]
    graph = helper.make_graph(nodes, "stand_in", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "judge.onnx")
    (tmp_path / "judge.onnx.json").write_text(json.dumps(dict(
        size=8, channels="grey", layout="nchw", scale=1 / 255, mean=[0.0], std=[0.5],
        output=["happy", "sad"], softmax=True)))  # fmt: skip
    j = load_judge(tmp_path / "judge.onnx")
    assert j.face_size == 8
    faces = np.zeros((2, 8, 8, 3), np.uint8)
    faces[0] = (200, 100, 50)  # grey 200 * .299 + 100 * .587 + 50 * .114 = 124.2
    va, probs = j(faces)
    m = 124.2 / 255 / 0.5
    want = np.exp(m) / (np.exp(m) + np.exp(-m))
    np.testing.assert_allclose(probs["happy"], [want, 0.5], rtol=1e-5)
    np.testing.assert_allclose(va[1], (np.array(CLASS_VA["happiness"]) + CLASS_VA["sadness"]) / 2)
    (tmp_path / "judge.onnx.json").write_text(json.dumps(dict(size=8, channels="cmyk")))
    with pytest.raises(vafx.VafxError, match="channels: rgb, bgr or grey"):
        load_judge(tmp_path / "judge.onnx")
