"""Download the public face models from their upstream repositories.

Each model is a list of files under a base URL pinned to an upstream commit.
Files are streamed to a temporary name, hashed with SHA-256, checked against
the pinned checksum, and only then moved into place; a good copy on disk is
never downloaded again. After the download the model is converted once to
vafx's model file (``model.npz``) in the same folder.

Pinned checksums: every file of the Surrey Face Model, and the ICT files
that vafx's maintainers could hash (the neutral mesh, ``vertex_indices.json``,
two identity and three expression shapes). The other ICT files are pinned by
the commit in the URL; their SHA-256 is recorded on first download in
``SHA256SUMS`` and checked on every later run (trust on first use), and the
converted model is checked structurally (vertex counts, one topology).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .._errors import DataFileError, DownloadError
from .._io._atomic import atomic_path, atomic_write_text
from .._paths import models_dir

log = logging.getLogger("vafx")

ICT_COMMIT = "da5f95a"
EOS_COMMIT = "ce98420"
CHECKSUM_FILE = "SHA256SUMS"


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files live upstream.

    Attributes:
        name: the model's name (``ict``, ``sfm``).
        base_url: URL the file paths are relative to (ends with ``/``).
        files: relative paths, in download order.
        sha256: pinned checksums by relative path (a subset of ``files``).
        licence: one line on the terms, shown before downloading.
    """

    name: str
    base_url: str
    files: tuple[str, ...]
    sha256: dict[str, str] = field(default_factory=dict)
    licence: str = ""


_ICT_EXPRESSIONS = (
    "browDown_L browDown_R browInnerUp_L browInnerUp_R browOuterUp_L browOuterUp_R cheekPuff_L "
    "cheekPuff_R cheekSquint_L cheekSquint_R eyeBlink_L eyeBlink_R eyeLookDown_L eyeLookDown_R "
    "eyeLookIn_L eyeLookIn_R eyeLookOut_L eyeLookOut_R eyeLookUp_L eyeLookUp_R eyeSquint_L "
    "eyeSquint_R eyeWide_L eyeWide_R jawForward jawLeft jawOpen jawRight mouthClose mouthDimple_L "
    "mouthDimple_R mouthFrown_L mouthFrown_R mouthFunnel mouthLeft mouthLowerDown_L "
    "mouthLowerDown_R mouthPress_L mouthPress_R mouthPucker mouthRight mouthRollLower "
    "mouthRollUpper mouthShrugLower mouthShrugUpper mouthSmile_L mouthSmile_R mouthStretch_L "
    "mouthStretch_R mouthUpperUp_L mouthUpperUp_R noseSneer_L noseSneer_R"
).split()

SOURCES: dict[str, ModelSource] = {
    "ict": ModelSource(
        name="ict",
        base_url=f"https://raw.githubusercontent.com/ICT-VGL/ICT-FaceKit/{ICT_COMMIT}/",
        files=(
            "LICENSE",
            "FaceXModel/vertex_indices.json",
            "FaceXModel/generic_neutral_mesh.obj",
            *(f"FaceXModel/identity{i:03d}.obj" for i in range(100)),
            *(f"FaceXModel/{e}.obj" for e in _ICT_EXPRESSIONS),
        ),
        sha256={
            "LICENSE": "b20a78d8fc51657e14f3e00c8abb538d786ad00aa63210328c22565e583167e1",
            "FaceXModel/vertex_indices.json": "4f9b35306299980dd46bee4a6b79bb95dfae1953693b74b35a64f7febfd081a5",
            "FaceXModel/generic_neutral_mesh.obj": "eedbc2576d8e5ea57f55255b8f98263213a1efb5431d8bfceed1d7aef10271f9",
            "FaceXModel/identity000.obj": "918160cf82d541336b4c367cf93199c9827832bde02511b8fbdf9019d6f1a773",
            "FaceXModel/identity001.obj": "325115059deb6691cb2d55da07ae38bb08ce36e4ea146982f294a17513155b3b",
            "FaceXModel/eyeBlink_L.obj": "f5ed1c3072a400083b7d4f7f5cb3d73882b7ebb95c3232f957394db8cf7fe19e",
            "FaceXModel/jawOpen.obj": "8d84355e10f48b05550980cee385bcd426f4797090da76a20de0535bb2f99f4a",
            "FaceXModel/mouthSmile_L.obj": "91794e73cef330f1c7d1f4541723544708536b39d5dd6ed35fd8f83f676b7af4",
        },  # fmt: skip
        licence="ICT Face Model Light, MIT licence (ICT-VGL/ICT-FaceKit). About 400 MB.",
    ),
    "sfm": ModelSource(
        name="sfm",
        base_url=f"https://raw.githubusercontent.com/patrikhuber/eos/{EOS_COMMIT}/share/",
        files=(
            "sfm_shape_3448.bin",
            "expression_blendshapes_3448.bin",
            "ibug_to_sfm.txt",
            "sfm_model_contours.json",
            "sfm_3448_edge_topology.json",
            "sfm_reference_symmetry.txt",
        ),
        sha256={
            "sfm_shape_3448.bin": "43750338ae533e7fb981e924b6f67ebde3d292f15ec4fc886ae5af14308ad980",
            "expression_blendshapes_3448.bin": "a77c81712fc5e8b08a1be4cd2824d51514e5bde6578109ae5240dfb3489efd43",
            "ibug_to_sfm.txt": "810810c457184526c7d54305ecbc5da764e2431b5e66025d921a7d424aebfac9",
            "sfm_model_contours.json": "c9e69bfa995ab19ac6b27abb07729eb0520a00bb192be12426ca6bce76f3fded",
            "sfm_3448_edge_topology.json": "5934e5ec34dd6779fda06d28a1f8d02ca9a238bff882e5ccd6da5af9fffe61d5",
            "sfm_reference_symmetry.txt": "d26e02dbb2cf72bfa88bc6bf6f175bf261bae7aff00509cc0ff277675f2fff47",
        },  # fmt: skip
        licence="Surrey Face Model: free for non-commercial use only (cvssp.org/facemodel).",
    ),
}

