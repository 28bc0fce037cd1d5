"""The gallery store: V-A-labelled 4D face sequences on disk, out of core.

Layout of a gallery folder::

    gallery.json            manifest, written last: format version, grid,
                            counts, names, every data file with its SHA-256
    template.npz            the template mesh (vertices, faces, vertex ids)
    index.npy               one record per frame (see INDEX_DTYPE)
    neutrals/n00000.npy     float32[s, n, 3], neutral frames of the sequences
                            committed at checkpoint 0, 1, ...
    bins/b042/c00000.npy    float32[m, n, 3], difference vectors
                            d = frame - neutral of the frames of bin 42
                            committed at checkpoint 0, 1, ...
    journal.json            commit log of an import (kept for resuming)

Frames are buffered per V-A bin and written in checkpoints: whenever the
buffers hold ``budget_bytes``, every bin's buffer becomes one chunk file, then
the checkpoint's neutrals and index part, then the journal entry that commits
them (every file atomically). A killed import loses at most the uncommitted
buffer; on restart, files that no journal entry names are removed and the
import continues after the last committed sequence. Checkpoint boundaries
depend only on the input and the budget, so a resumed import writes the same
files, and the same manifest, as an uninterrupted one.

Reading a bin's difference matrix memory-maps its chunks; no step loads the
whole gallery.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .._errors import DataFileError, VafxError
from .._io._atomic import atomic_path, atomic_write_text
from .._model._template import Template
from .._va_space import VAGrid
from .._version import __version__

FORMAT = "vafx-gallery"
FORMAT_VERSION = 1

#: One record per frame of the gallery (neutral frames included).
INDEX_DTYPE = np.dtype(
    [
        ("frame", "<i8"),  # global frame number, 0.. in import order
        ("subject", "<i4"),  # index into the manifest's subject names
        ("sequence", "<i4"),  # global sequence number
        ("frame_number", "<i4"),  # the frame's number within its sequence
        ("valence", "<f4"),
        ("arousal", "<f4"),
        ("label", "<i2"),  # index into the manifest's label names, -1 none
        ("bin", "<i2"),  # V-A bin (VAGrid numbering)
        ("neutral", "?"),  # the sequence's neutral frame (stored in neutrals/)
        ("checkpoint", "<i4"),  # which chunk files hold the frame
        ("row", "<i4"),  # row within the bin's chunk (neutral: within neutrals)
        ("displacement", "<f4"),  # RMS over vertices of |frame - neutral|, model units
        ("intensity", "<f4"),  # expression intensity in [0, 1] if known, else NaN
    ]
)


class GalleryError(VafxError, ValueError):
    """A gallery folder that cannot be read or written as asked."""


class SequenceData(NamedTuple):
    """One sequence as research code hands it to :class:`GalleryWriter`.

    Attributes:
        subject: subject name.
        name: sequence name (unique within the subject).
        neutral: float[n, 3], the sequence's neutral frame.
        frames: float[m, n, 3], its other frames.
        va: float[m, 2], valence and arousal of each frame, in [-1, 1].
        labels: m categorical labels (str), or None.
        frame_numbers: int[m], or None (1..m; the neutral is frame 0).
        neutral_va: (valence, arousal) of the neutral frame, default (0, 0).
        neutral_number: the neutral frame's number (default 0).
        intensity: float[m] expression intensity in [0, 1], or None.
    """

    subject: str
    name: str
    neutral: np.ndarray
    frames: np.ndarray
    va: np.ndarray
    labels: Sequence[str] | None = None
    frame_numbers: np.ndarray | None = None
    neutral_va: tuple[float, float] = (0.0, 0.0)
    neutral_number: int = 0
    intensity: np.ndarray | None = None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


class _HashingFile:
    """A write-only file object that hashes what passes through it."""

    def __init__(self, fh):
        self.fh, self.sha = fh, hashlib.sha256()

    def write(self, data) -> int:
        self.sha.update(data)
        return self.fh.write(data)


def _save_npy(path: Path, array: np.ndarray) -> str:
    """Write ``array`` as .npy atomically; return its SHA-256 (hashed while writing)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        hf = _HashingFile(fh)
        np.save(hf, np.ascontiguousarray(array), allow_pickle=False)
    return hf.sha.hexdigest()


