"""The gallery store, the mesh importer and the synthetic generator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import trimesh
from hypothesis import given
from hypothesis import strategies as st

import vafx
from vafx._errors import DataFileError
from vafx._gallery._import import ImportProblems, import_meshes, neutral_frame, read_annotations
from vafx._gallery._store import (
    GalleryError,
    GalleryWriter,
    SequenceData,
    open_gallery,
    write_gallery,
)
from vafx._gallery._synth import SynthConfig, synthesize_gallery
from vafx._model._template import Template, template_from_model


@pytest.fixture(scope="module")
def template():
    s = trimesh.creation.icosphere(subdivisions=1, radius=10.0)
    return Template(s.vertices.astype(np.float32), s.faces.astype(np.int32), "mm")


def make_meshes(root: Path, template: Template, n_subjects=2, n_seq=2, n_frames=5, seed=0):
    """Write per-frame meshes with trimesh (OBJ and PLY) and an annotation CSV."""
    rng = np.random.default_rng(seed)
    rows, truth = ["subject,sequence,frame,valence,arousal,label"], {}
    for s in range(n_subjects):
        base = template.vertices + rng.normal(0, 0.5, template.vertices.shape).astype(np.float32)
        for q in range(n_seq):
            for f in range(n_frames):
                v = base + (f > 0) * rng.normal(0, 0.2, base.shape).astype(np.float32)
                va = (0.0, 0.0) if f == 0 else tuple(np.round(rng.uniform(-1, 1, 2), 4))
                ext = ".obj" if (s + f) % 2 == 0 else ".ply"
                path = root / f"s{s}" / f"q{q}" / f"{f}{ext}"
                path.parent.mkdir(parents=True, exist_ok=True)
                trimesh.Trimesh(v, template.faces, process=False).export(path)
                rows.append(f"s{s},q{q},{f},{va[0]},{va[1]},{'smile' if f % 2 else 'frown'}")
                truth[(f"s{s}", f"q{q}", f)] = (v, va)
    csv = root / "annotations.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv, truth


def test_import_round_trip(tmp_path, template):
    csv, truth = make_meshes(tmp_path / "meshes", template)
    g = import_meshes(tmp_path / "g", tmp_path / "meshes", csv, template)
    assert g.num_sequences == 4 and g.num_frames == 4 * 4
    for rec in g.index:
        key = (g.subjects[rec["subject"]], f"q{rec['sequence'] % 2}", int(rec["frame_number"]))
        v, va = truth[key]
        np.testing.assert_allclose(g.vertices(rec)[0], v, atol=1e-5)  # trimesh writes 8 digits
        np.testing.assert_allclose([rec["valence"], rec["arousal"]], va, atol=1e-6)
        assert rec["neutral"] == (key[2] == 0)
        if not rec["neutral"]:
            assert g.label_names[rec["label"]] == ("smile" if key[2] % 2 else "frown")


def test_import_is_idempotent_and_refuses_other_input(tmp_path, template):
    csv, _ = make_meshes(tmp_path / "meshes", template)
    import_meshes(tmp_path / "g", tmp_path / "meshes", csv, template)
    before = (tmp_path / "g" / "gallery.json").read_bytes()
    import_meshes(tmp_path / "g", tmp_path / "meshes", csv, template)
    assert (tmp_path / "g" / "gallery.json").read_bytes() == before
    csv.write_text(csv.read_text().replace("0.0,0.0", "0.1,0.0", 1))
    with pytest.raises(GalleryError, match="other input"):
        import_meshes(tmp_path / "g", tmp_path / "meshes", csv, template)


KILLER = textwrap.dedent(
    """
    import os, signal, sys, numpy as np
    from vafx._gallery._import import import_meshes
    from vafx._model._template import Template
    t = np.load(sys.argv[4])
    template = Template(t["v"], t["f"], "mm")
    stop = int(sys.argv[5])
    def progress(done, total):
        if done == stop:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally blocks
    import_meshes(sys.argv[1], sys.argv[2], sys.argv[3], template, budget_bytes=1500,
                  progress=progress)
    """
)


def test_killed_import_resumes_to_the_same_manifest(tmp_path, template):
    csv, _ = make_meshes(tmp_path / "meshes", template, n_subjects=3, n_seq=3)
    np.savez(tmp_path / "t.npz", v=template.vertices, f=template.faces)
    whole = import_meshes(tmp_path / "whole", tmp_path / "meshes", csv, template, budget_bytes=1500)
    assert len(whole.manifest["checkpoints"]) > 3  # small budget: many checkpoints
    args = [str(tmp_path / "killed"), str(tmp_path / "meshes"), str(csv), str(tmp_path / "t.npz")]
    r = subprocess.run([sys.executable, "-c", KILLER, *args, "5"], cwd=tmp_path)
    assert r.returncode == -9
    assert not (tmp_path / "killed" / "gallery.json").exists()
    journal = json.loads((tmp_path / "killed" / "journal.json").read_text())
    assert 0 < len(journal["sequences"]) < 9
    # an orphan from a flush cut short: not in the journal, must be removed
    orphan = tmp_path / "killed" / "bins" / "b000" / "c00099.npy"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    np.save(orphan, np.zeros((1, 42, 3), np.float32))
    with pytest.raises(GalleryError, match="unfinished"):
        open_gallery(tmp_path / "killed")
    resumed = import_meshes(
        tmp_path / "killed", tmp_path / "meshes", csv, template, budget_bytes=1500
    )
    assert not orphan.exists()
    assert (tmp_path / "killed" / "gallery.json").read_bytes() == (
        tmp_path / "whole" / "gallery.json"
    ).read_bytes()
    assert resumed.index.tobytes() == whole.index.tobytes()
    resumed.verify()


def test_import_reports_every_problem_with_file_and_line(tmp_path, template):
    csv, _ = make_meshes(tmp_path / "meshes", template, n_subjects=2, n_seq=1, n_frames=4)
    lines = csv.read_text().splitlines()
    lines[2] = lines[2].replace(lines[2].split(",")[3], "1.5")  # V-A out of range, line 3
    lines.append(lines[4])  # a repeated frame
    lines.append("s9,q0,0,0,0,x")  # a missing mesh file (and a one-frame sequence)
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(ImportProblems) as e:
        import_meshes(tmp_path / "g", tmp_path / "meshes", csv, template)
    text = str(e.value)
    assert f"{csv}:3: V-A" in text
    assert f"{csv}:{len(lines) - 1}: frame" in text and "repeats line 5" in text
    assert "has one frame" in text
    assert not (tmp_path / "g" / "gallery.json").exists()


def test_bad_meshes_stop_or_are_skipped_and_listed(tmp_path, template):
    csv, _ = make_meshes(tmp_path / "meshes", template, n_subjects=2, n_seq=1, n_frames=4)
    bad_nan = tmp_path / "meshes" / "s0" / "q0" / "2.obj"
    v = template.vertices.copy()
    v[7, 1] = np.nan
    trimesh.Trimesh(v, template.faces, process=False).export(bad_nan)
    bad_topo = tmp_path / "meshes" / "s1" / "q0" / "2.ply"
    trimesh.Trimesh(template.vertices, template.faces[:, ::-1], process=False).export(bad_topo)
    with pytest.raises(DataFileError, match="vertex 7 has a NaN"):
        import_meshes(tmp_path / "g", tmp_path / "meshes", csv, template)
    g = import_meshes(tmp_path / "g2", tmp_path / "meshes", csv, template, skip_bad=True)
    assert g.num_frames == 2 * 3 - 2
    listed = (tmp_path / "g2" / "import_problems.txt").read_text()
    assert str(bad_nan) in listed and "topology mismatch" in listed and f"{csv}:" in listed


def test_wrong_vertex_count_and_corrupt_file(tmp_path, template):
    csv, _ = make_meshes(tmp_path / "meshes", template, n_subjects=1, n_seq=1, n_frames=3)
    small = trimesh.creation.icosphere(subdivisions=0)
    small.export(tmp_path / "meshes" / "s0" / "q0" / "1.ply")
    with pytest.raises(DataFileError, match="has 12 vertices, the template 42"):
        import_meshes(tmp_path / "g", tmp_path / "meshes", csv, template)
    (tmp_path / "meshes" / "s0" / "q0" / "1.ply").write_bytes(b"ply\nformat garbage\n")
    with pytest.raises(DataFileError, match="1.ply"):
        import_meshes(tmp_path / "g", tmp_path / "meshes", csv, template)


def test_neutral_rule(tmp_path):
    csv = tmp_path / "a.csv"
    csv.write_text(
        "subject,sequence,frame,valence,arousal,neutral\n"
        "a,x,1,0.3,0.1,\na,x,2,0.05,0.0,\na,x,3,0.6,0.6,\na,x,4,0.0,0.0,\n"
        "a,x,5,0.9,0.9,\na,x,6,0.9,0.9,\n"
        "b,y,1,0.2,0.2,\nb,y,2,0.5,0.5,yes\n"
    )
    rows, problems = read_annotations(csv)
    assert not problems
    x = sorted([r for r in rows if r.subject == "a"], key=lambda r: r.frame)
    assert x[neutral_frame(x)].frame == 2  # nearest (0, 0) in the first third (frames 1-2)
    y = [r for r in rows if r.subject == "b"]
    assert y[neutral_frame(y)].frame == 2  # the explicit flag wins


def test_missing_columns_and_unreadable_csv(tmp_path):
    csv = tmp_path / "a.csv"
    csv.write_text("subject,frame,valence,arousal\n")
    with pytest.raises(DataFileError, match=r"missing column\(s\) \['sequence'\]"):
        read_annotations(csv)
    with pytest.raises(DataFileError, match="cannot read"):
        read_annotations(tmp_path / "nope.csv")


sequences_strategy = st.lists(
    st.tuples(
        st.integers(0, 3),  # subject
        hnp.arrays(
            np.float32,
            st.tuples(st.integers(1, 6), st.just(2)),
            elements=st.floats(-1, 1, width=32),
        ),  # fmt: skip
    ),
    min_size=1,
    max_size=8,
)


@given(seqs=sequences_strategy)
def test_bins_counts_and_splits_are_consistent(tmp_path_factory, seqs):
    tmp = tmp_path_factory.mktemp("g")
    s = trimesh.creation.icosphere(subdivisions=0)
    tpl = Template(s.vertices.astype(np.float32), s.faces.astype(np.int32))
    rng = np.random.default_rng(len(seqs))
    data = []
    for i, (subj, va) in enumerate(seqs):
        frames = tpl.vertices + rng.normal(0, 1, (len(va), 12, 3)).astype(np.float32)
        data.append(SequenceData(f"p{subj}", f"q{i}", tpl.vertices, frames, va))
    g = write_gallery(tmp, tpl, data, budget_bytes=600)
    grid = vafx.VAGrid(10)
    e = g.expression_frames
    np.testing.assert_array_equal(e["bin"], np.asarray(grid.bin_index(g.va())))
    assert g.counts().sum() == g.num_frames == sum(len(v) for _, v in seqs)
    for b in np.nonzero(g.counts())[0]:
        recs = g.frames_of_bin(int(b))
        d = g.bin_deltas(int(b))
        assert len(d) == len(recs) and (recs["bin"] == b).all()
        want = np.concatenate(
            [data[r["sequence"]].frames[r["frame_number"] - 1][None] for r in recs]
        )
        np.testing.assert_allclose(d, want - tpl.vertices, atol=1e-5)
    if len(g.subjects) >= 2:
        train, test = g.split(0.3, seed=len(seqs))
        assert set(train).isdisjoint(test) and len(train) + len(test) == len(g.subjects)
        folds = g.folds(2)
        assert sorted(np.concatenate(folds).tolist()) == list(range(len(g.subjects)))


def test_writer_rejects_bad_arrays(tmp_path, template):
    n = template.num_vertices
    ok = np.zeros((2, n, 3), np.float32)
    cases = [
        (dict(frames=np.zeros((2, n - 1, 3))), "template needs"),
        (dict(frames=np.full((2, n, 3), np.nan)), "NaN"),
        (dict(va=np.array([[0, 0], [0, 1.5]])), "outside"),
        (dict(va=np.zeros((3, 2))), "3 V-A labels"),
    ]
    for i, (kw, match) in enumerate(cases):
        args = dict(
            subject="a", name="x", neutral=template.vertices, frames=ok, va=np.zeros((2, 2))
        )
        args.update(kw)
        with GalleryWriter(tmp_path / f"g{i}", template, "t") as w:
            with pytest.raises(GalleryError, match=match):
                w.add(SequenceData(**args), where="seq.npz")


def test_corrupt_chunk_is_named(tmp_path, template):
    seq = SequenceData(
        "a", "x", template.vertices, template.vertices[None] + 1, np.array([[0.5, 0.5]])
    )
    g = write_gallery(tmp_path / "g", template, [seq])
    chunk = tmp_path / "g" / "bins" / f"b{g.index['bin'][1]:03d}" / "c00000.npy"
    data = bytearray(chunk.read_bytes())
    data[-1] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with pytest.raises(DataFileError, match="c00000.npy.*corrupt"):
        open_gallery(tmp_path / "g", verify=True)
    with pytest.raises(DataFileError, match="not found"):
        open_gallery(tmp_path / "elsewhere")


def test_template_from_model_region(tiny_model):
    t = template_from_model(tiny_model, "face")
    assert t.num_vertices == 21 and (t.faces < 21).all()
    np.testing.assert_array_equal(t.vertices, np.asarray(tiny_model.mean)[t.vertex_ids])
    with pytest.raises(ValueError, match="no region 'mouth'"):
        template_from_model(tiny_model, "mouth")


def test_synthetic_gallery_is_deterministic_and_labelled(tmp_path, tiny_model):
    cfg = SynthConfig(subjects=2, frames=6, region=None)
    g = synthesize_gallery(tmp_path / "a", tiny_model, cfg, budget_bytes=4000)
    synthesize_gallery(tmp_path / "b", tiny_model, cfg, budget_bytes=4000)
    assert (tmp_path / "a" / "gallery.json").read_bytes() == (
        tmp_path / "b" / "gallery.json"
    ).read_bytes()
    k = len(vafx._gallery._facs.ALL)  # basic, compound, low-arousal and Russell's affect words
    assert k == 42 and g.num_sequences == 2 * k and g.num_frames == 2 * k * 6
    e = g.expression_frames
    assert (np.abs(g.va()) <= 1).all() and (e["label"] >= 0).all()
    assert set(g.label_names) >= {"happiness", "sleepy", "happily surprised", "contempt", "excited"}
    # apex frames: high intensity, V-A in the prototype's quadrant for the basic emotions
    apex = g.apex_frames()
    assert len(apex) == g.num_sequences and (apex["intensity"] > 0.4).all()
    happy = apex[np.array([g.label_names[i] == "happiness" for i in apex["label"]])]
    assert (happy["valence"] > 0.3).all()
    sleepy = apex[np.array([g.label_names[i] == "sleepy" for i in apex["label"]])]
    assert (sleepy["arousal"] < -0.3).all()
    # a different seed makes different data
    other = synthesize_gallery(
        tmp_path / "c", tiny_model, SynthConfig(subjects=2, frames=6, region=None, seed=1)
    )
    assert not np.array_equal(other.index["valence"], g.index["valence"])


def test_synthetic_with_ict(tmp_path, ict_model):
    g = synthesize_gallery(
        tmp_path / "g",
        ict_model,
        SynthConfig(subjects=1, frames=4, expressions=("happiness", "sleepy")),
    )
    assert g.template.num_vertices == 9409 and g.num_frames == 8
    d = g.bin_deltas(int(g.apex_frames()[0]["bin"]))
    assert np.isfinite(d).all() and np.abs(d).max() > 0.05  # centimetres: visible motion


def test_synthetic_with_sfm(tmp_path, sfm_model):
    g = synthesize_gallery(tmp_path / "g", sfm_model, SynthConfig(subjects=2, frames=3))
    assert g.num_sequences == 12 and set(g.label_names) == set(vafx._gallery._facs.SFM_EXPRESSIONS)


def test_cli_gallery_stats(tmp_path, template):
    seqs = [
        SequenceData(
            "a",
            f"x{i}",
            template.vertices,
            template.vertices[None] + i,
            np.array([[0.25 * i, -0.5]]),
        )
        for i in range(1, 4)
    ]
    write_gallery(tmp_path / "g", template, seqs)
    r = subprocess.run(
        [sys.executable, "-m", "vafx", "gallery", "stats", str(tmp_path / "g"),
         "--png", str(tmp_path / "h.png"), "--csv", str(tmp_path / "t.csv"), "--verify"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "3 frames in 3 bins" in r.stdout
    assert (tmp_path / "h.png").stat().st_size > 100
    assert len((tmp_path / "t.csv").read_text().splitlines()) == 101
    r = subprocess.run(
        [sys.executable, "-m", "vafx", "gallery", "stats", str(tmp_path / "nope")],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 2 and "gallery.json" in r.stderr and "Traceback" not in r.stderr


def test_cli_gallery_import(tmp_path, template):
    csv, _ = make_meshes(tmp_path / "meshes", template, n_subjects=1, n_seq=2, n_frames=3)
    trimesh.Trimesh(template.vertices, template.faces, process=False).export(tmp_path / "t.obj")
    cmd = [sys.executable, "-m", "vafx", "gallery", "import", str(tmp_path / "meshes"),
           "--annotations", str(csv), "-o", str(tmp_path / "g"), "--template", str(tmp_path / "t.obj")]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "4 frames, 2 sequences" in r.stdout
    (tmp_path / "meshes" / "s0" / "q1" / "1.ply").write_text("garbage")
    r = subprocess.run(cmd[:-4] + ["-o", str(tmp_path / "g2"), "--template", str(tmp_path / "t.obj")],
                       capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert r.returncode == 2 and "1.ply" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(cmd[:-4] + ["-o", str(tmp_path / "g3"), "--template", str(tmp_path / "t.obj"), "--skip-bad"],
                       capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0 and "1 problem(s) skipped" in r.stderr