#: progress(event, relative_path, bytes_done, bytes_total) with event one of
#: "skip", "start", "bytes", "done".
Progress = Callable[[str, str, int, int], None]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _read_sums(path: Path) -> dict[str, str]:
    sums = {}
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.strip().split(None, 1)
            if len(parts) == 2 and len(parts[0]) == 64:
                sums[parts[1].lstrip("*")] = parts[0]
    return sums


def _download(url: str, target: Path, rel: str, expected: str | None, progress, timeout):
    import urllib.error  # urllib.request: 0.05 s to import, only for a download
    import urllib.request

    try:
        resp = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as e:
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise DownloadError(f"{url}: {getattr(e, 'reason', e)}") from None
    total = int(resp.headers.get("Content-Length") or 0)
    h = hashlib.sha256()
    done = 0
    progress("start", rel, 0, total)
    with resp, atomic_path(target) as tmp:
        with open(tmp, "wb") as out:
            while block := resp.read(1 << 20):
                out.write(block)
                h.update(block)
                done += len(block)
                progress("bytes", rel, done, total)
        if total and done != total:
            raise DownloadError(f"{url}: connection closed after {done} of {total} bytes")
        digest = h.hexdigest()
        if expected is not None and digest != expected:
            raise DownloadError(
                f"{url}: SHA-256 mismatch (got {digest}, expected {expected}); "
                "the file was not saved"
            )
    progress("done", rel, done, total)
    return digest


def fetch_model(
    name: str,
    *,
    dest: str | os.PathLike | None = None,
    base_url: str | None = None,
    files: Sequence[str] | None = None,
    convert: bool = True,
    progress: Progress | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download a model's files, verify them, and convert them to ``model.npz``.

    Args:
        name: ``"ict"`` or ``"sfm"``.
        dest: target folder (default ``<cache>/models/<name>``).
        base_url: a mirror to use instead of the upstream URL (same layout).
        files: a subset of the source's files (for mirrors holding part of a
            model, and tests); the conversion then accepts a partial model.
        convert: write ``model.npz`` after downloading.
        progress: callback, see :data:`Progress`.
        timeout: seconds to wait for a connection or a read.

    Returns:
        The folder holding the files (and ``model.npz``).

    Raises:
        KeyError: unknown model name.
        DownloadError: a download failed or a checksum did not match; files
            already verified stay, nothing half-written is left behind.
    """
    if name not in SOURCES:
        raise KeyError(f"unknown model {name!r}; choose one of {sorted(SOURCES)}")
    src = SOURCES[name]
    wanted = tuple(src.files if files is None else files)
    unknown = [f for f in wanted if f not in src.files]
    if unknown:
        raise KeyError(f"{name} has no files {unknown}")
    dest = Path(dest) if dest is not None else models_dir() / name
    dest.mkdir(parents=True, exist_ok=True)
    base = base_url or src.base_url
    if not base.endswith("/"):
        base += "/"
    progress = progress or (lambda *a: None)
    sums_path = dest / CHECKSUM_FILE
    recorded = _read_sums(sums_path)
    changed = False
    for rel in wanted:
        target = dest / rel
        expected = src.sha256.get(rel) or recorded.get(rel)
        if target.exists():
            digest = sha256_file(target)
            if expected is None or digest == expected:
                recorded[rel] = digest
                progress("skip", rel, 0, 0)
                continue
            log.warning("%s: checksum mismatch, downloading again", target)
            target.unlink()
        recorded[rel] = _download(base + rel, target, rel, src.sha256.get(rel), progress, timeout)
        changed = True
        # Record as we go, so an interrupted run resumes with what it verified.
        atomic_write_text(sums_path, "".join(f"{d}  {r}\n" for r, d in sorted(recorded.items())))
    if not sums_path.exists():
        atomic_write_text(sums_path, "".join(f"{d}  {r}\n" for r, d in sorted(recorded.items())))
    if convert:
        _convert(name, dest, complete=files is None, force=changed)
    return dest


def _convert(name: str, folder: Path, complete: bool, force: bool) -> None:
    from ._cache import load_model_file, save_model
    from ._eos import load_sfm
    from ._ict import load_ict_folder
    from ._resolve import CONVERTED

    target = folder / CONVERTED
    if target.exists() and not force:
        try:
            load_model_file(target)
            return
        except DataFileError as e:
            log.warning("converting again: %s", e)
    if name == "ict":
        model = load_ict_folder(folder / "FaceXModel", require_complete=complete)
    else:
        model = load_sfm(folder)
    save_model(target, model)