def _chunk_name(b: int, ckpt: int) -> str:
    return f"bins/b{b:03d}/c{ckpt:05d}.npy"


_DATA_FILE = re.compile(r"^(bins/b\d{3}/c\d{5}|neutrals/n\d{5}|index/i\d{5})\.npy$")


class GalleryWriter:
    """Writes a gallery, resumably. Use as a context manager.

    Feed sequences in a deterministic order with :meth:`add`; sequences the
    journal already holds are skipped (check :attr:`sequences_done` to avoid
    even building them). :meth:`close` (on leaving the ``with`` block without
    an error) commits the rest and writes ``index.npy`` and the manifest.

    Args:
        path: the gallery folder (created if missing).
        template: the template every frame must match.
        fingerprint: identifies the input (e.g. a hash of the import's
            annotation file and options). Resuming or re-running with another
            fingerprint is an error, unless ``overwrite``.
        grid: bins per V-A axis (10: the paper's 0.2 x 0.2 bins).
        budget_bytes: frame buffer that triggers a checkpoint; bounds memory.
        overwrite: delete an existing gallery at ``path`` first.
        source: free-form description stored in the manifest.
        progress: called with (sequences committed, frames committed) at
            every checkpoint.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        template: Template,
        fingerprint: str,
        *,
        grid: int = 10,
        budget_bytes: int = 256 << 20,
        overwrite: bool = False,
        source: dict | None = None,
        progress: Callable[[int, int], None] | None = None,
    ):
        self.path = Path(path)
        self.template = template
        self.fingerprint = fingerprint
        self.grid = VAGrid(grid)
        self.budget = int(budget_bytes)
        self.source = source or {}
        self.progress = progress
        self.complete = False
        if overwrite and self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        manifest = self.path / "gallery.json"
        if manifest.exists():
            done = json.loads(manifest.read_text())
            if done.get("fingerprint") != fingerprint:
                raise GalleryError(
                    f"{self.path} already holds a gallery of other input; "
                    "choose another folder or overwrite it"
                )
            self.complete = True  # idempotent re-run: nothing to do
        self._journal_path = self.path / "journal.json"
        if self._journal_path.exists():
            j = json.loads(self._journal_path.read_text())
            if j["fingerprint"] != fingerprint:
                raise GalleryError(
                    f"{self.path} holds an unfinished import of other input; "
                    "choose another folder or overwrite it"
                )
            if j["template"] != template.digest():
                raise GalleryError(f"{self.path}: the unfinished import used another template")
            self._journal = j
        else:
            self._journal = dict(
                format=FORMAT,
                version=FORMAT_VERSION,
                fingerprint=fingerprint,
                template=template.digest(),
                grid=grid,
                checkpoints=[],
                sequences=[],
                subjects=[],
                labels=[],
                frames=0,
            )
            template.save(self.path / "template.npz")
            atomic_write_text(self._journal_path, json.dumps(self._journal))
        if not self.complete:
            self._remove_orphans()
        self._seen = 0
        self._reset_buffers()

    # -- state -------------------------------------------------------------
    @property
    def sequences_done(self) -> int:
        """Number of sequences already committed (skip these when resuming)."""
        return len(self._journal["sequences"])

    def _reset_buffers(self) -> None:
        self._bins: dict[int, list[np.ndarray]] = {}
        self._bin_rows: dict[int, int] = {}
        self._neutrals: list[np.ndarray] = []
        self._records: list[np.ndarray] = []
        self._bytes = 0
        self._pending_keys: list[str] = []
        self._problems: list[str] = []
        self._next_frame = self._journal["frames"]

    def _remove_orphans(self) -> None:
        keep = {f["file"] for c in self._journal["checkpoints"] for f in c["files"]}
        for sub in ("bins", "neutrals", "index"):
            root = self.path / sub
            if not root.exists():
                continue
            for p in sorted(root.rglob("*")):
                rel = p.relative_to(self.path).as_posix()
                if (
                    p.is_file()
                    and (rel not in keep)
                    and (_DATA_FILE.match(rel) or rel.endswith(".part"))
                ):
                    p.unlink()

    # -- writing -----------------------------------------------------------
    def _id(self, table: str, name: str) -> int:
        names = self._journal[table]
        try:
            return names.index(name)
        except ValueError:
            names.append(name)
            return len(names) - 1

    def skip(self, key: str) -> None:
        """Step over a sequence a previous run committed (``key`` = "subject/name").

        Lets an importer avoid reading the files of committed sequences;
        checks that the input still has the journal's order.
        """
        done = self._journal["sequences"]
        ordinal = self._seen
        if ordinal >= len(done) or done[ordinal] != key:
            raise GalleryError(
                f"{self.path}: cannot skip {key!r}: the journal has "
                f"{done[ordinal] if ordinal < len(done) else 'no sequence'!r} at position {ordinal}"
            )
        self._seen += 1

    def add_empty(self, key: str) -> None:
        """Count a sequence that the input lists but that has nothing to store (all frames bad)."""
        if self.complete:
            return
        ordinal = self._seen
        self._seen += 1
        if ordinal < self.sequences_done:
            return
        self._pending_keys.append(key)

    def note(self, problem: str) -> None:
        """Record a problem with the input; committed with the next checkpoint."""
        self._problems.append(problem)

    @property
    def problems(self) -> list[str]:
        """Problems recorded with :meth:`note`, committed ones first."""
        return self._journal.get("problems", []) + self._problems

    def add(self, seq: SequenceData, where: str = "") -> None:
        """Add one sequence (skipped if a previous run committed it).

        Args:
            seq: the sequence.
            where: names the sequence's source in error messages.

        Raises:
            GalleryError: wrong vertex count, non-finite coordinates, V-A out
                of range, mismatched lengths, a repeated sequence.
        """
        if self.complete:
            return
        key = f"{seq.subject}/{seq.name}"
        ordinal = self._seen
        self._seen += 1
        done = self._journal["sequences"]
        if ordinal < len(done):
            if done[ordinal] != key:
                raise GalleryError(
                    f"{self.path}: resumed import sees sequence {key!r} where the journal has "
                    f"{done[ordinal]!r}; the input changed since the interrupted run"
                )
            return
        if key in self._pending_keys or key in done:
            raise GalleryError(f"{where or key}: sequence {key!r} appears twice")
        n = self.template.num_vertices
        where = where or key
        neutral = np.asarray(seq.neutral, np.float32)
        frames = np.asarray(seq.frames, np.float32)
        va = np.asarray(seq.va, np.float32).reshape(-1, 2)
        m = len(frames)
        if neutral.shape != (n, 3):
            raise GalleryError(
                f"{where}: neutral frame has shape {neutral.shape}, template needs ({n}, 3)"
            )
        if frames.ndim != 3 or frames.shape[1:] != (n, 3):
            raise GalleryError(
                f"{where}: frames have shape {frames.shape}, template needs (m, {n}, 3)"
            )
        if len(va) != m:
            raise GalleryError(f"{where}: {m} frames but {len(va)} V-A labels")
        if not np.isfinite(neutral).all() or not np.isfinite(frames).all():
            raise GalleryError(f"{where}: NaN or infinite vertex coordinates")
        nva = np.asarray(seq.neutral_va, np.float32).reshape(1, 2)
        all_va = np.concatenate([nva, va])
        if not np.isfinite(all_va).all() or np.abs(all_va).max(initial=0) > 1:
            bad = int(np.nonzero(~(np.abs(all_va) <= 1).all(axis=1))[0][0])
            raise GalleryError(
                f"{where}: V-A {all_va[bad].tolist()} of frame {bad} is outside [-1, 1]"
            )
        numbers = (
            np.arange(1, m + 1) if seq.frame_numbers is None else np.asarray(seq.frame_numbers)
        )
        if len(numbers) != m:
            raise GalleryError(f"{where}: {m} frames but {len(numbers)} frame numbers")
        labels = [None] * m if seq.labels is None else list(seq.labels)
        if len(labels) != m:
            raise GalleryError(f"{where}: {m} frames but {len(labels)} labels")
        intensity = (
            np.full(m, np.nan, np.float32) if seq.intensity is None else np.asarray(seq.intensity)
        )

        subject = self._id("subjects", seq.subject)
        sequence = len(done) + len(self._pending_keys)
        deltas = frames - neutral
        bins = np.asarray(self.grid.bin_index(all_va))
        rec = np.zeros(m + 1, INDEX_DTYPE)
        rec["frame"] = self._next_frame + np.arange(m + 1)
        rec["subject"] = subject
        rec["sequence"] = sequence
        rec["frame_number"] = np.concatenate([[seq.neutral_number], numbers])
        rec["valence"], rec["arousal"] = all_va[:, 0], all_va[:, 1]
        rec["label"] = [
            -1 if lab is None else self._id("labels", str(lab)) for lab in [None, *labels]
        ]
        rec["label"][0] = -1
        rec["bin"] = bins
        rec["neutral"][0] = True
        rec["checkpoint"] = len(self._journal["checkpoints"])
        rec["row"][0] = len(self._neutrals)
        rec["displacement"] = np.concatenate(
            [[0.0], np.sqrt(np.mean(np.sum(deltas * deltas, axis=2), axis=1))]
        )
        rec["intensity"] = np.concatenate([[0.0], intensity])
        for i in range(m):
            b = int(bins[i + 1])
            rec["row"][i + 1] = self._bin_rows.get(b, 0)
            self._bin_rows[b] = self._bin_rows.get(b, 0) + 1
            self._bins.setdefault(b, []).append(deltas[i])
        self._neutrals.append(neutral)
        self._records.append(rec)
        self._next_frame += m + 1
        self._pending_keys.append(key)
        self._bytes += deltas.nbytes + neutral.nbytes
        if self._bytes >= self.budget:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Write the buffered frames and commit them in the journal."""
        if not self._pending_keys:
            return
        ckpt = len(self._journal["checkpoints"])
        files = {}
        if not self._neutrals:  # only empty sequences pending
            self._journal["sequences"].extend(self._pending_keys)
            self._journal["problems"] = self._journal.get("problems", []) + self._problems
            atomic_write_text(self._journal_path, json.dumps(self._journal))
            self._reset_buffers()
            return
        for b in sorted(self._bins):
            name = _chunk_name(b, ckpt)
            files[name] = _save_npy(self.path / name, np.stack(self._bins[b]))
        name = f"neutrals/n{ckpt:05d}.npy"
        files[name] = _save_npy(self.path / name, np.stack(self._neutrals))
        name = f"index/i{ckpt:05d}.npy"
        files[name] = _save_npy(self.path / name, np.concatenate(self._records))
        entry = dict(
            checkpoint=ckpt,
            sequences=len(self._pending_keys),
            files=[dict(file=f, sha256=h) for f, h in files.items()],
        )
        self._journal["checkpoints"].append(entry)
        self._journal["sequences"].extend(self._pending_keys)
        self._journal["problems"] = self._journal.get("problems", []) + self._problems
        self._journal["frames"] = self._next_frame
        atomic_write_text(self._journal_path, json.dumps(self._journal))  # the commit
        self._reset_buffers()
        if self.progress is not None:
            self.progress(self.sequences_done, self._journal["frames"])

    def close(self) -> None:
        """Commit the rest; write ``index.npy`` and the manifest ``gallery.json``."""
        if self.complete:
            return
        self.checkpoint()
        j = self._journal
        parts = [np.load(self.path / f"index/i{c['checkpoint']:05d}.npy") for c in j["checkpoints"]]
        index = np.concatenate(parts) if parts else np.zeros(0, INDEX_DTYPE)
        index_sha = _save_npy(self.path / "index.npy", index)
        expr = ~index["neutral"]
        manifest = dict(
            format=FORMAT,
            version=FORMAT_VERSION,
            vafx=__version__,
            fingerprint=self.fingerprint,
            source=self.source,
            template=dict(
                file="template.npz",
                sha256=_sha256(self.path / "template.npz"),
                digest=self.template.digest(),
                vertices=self.template.num_vertices,
                triangles=int(len(self.template.faces)),
                units=self.template.units,
                model=self.template.model,
                region=self.template.region,
            ),
            grid=j["grid"],
            frames=int(expr.sum()),
            sequences=len(j["sequences"]),
            subjects=j["subjects"],
            labels=j["labels"],
            index=dict(file="index.npy", sha256=index_sha),
            checkpoints=j["checkpoints"],
        )
        atomic_write_text(self.path / "gallery.json", json.dumps(manifest, indent=1))
        self.complete = True

    def __enter__(self) -> GalleryWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()


