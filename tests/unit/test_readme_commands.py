"""README's main-job command runs end to end on the sample model (CI runs it on a fresh machine)."""

import subprocess
from pathlib import Path

REPO = Path(__file__).parents[2]


def test_sample_run_script():
    proc = subprocess.run(
        ["bash", str(REPO / "samples" / "run.sh")], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("cosine mean") == 6, proc.stdout[-2000:]
    assert proc.stdout.count("passes TensorRT pre-flight checks") == 6
