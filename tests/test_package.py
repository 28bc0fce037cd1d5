"""The installed package: kernels/ maps to vafx.kernels, never to a top-level `kernels`."""

import importlib.metadata
import importlib.util
from pathlib import Path

import vafx


def test_kernels_install_under_vafx():
    import vafx.kernels as k

    assert Path(k.__file__).parent == Path(vafx.__file__).parent / "kernels"
    assert callable(k.ccc) and vafx.kernels is k


def test_wheel_has_no_top_level_kernels_module():
    files = importlib.metadata.files("vafx") or []
    tops = {f.parts[0] for f in files if f.suffix == ".py"}
    assert tops == {"vafx"}, tops
    assert any(str(f) == "vafx/kernels/binning.py" for f in files)


def test_running_from_the_installed_copy():
    """Tests must exercise the installed wheel, not the source tree."""
    assert "site-packages" in vafx.__file__ or "dist-packages" in vafx.__file__


def test_public_names_resolve():
    for name in vafx.__all__:
        assert getattr(vafx, name) is not None, name
