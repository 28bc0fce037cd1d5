"""vafx fetch-model against a local HTTP server on 127.0.0.1 serving the shared data."""

import functools
import http.server
import shutil
import threading

import numpy as np
import pytest

import vafx
from vafx._cli import main

pytestmark = pytest.mark.network


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        self.server.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """Serve a folder on 127.0.0.1; yields (root folder, base URL, request log)."""
    root = tmp_path / "www"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(root))
    )
    httpd.requests = []
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}/", httpd.requests
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_fetch_sfm_through_the_cli_and_never_twice(server, sfm_dir, capsys):
    root, url, requests = server
    shutil.copytree(sfm_dir, root / "sfm")
    assert main(["fetch-model", "sfm", "--url", url + "sfm/"]) == 0
    folder = vafx.cache_root() / "models" / "sfm"
    assert (folder / "model.npz").exists() and (folder / "SHA256SUMS").exists()
    assert len(requests) == len(vafx.MODEL_SOURCES["sfm"].files)
    m = vafx.load_model("sfm")  # found in the cache by name
    assert m.num_vertices == 3448 and int(m.landmarks[30]) == 114
    requests.clear()
    assert main(["fetch-model", "sfm", "--url", url + "sfm/"]) == 0
    assert requests == []  # a verified copy is never downloaded again
    assert "already verified" in capsys.readouterr().err


def test_a_damaged_local_copy_is_downloaded_again(server, sfm_dir, tmp_path):
    root, url, requests = server
    shutil.copytree(sfm_dir, root / "sfm")
    dest = tmp_path / "m"
    vafx.fetch_model("sfm", dest=dest, base_url=url + "sfm/", convert=False)
    (dest / "ibug_to_sfm.txt").write_text("garbage")
    requests.clear()
    vafx.fetch_model("sfm", dest=dest, base_url=url + "sfm/", convert=False)
    assert requests == ["/sfm/ibug_to_sfm.txt"]
    assert vafx.read_ibug_mapping(dest / "ibug_to_sfm.txt")[30] == 114


def test_a_corrupt_download_is_refused_and_not_kept(server, sfm_dir, tmp_path):
    root, url, _ = server
    shutil.copytree(sfm_dir, root / "sfm")
    blob = bytearray((root / "sfm" / "sfm_shape_3448.bin").read_bytes())
    blob[5000] ^= 0xFF
    (root / "sfm" / "sfm_shape_3448.bin").chmod(0o644)
    (root / "sfm" / "sfm_shape_3448.bin").write_bytes(bytes(blob))
    dest = tmp_path / "m"
    with pytest.raises(vafx.DownloadError, match="SHA-256 mismatch"):
        vafx.fetch_model("sfm", dest=dest, base_url=url + "sfm/")
    assert not (dest / "sfm_shape_3448.bin").exists()
    assert not list(dest.glob("*.part"))


def test_missing_file_on_the_server_is_a_clear_error(server, tmp_path):
    _, url, _ = server
    with pytest.raises(vafx.DownloadError, match="HTTP 404"):
        vafx.fetch_model("sfm", dest=tmp_path / "m", base_url=url + "nowhere/")
    assert main(["fetch-model", "sfm", "--url", url + "nowhere/"]) == 2


def test_fetch_ict_subset_and_convert(server, ict_dir, tmp_path):
    """The ICT source with the files the shared copy holds (the full one is 400 MB)."""
    root, url, requests = server
    shutil.copytree(ict_dir, root / "ict")
    files = ["LICENSE", "FaceXModel/vertex_indices.json", "FaceXModel/generic_neutral_mesh.obj",
             "FaceXModel/identity000.obj", "FaceXModel/identity001.obj", "FaceXModel/jawOpen.obj"]  # fmt: skip
    src = vafx.MODEL_SOURCES["ict"]
    assert all(f in src.sha256 for f in files)  # pinned checksums
    dest = vafx.fetch_model("ict", base_url=url + "ict/", files=files)
    m = vafx.load_model("ict")
    assert (m.num_vertices, m.num_identity, m.expression_names) == (26719, 2, ("jawOpen",))
    ref = vafx.load_ict_npz(ict_dir / "ict_facekit_light.npz")
    np.testing.assert_array_equal(np.asarray(m.identity_basis), np.asarray(ref.identity_basis[:2]))
    sums = (dest / "SHA256SUMS").read_text()
    assert src.sha256["FaceXModel/jawOpen.obj"] in sums


def test_complete_source_lists():
    ict = vafx.MODEL_SOURCES["ict"]
    assert sum(f.startswith("FaceXModel/identity") for f in ict.files) == 100
    assert len([f for f in ict.files if f.endswith(".obj")]) == 1 + 100 + 53
    assert all(len(h) == 64 for s in vafx.MODEL_SOURCES.values() for h in s.sha256.values())
