"""The package's shape: jobs over parts, and a model package that needs no video code."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_model_package_imports_without_pyav_or_dlib():
    # The training path must run where only torch, numpy, pillow, click and rich are installed.
    blocked = "import sys; sys.modules['av'] = sys.modules['dlib'] = sys.modules['cv2'] = None; "
    code = blocked + "import x2face_edit.model, x2face_edit.model.train, x2face_edit.model.modalities, x2face_edit.model.metrics"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]


def test_no_job_imports_a_job_and_functions_stay_short():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "layout.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "job-to-job imports: 0" in result.stdout
    assert "front ends imported from below: 0" in result.stdout
