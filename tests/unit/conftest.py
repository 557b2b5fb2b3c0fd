import sys
from pathlib import Path

import onnx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import tiny_models  # noqa: E402  (found through the path above)


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    """tiny_models.mlp() saved to a file, once per test module."""
    folder = tmp_path_factory.mktemp("mlp")
    onnx.save(tiny_models.mlp(), folder / "mlp.onnx")
    return folder / "mlp.onnx"
