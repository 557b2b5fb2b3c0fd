"""Errors a user can fix. Anything else raised by qcompile is a bug and keeps its traceback."""


class QCompileError(Exception):
    """A problem with the user's input: printed as one line, exit code 2."""

    exit_code = 2


class ModelError(QCompileError):
    """The model is missing, unreadable, unsafe or has nothing to quantize."""


class RecipeError(QCompileError):
    """The recipe (preset, formats, options, overrides) is invalid."""


class CalibrationError(QCompileError):
    """Calibration data is missing or does not match the model's inputs."""


class OutputError(QCompileError):
    """An output cannot be written (exists, or would overwrite the input)."""


class LayoutError(QCompileError):
    """A tensor shape that a packed layout or kernel cannot take."""


class MissingDependencyError(QCompileError):
    """An optional dependency (TensorRT, torch, CUDA) is needed and absent."""


class CheckFailed(Exception):
    """A stage's checker found its result wrong: a qcompile bug (not a QCompileError), named by stage."""
