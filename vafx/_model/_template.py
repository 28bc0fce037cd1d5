"""The template: the mesh every gallery frame and every bin model is in correspondence with.

A template is a morphable model's mean shape on one of its regions (ICT: the
face, 9,409 vertices) or any mesh a gallery was imported onto; its digest (the
triangles and the vertex count) identifies its topology, so that bin models
fitted on one template are checked against the face model synthesis uses.
The gallery store writes it; synthesis checks it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from pathlib import Path

import numpy as np

from .._errors import DataFileError
from .._io._atomic import atomic_path

__all__ = ["Template", "template_from_model"]


@dataclasses.dataclass(frozen=True)
class Template:
    """The mesh every gallery frame is in correspondence with.

    Attributes:
        vertices: float32[n, 3], the template's own shape (model units).
        faces: int32[f, 3], triangles.
        units: length unit (``"cm"``, ``"mm"``).
        model: name of the morphable model it comes from, or "".
        region: the model region it covers ("" for a whole mesh).
        vertex_ids: int32[n], the model vertex of each template vertex, or
            None when the template is not cut from a model.
    """

    vertices: np.ndarray
    faces: np.ndarray
    units: str = "cm"
    model: str = ""
    region: str = ""
    vertex_ids: np.ndarray | None = None

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])

    def digest(self) -> str:
        """SHA-256 of the triangles and vertex count: equal digests mean equal topology."""
        h = hashlib.sha256(np.int64(self.num_vertices).tobytes())
        h.update(np.ascontiguousarray(self.faces, np.int32).tobytes())
        return h.hexdigest()

    def save(self, path: Path) -> None:
        buf = io.BytesIO()
        arrays = dict(
            vertices=np.asarray(self.vertices, np.float32),
            faces=np.asarray(self.faces, np.int32),
            meta=np.frombuffer(
                json.dumps(dict(units=self.units, model=self.model, region=self.region)).encode(),
                np.uint8,
            ),
        )
        if self.vertex_ids is not None:
            arrays["vertex_ids"] = np.asarray(self.vertex_ids, np.int32)
        np.savez(buf, **arrays)
        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> Template:
        try:
            with np.load(path) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                return cls(
                    z["vertices"],
                    z["faces"],
                    meta["units"],
                    meta["model"],
                    meta["region"],
                    z["vertex_ids"] if "vertex_ids" in z else None,
                )
        except (OSError, KeyError, ValueError) as e:
            raise DataFileError(path, f"not a vafx gallery template ({e})") from None


def template_from_model(model, region: str | None = "face") -> Template:
    """The template of a morphable model, or of one of its regions.

    Args:
        model: a :class:`vafx.MorphableModel`.
        region: a key of ``model.regions`` (ICT: "face" has 9,409 vertices),
            or None for the whole mesh.

    Returns:
        A :class:`Template` with the model's mean shape on the region; its
        triangles are those whose three corners lie in the region.
    """
    mean = np.asarray(model.mean, np.float32)
    faces = np.asarray(model.faces, np.int32)
    if region is None:
        return Template(
            mean, faces, model.units, model.name, "", np.arange(len(mean), dtype=np.int32)
        )
    if region not in model.regions:
        raise ValueError(
            f"model {model.name!r} has no region {region!r}; it has {sorted(model.regions)}"
        )
    ids = np.unique(np.asarray(model.regions[region], np.int32))
    remap = -np.ones(len(mean), np.int64)
    remap[ids] = np.arange(len(ids))
    tri = remap[faces]
    tri = tri[(tri >= 0).all(axis=1)].astype(np.int32)
    return Template(mean[ids], tri, model.units, model.name, region, ids)
