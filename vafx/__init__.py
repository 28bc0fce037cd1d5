"""vafx: photorealistic facial affect synthesis in the valence-arousal space.

Public API; the implementation lives in private modules. The face-agnostic
kernels are in :mod:`vafx.kernels`.
"""

from . import kernels
from ._compiled._jax_config import configure_compilation_cache as _configure_cache
from ._errors import DataFileError, DownloadError, FitError, ModelNotFoundError, VafxError
from ._evaluate._judges import evaluate_synthesis
from ._expression._bins import BinModels, bin_expression, fit_bins, load_bin_models, save_bin_models
from ._expression._controls import Target, emotions, parse_aus
from ._expression._defaults import default_bin_models
from ._expression._deformation import expression_for, full_deformation
from ._fit._fitting import (
    Fit,
    FitConfig,
    check_fits,
    check_landmarks,
    fit_landmarks,
    fitted_vertices,
    image_vertices,
)
from ._fit._landmarks import (
    NoFaceError,
    detect_in_files,
    detect_landmarks,
    face_descriptor,
)
from ._fit._refine import RefineConfig, refine_photometric
from ._gallery._import import ImportProblems, import_meshes
from ._gallery._register import (
    FrameReport,
    RegisterConfig,
    Registered,
    RegistrationError,
    RegistrationSetup,
    register_sequence,
    registration_setup,
)
from ._gallery._register_files import read_landmarks3d, read_scan, register_scans
from ._gallery._scans import Scan, ScanConfig, synthetic_scan
from ._gallery._stats import bin_table, write_histogram_png
from ._gallery._store import (
    INDEX_DTYPE,
    Gallery,
    GalleryError,
    GalleryWriter,
    SequenceData,
    open_gallery,
    write_gallery,
)
from ._gallery._synth import SynthConfig, synthesize_gallery
from ._io._mesh_io import export_mesh
from ._io._photos import read_photo
from ._io._pts import read_pts, write_pts
from ._model._cache import load_model_file, save_model
from ._model._eos import (
    load_eos_model,
    load_sfm,
    read_eos_blendshapes,
    read_ibug_mapping,
    write_eos_model,
)
from ._model._fetch import SOURCES as MODEL_SOURCES
from ._model._fetch import ModelSource, fetch_model
from ._model._ict import load_ict_folder, load_ict_npz
from ._model._morphable import (
    CONTOUR_LANDMARKS_LEFT,
    CONTOUR_LANDMARKS_RIGHT,
    MorphableModel,
    check_model,
    landmark_positions,
    make_model,
    model_shape,
    sample_coefficients,
    triangulate,
)
from ._model._resolve import find_model, load_model, load_model_path
from ._model._template import Template, template_from_model
from ._paths import cache_root, data_root
from ._pipeline._animate import Clip, animate, linear_path, read_path, smoothness, write_clip
from ._pipeline._augment import augment
from ._pipeline._augment import merge as merge_augment
from ._pipeline._synthesis import (
    SynthesisBatch,
    SynthesisConfig,
    SynthesisResult,
    fitted_expression,
    synthesize,
    synthesize_batch,
)
from ._pipeline._synthesize_files import synthesize_files
from ._render._blend import BlendInfo, seamless_clone, seamless_clone_batch
from ._render._face import Rendered, render_face, render_faces
from ._va_space import VAGrid, validate_va
from ._version import __version__
from .kernels import ccc, mse, pcc

__all__ = [
    "augment",
    "SynthesisBatch",
    "SynthesisConfig",
    "SynthesisResult",
    "expression_for",
    "evaluate_synthesis",
    "fitted_expression",
    "full_deformation",
    "synthesize",
    "synthesize_batch",
    "synthesize_files",
    "default_bin_models",
    "detect_in_files",
    "read_photo",
    "Rendered",
    "render_face",
    "RefineConfig",
    "refine_photometric",
    "render_faces",
    "Fit",
    "FitConfig",
    "fit_landmarks",
    "Target",
    "merge_augment",
    "Clip",
    "animate",
    "linear_path",
    "read_path",
    "smoothness",
    "write_clip",
    "emotions",
    "parse_aus",
    "check_fits",
    "check_landmarks",
    "FitError",
    "fitted_vertices",
    "image_vertices",
    "NoFaceError",
    "detect_landmarks",
    "face_descriptor",
    "read_pts",
    "write_pts",
    "BinModels",
    "bin_expression",
    "fit_bins",
    "load_bin_models",
    "save_bin_models",
    "INDEX_DTYPE",
    "Gallery",
    "GalleryError",
    "GalleryWriter",
    "SequenceData",
    "Template",
    "open_gallery",
    "template_from_model",
    "write_gallery",
    "SynthConfig",
    "synthesize_gallery",
    "ImportProblems",
    "import_meshes",
    "FrameReport",
    "RegisterConfig",
    "Registered",
    "RegistrationError",
    "RegistrationSetup",
    "register_sequence",
    "registration_setup",
    "read_landmarks3d",
    "read_scan",
    "register_scans",
    "Scan",
    "ScanConfig",
    "synthetic_scan",
    "bin_table",
    "write_histogram_png",
    "BlendInfo",
    "CONTOUR_LANDMARKS_LEFT",
    "CONTOUR_LANDMARKS_RIGHT",
    "DataFileError",
    "DownloadError",
    "MODEL_SOURCES",
    "ModelNotFoundError",
    "ModelSource",
    "MorphableModel",
    "VAGrid",
    "VafxError",
    "__version__",
    "cache_root",
    "ccc",
    "check_model",
    "data_root",
    "export_mesh",
    "fetch_model",
    "find_model",
    "kernels",
    "landmark_positions",
    "load_eos_model",
    "load_ict_folder",
    "load_ict_npz",
    "load_model",
    "load_model_file",
    "load_model_path",
    "load_sfm",
    "make_model",
    "model_shape",
    "mse",
    "pcc",
    "read_eos_blendshapes",
    "read_ibug_mapping",
    "sample_coefficients",
    "save_model",
    "seamless_clone",
    "seamless_clone_batch",
    "triangulate",
    "validate_va",
    "write_eos_model",
]

_configure_cache()  # the compilation cache the CLI shares (vafx._compiled._jax_config)