class Gallery:
    """A finished gallery, opened read-only. Arrays are loaded lazily.

    Attributes:
        path: the folder.
        manifest: the parsed ``gallery.json``.
        template: the :class:`Template`.
        index: structured array of :data:`INDEX_DTYPE`, one record per frame
            (neutral frames included, flagged).
        grid: the :class:`vafx.VAGrid`.
    """

    def __init__(self, path: str | os.PathLike, *, verify: bool = False):
        self.path = Path(path)
        mpath = self.path / "gallery.json"
        if not mpath.exists():
            if (self.path / "journal.json").exists():
                raise GalleryError(
                    f"{self.path}: the import is unfinished (journal.json but no gallery.json); "
                    "run the import again to resume it"
                )
            raise DataFileError(mpath, "not found: not a vafx gallery folder")
        try:
            self.manifest = json.loads(mpath.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise DataFileError(mpath, f"not valid JSON ({e})") from None
        if self.manifest.get("format") != FORMAT:
            raise DataFileError(mpath, "not a vafx gallery manifest")
        if self.manifest.get("version", 0) > FORMAT_VERSION:
            raise DataFileError(
                mpath,
                f"format version {self.manifest['version']} is newer than this vafx reads "
                f"({FORMAT_VERSION}); upgrade vafx",
            )
        if verify:
            self.verify()
        self.template = Template.load(self.path / "template.npz")
        try:
            self.index = np.load(self.path / "index.npy")
        except (OSError, ValueError) as e:
            raise DataFileError(self.path / "index.npy", f"unreadable ({e})") from None
        if self.index.dtype != INDEX_DTYPE:
            raise DataFileError(
                self.path / "index.npy", f"unexpected record type {self.index.dtype}"
            )
        self.grid = VAGrid(self.manifest["grid"])

    def verify(self) -> None:
        """Check every data file against the manifest's SHA-256; raise on the first mismatch."""
        files = [self.manifest["template"], self.manifest["index"]] + [
            f for c in self.manifest["checkpoints"] for f in c["files"]
        ]
        for f in files:
            p = self.path / f["file"]
            if not p.exists():
                raise DataFileError(p, "missing (listed in gallery.json)")
            if _sha256(p) != f["sha256"]:
                raise DataFileError(p, "checksum differs from gallery.json: the file is corrupt")

    # -- metadata ------------------------------------------------------------
    @property
    def subjects(self) -> list[str]:
        return list(self.manifest["subjects"])

    @property
    def label_names(self) -> list[str]:
        return list(self.manifest["labels"])

    @property
    def num_frames(self) -> int:
        """Expression frames (neutral frames not counted)."""
        return int(self.manifest["frames"])

    @property
    def num_sequences(self) -> int:
        return int(self.manifest["sequences"])

    @property
    def expression_frames(self) -> np.ndarray:
        """Index records of the expression (non-neutral) frames."""
        return self.index[~self.index["neutral"]]

    def va(self, records: np.ndarray | None = None) -> np.ndarray:
        """float32[m, 2] V-A of the given records (default: the expression frames)."""
        r = self.expression_frames if records is None else records
        return np.stack([r["valence"], r["arousal"]], axis=-1)

    def frames_of_bin(self, b: int) -> np.ndarray:
        """Index records of bin ``b``'s expression frames, in storage order."""
        if not 0 <= b < self.grid.num_bins:
            raise ValueError(f"bin {b} is outside 0..{self.grid.num_bins - 1}")
        r = self.index[(self.index["bin"] == b) & ~self.index["neutral"]]
        return r[np.lexsort((r["row"], r["checkpoint"]))]

    def counts(self) -> np.ndarray:
        """int64[bins] expression frames per bin (the paper's Fig. 3)."""
        e = self.expression_frames
        return np.bincount(e["bin"], minlength=self.grid.num_bins)

    def medians(self) -> np.ndarray:
        """float32[bins, 2] median V-A per bin (the bins' labels); NaN for empty bins."""
        return np.asarray(self.grid.medians(self.va())).reshape(-1, 2)

    def apex_frames(self) -> np.ndarray:
        """Index records of each sequence's apex: its frame of largest displacement."""
        e = self.expression_frames
        order = np.lexsort((-e["displacement"], e["sequence"]))
        e = e[order]
        first = np.ones(len(e), bool)
        first[1:] = e["sequence"][1:] != e["sequence"][:-1]
        return e[first]

    # -- data ----------------------------------------------------------------
    def _chunks_of_bin(self, b: int) -> list[int]:
        r = self.index[(self.index["bin"] == b) & ~self.index["neutral"]]
        return sorted(set(r["checkpoint"].tolist()))

    def iter_bin(self, b: int) -> Iterator[np.ndarray]:
        """Bin ``b``'s difference vectors chunk by chunk: memory-mapped float32[k, n, 3]."""
        if not 0 <= b < self.grid.num_bins:
            raise ValueError(f"bin {b} is outside 0..{self.grid.num_bins - 1}")
        for ckpt in self._chunks_of_bin(b):
            p = self.path / _chunk_name(b, ckpt)
            try:
                yield np.load(p, mmap_mode="r")
            except (OSError, ValueError) as e:
                raise DataFileError(p, f"unreadable chunk ({e})") from None

    def bin_deltas(self, b: int, out: np.ndarray | None = None) -> np.ndarray:
        """Bin ``b``'s difference matrix as float32[m, n, 3] (rows: :meth:`frames_of_bin`).

        ``D`` of the paper is this array reshaped to (m, 3n) and transposed.
        Streams the chunks into one array (``out`` if given).
        """
        m = int(self.counts()[b])
        n = self.template.num_vertices
        if out is None:
            out = np.empty((m, n, 3), np.float32)
        elif out.shape[0] < m or out.shape[1:] != (n, 3):
            raise ValueError(f"out has shape {out.shape}; bin {b} needs ({m}, {n}, 3)")
        i = 0
        for chunk in self.iter_bin(b):
            out[i : i + len(chunk)] = chunk
            i += len(chunk)
        if i != m:
            raise DataFileError(self.path, f"bin {b}: index lists {m} frames, chunks hold {i}")
        return out[:m]

    def neutrals(self, sequences: np.ndarray | None = None) -> np.ndarray:
        """float32[s, n, 3] neutral frames of the given sequences (default all)."""
        recs = self.index[self.index["neutral"]]
        if sequences is not None:
            pos = {int(s): i for i, s in enumerate(recs["sequence"])}
            recs = recs[[pos[int(s)] for s in np.atleast_1d(sequences)]]
        out = np.empty((len(recs), self.template.num_vertices, 3), np.float32)
        for ckpt in np.unique(recs["checkpoint"]):
            arr = np.load(self.path / f"neutrals/n{ckpt:05d}.npy", mmap_mode="r")
            sel = recs["checkpoint"] == ckpt
            out[sel] = arr[recs["row"][sel]]
        return out

    def vertices(self, records: np.ndarray) -> np.ndarray:
        """float32[k, n, 3] vertices of the given index records (neutral + difference)."""
        records = np.atleast_1d(records)
        out = self.neutrals(records["sequence"])
        for i, r in enumerate(records):
            if not r["neutral"]:
                arr = np.load(
                    self.path / _chunk_name(int(r["bin"]), int(r["checkpoint"])), mmap_mode="r"
                )
                out[i] += arr[int(r["row"])]
        return out

    def split(self, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Subject-independent split: (train subjects, test subjects), int arrays.

        Subjects are shuffled with ``seed`` and the first ``round(test_fraction * S)``
        (at least one, at most S - 1) go to the test side.
        """
        s = len(self.subjects)
        if s < 2:
            raise GalleryError(
                f"{self.path}: a subject-independent split needs 2 subjects, has {s}"
            )
        perm = np.random.default_rng(seed).permutation(s)
        k = min(max(int(round(test_fraction * s)), 1), s - 1)
        return np.sort(perm[k:]), np.sort(perm[:k])

    def folds(self, k: int = 5, seed: int = 0) -> list[np.ndarray]:
        """k person-disjoint folds of subject ids covering every subject."""
        s = len(self.subjects)
        if not 2 <= k <= s:
            raise GalleryError(f"{self.path}: {k} folds need 2 <= k <= {s} subjects")
        perm = np.random.default_rng(seed).permutation(s)
        return [np.sort(f) for f in np.array_split(perm, k)]

    def __repr__(self) -> str:
        t = self.manifest["template"]
        return (
            f"Gallery({str(self.path)!r}, {self.num_frames} frames, {self.num_sequences} sequences, "
            f"{len(self.subjects)} subjects, template {t['vertices']} vertices)"
        )


def open_gallery(path: str | os.PathLike, *, verify: bool = False) -> Gallery:
    """Open a finished gallery folder (``verify`` checks every file's SHA-256)."""
    return Gallery(path, verify=verify)


def write_gallery(
    path: str | os.PathLike,
    template: Template,
    sequences,
    *,
    fingerprint: str | None = None,
    **kwargs,
) -> Gallery:
    """Write sequences from Python (research code) into a gallery folder.

    Args:
        path: the gallery folder.
        template: the :class:`Template` the frames match.
        sequences: an iterable of :class:`SequenceData`.
        fingerprint: identifies the input for resuming; default: a hash of
            all the sequences' arrays (computed as they stream in, so a
            re-run is idempotent only when a fingerprint is given).
        **kwargs: passed to :class:`GalleryWriter`.

    Returns:
        The opened :class:`Gallery`.
    """
    if fingerprint is None:
        seqs = list(sequences)
        h = hashlib.sha256()
        for s in seqs:
            h.update(f"{s.subject}/{s.name}".encode())
            for a in (s.neutral, s.frames, s.va):
                h.update(np.ascontiguousarray(a, np.float32).tobytes())
            h.update(repr(s.labels).encode())
        fingerprint = "arrays:" + h.hexdigest()
        sequences = seqs
    with GalleryWriter(path, template, fingerprint, **kwargs) as w:
        for s in sequences:
            w.add(s)
    return Gallery(path)
