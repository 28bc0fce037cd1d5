"""Section 4.4 protocol: person-independent folds, augmentation only from training people."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vafx._evaluate._regressor import (
    cross_validate,
    format_tables,
    load_dataset,
    person_folds,
    predict,
)


def test_folds_are_person_disjoint_and_cover_everyone():
    subjects = np.repeat([f"p{i}" for i in range(7)], 3)
    folds = person_folds(subjects, 3, seed=1)
    allp = np.concatenate(folds)
    assert sorted(allp.tolist()) == sorted(set(subjects.tolist()))
    assert len(allp) == len(set(allp.tolist()))
    with pytest.raises(ValueError):
        person_folds(subjects, 8)


def planted(n_people=6, per=20, seed=0, size=16):
    """Images whose brightness encodes valence and whose left-right contrast encodes arousal."""
    rng = np.random.default_rng(seed)
    va = rng.uniform(-0.9, 0.9, (n_people * per, 2)).astype(np.float32)
    img = np.zeros((len(va), size, size, 3), np.float32)
    img += (0.5 + 0.4 * va[:, 0])[:, None, None, None]
    img[:, :, : size // 2] += 0.2 * va[:, 1][:, None, None, None]
    img += rng.normal(0, 0.02, img.shape).astype(np.float32)
    subjects = np.repeat([f"p{i}" for i in range(n_people)], per)
    return img, va, subjects


def test_cross_validation_learns_and_augmentation_respects_folds(tmp_path):
    img, va, subj = planted()
    aug = planted(seed=1)
    aug_subj = aug[2].copy()
    res = cross_validate(img, va, subj, augmented=(aug[0], aug[1], aug_subj), folds=3, epochs=30,
                         batch=16, lr=3e-3, checkpoint_dir=tmp_path / "ck")  # fmt: skip
    assert len(res["without"]) == 3 and len(res["with"]) == 3
    mean_ccc = np.mean([m["ccc_valence"] for m in res["without"]])
    assert mean_ccc > 0.5, res["without"]
    # each fold's augmented training set excludes the test people: 2/3 of the augmented images
    for m, test_people in zip(res["with"], res["folds"]):
        n_aug = int((~np.isin(aug_subj, test_people)).sum())
        n_own = int((~np.isin(subj, test_people)).sum())
        assert m["train_images"] == n_own + n_aug
    assert "mean" in format_tables(res)
    again = cross_validate(img, va, subj, folds=3, epochs=30, batch=16, lr=3e-3,
                           checkpoint_dir=tmp_path / "ck")  # fmt: skip
    assert again["without"] == res["without"]  # loaded from the checkpoints


def test_load_dataset_scales_afew_labels(tmp_path):
    import imageio.v3 as iio

    for i in range(3):
        iio.imwrite(tmp_path / f"{i}.png", np.full((20, 20, 3), 60 * i, np.uint8))
    (tmp_path / "d.csv").write_text(
        "image,subject,valence,arousal\n0.png,a,10,-5\n1.png,b,0,2\n2.png,a,-10,0\n"
    )
    x, va, s = load_dataset(tmp_path / "d.csv", size=8)
    assert (
        x.shape == (3, 8, 8, 3) and np.allclose(va[0], [1.0, -0.5]) and list(s) == ["a", "b", "a"]
    )
    np.testing.assert_allclose(x[:, 0, 0, 0], [0.0, 60 / 255, 120 / 255], atol=1e-6)


def _conv_same_stride2(x, w, b):
    """A numpy reference: NHWC convolution, stride 2, 'SAME' padding (TensorFlow's rule)."""
    n, h, wd, _ = x.shape
    kh, kw, _, co = w.shape
    oh, ow = -(-h // 2), -(-wd // 2)
    ph, pw = max((oh - 1) * 2 + kh - h, 0), max((ow - 1) * 2 + kw - wd, 0)
    xp = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    out = np.zeros((n, oh, ow, co))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, 2 * i : 2 * i + kh, 2 * j : 2 * j + kw, :]
            out[:, i, j] = np.einsum("nhwc,hwco->no", patch, w)
    return np.maximum(out + b, 0)


def test_predict_is_the_small_convnet_it_describes():
    rng = np.random.default_rng(3)
    shapes = [(3, 3, 3, 4), (3, 3, 4, 5)]
    params = dict(
        conv=[dict(w=rng.normal(size=s) * 0.5, b=rng.normal(size=s[-1]) * 0.1) for s in shapes],
        head=dict(w=rng.normal(size=(5, 2)), b=rng.normal(size=2) * 0.1),
    )
    x = rng.uniform(size=(2, 9, 7, 3))
    want = x
    for layer in params["conv"]:
        want = _conv_same_stride2(want, layer["w"], layer["b"])
    want = np.tanh(want.mean(axis=(1, 2)) @ params["head"]["w"] + params["head"]["b"])
    as32 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
    got = np.asarray(predict(as32, jnp.asarray(x, jnp.float32)))
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_cli_augmentation(tmp_path):
    import subprocess
    import sys

    import imageio.v3 as iio

    img, va, subj = planted(n_people=4, per=6, size=16)
    lines = ["image,subject,valence,arousal"]
    for i, (im, v, s) in enumerate(zip(img, va, subj)):
        iio.imwrite(tmp_path / f"{i}.png", (np.clip(im, 0, 1) * 255).astype(np.uint8))
        lines.append(f"{i}.png,{s},{v[0]:.4f},{v[1]:.4f}")
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    r = subprocess.run(
        [sys.executable, "-m", "vafx", "evaluate", "augmentation", "d.csv", "--folds", "2", "--epochs", "2",
         "--size", "16", "--json", "r.json", "--checkpoints", "ck"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "without augmentation" in r.stdout and (tmp_path / "r.json").exists()
    assert len(list((tmp_path / "ck").glob("*.json"))) == 2


def test_render_gallery_faces(tmp_path, tiny_model):
    import vafx
    from vafx._evaluate._face_images import render_gallery_faces

    g = vafx.synthesize_gallery(tmp_path / "g", tiny_model, vafx.SynthConfig(subjects=2, frames=4, region=None,
                                expressions=("happiness", "sleepy")))  # fmt: skip
    csv_path = render_gallery_faces(g, tiny_model, tmp_path / "faces", size=32, per_sequence=2)
    x, va, subj = load_dataset(csv_path, size=16)
    assert len(x) == 2 * 2 * 2 and set(subj) == set(g.subjects)
    assert (x.std(axis=(1, 2, 3)) > 0).all()  # a rendered face, not a blank image
    assert len(list((tmp_path / "faces" / "landmarks").glob("*.pts"))) == len(x)
