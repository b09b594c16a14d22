"""``brickproof bundle``: real bundles, and every refusal reason produced from one.

A device-side check of a bundle file is read_head -> manifest.check ->
check_payload (what the updater does before staging); each REASON is provoked
by changing one thing about a real, signed bundle or about the device.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from device.ota import bundlefmt, manifest
from device.ota.manifest import REASONS, BundleError
from tools import bundle, otakey
from tools.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def keys(tmp_path: Path) -> dict[str, Any]:
    pem = otakey.make_or_load(tmp_path / "keys")
    other = otakey.make_or_load(tmp_path / "other")
    return {
        "pem": pem,
        "pub": json.loads((tmp_path / "keys" / "ota_pub.json").read_text()),
        "other_pub": json.loads((other.parent / "ota_pub.json").read_text()),
    }


@pytest.fixture()
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    for rel, text in {
        "device/__init__.py": "",
        "device/version.py": 'VERSION = "0.2.0"\n',
        "device/apps/crash.py": "raise RuntimeError('boom')\n",
        "hw/__init__.py": "",
        "hw/sim/world.py": "WORLD = 1\n",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "device" / "__pycache__").mkdir()
    (root / "device" / "__pycache__" / "version.cpython-311.pyc").write_bytes(b"\x00")
    (root / "README.txt").write_text("not bundled")
    return root


def head_of(path: Path) -> tuple[bytes, bytes, int]:
    with open(path, "rb") as f:
        head: tuple[bytes, bytes, int] = bundlefmt.read_head(f)
    return head


def check_file(
    path: Path,
    pub: dict[str, Any],
    board: str = "host_sim",
    target: str = "py",
    running: str = "0.1.0",
    max_bytes: int | None = None,
) -> dict[str, Any]:
    with open(path, "rb") as f:
        mbytes, sig, offset = bundlefmt.read_head(f)
        m: dict[str, Any] = manifest.check(mbytes, sig, pub, board, target, running, max_bytes)
        bundlefmt.check_payload(f, m, offset)
    return m


def reason(path: Path, pub: dict[str, Any], **kw: Any) -> str:
    with pytest.raises(BundleError) as info:
        check_file(path, pub, **kw)
    assert info.value.reason in REASONS
    return info.value.reason


def resigned(good: Path, pem: Path, out: Path, **changes: Any) -> Path:
    """The bundle ``good`` with manifest fields changed and signed again by ``pem``: a validly signed bad bundle."""
    data = good.read_bytes()
    mbytes, _, offset = head_of(good)
    m = json.loads(mbytes)
    m.update(changes)
    new = json.dumps(m, sort_keys=True, separators=(",", ":")).encode()
    out.write_bytes(bundlefmt.encode_head(new, otakey.sign(otakey.load_private(pem), new)) + data[offset:])
    return out


def test_cli_builds_a_py_bundle_of_device_and_hw(
    tmp_path: Path, keys: dict[str, Any], src: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "b.bpota"
    argv = ["bundle", "--board", "host_sim", "--version", "0.2.0", "--key", str(keys["pem"]), "--out", str(out)]
    assert main([*argv, "--src", str(src)]) == 0
    text = capsys.readouterr().out
    assert f"sha256 {hashlib.sha256(out.read_bytes()).hexdigest()}" in text
    assert "target py version 0.2.0; 5 files" in text
    m = check_file(out, keys["pub"])
    assert [f[0] for f in m["files"]] == [
        "device/__init__.py",
        "device/apps/crash.py",
        "device/version.py",
        "hw/__init__.py",
        "hw/sim/world.py",
    ]
    assert m["kid"] == keys["pub"]["kid"] and m["board"] == "host_sim" and m["format"] == 1
    data = out.read_bytes()
    _, _, offset = head_of(out)
    for path, off, size, digest in manifest.entries(m):
        assert data[offset + off : offset + off + size] == (src / path).read_bytes()
        assert hashlib.sha256((src / path).read_bytes()).hexdigest() == digest


def test_build_bundle_of_the_repo_for_a_micropython_board_is_mpy_like_flash(
    tmp_path: Path, keys: dict[str, Any]
) -> None:
    from tools.flash import source_files

    fig = bundle.build_bundle("esp32_generic", "0.2.0", keys["pem"], tmp_path / "mp.bpota")
    assert fig["target"] == "mpy" and fig["board"] == "esp32_generic"
    m = check_file(tmp_path / "mp.bpota", keys["pub"], board="esp32_generic", target="mpy")
    expected = [p.relative_to(REPO).with_suffix(".mpy").as_posix() for p in source_files(REPO)]
    assert [f[0] for f in m["files"]] == expected
    assert not any(p.startswith("hw/sim/") for p in expected)
    assert fig["sha256"] == hashlib.sha256((tmp_path / "mp.bpota").read_bytes()).hexdigest()
    assert fig["files"] == len(expected) and fig["bytes"] == (tmp_path / "mp.bpota").stat().st_size


def test_the_repo_py_bundle_includes_hw_sim_and_no_caches(tmp_path: Path, keys: dict[str, Any]) -> None:
    fig = bundle.build_bundle("host_sim", "0.2.0", keys["pem"], tmp_path / "py.bpota")
    m = check_file(tmp_path / "py.bpota", keys["pub"])
    paths = [f[0] for f in m["files"]]
    assert fig["target"] == "py" and "hw/sim/world.py" in paths and "device/ota/ecdsa.py" in paths
    assert all(p.endswith(".py") and "__pycache__" not in p for p in paths)


def test_every_refusal_reason_from_a_real_bundle(tmp_path: Path, keys: dict[str, Any], src: Path) -> None:
    good = tmp_path / "good.bpota"
    bundle.build_bundle("host_sim", "0.2.0", keys["pem"], good, src=src)
    data = good.read_bytes()
    pub = keys["pub"]
    assert check_file(good, pub)["version"] == "0.2.0"
    mbytes, _, offset = head_of(good)

    def variant(name: str, blob: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(blob)
        return path

    def flipped(at: int) -> bytes:
        bad = bytearray(data)
        bad[at] ^= 0x01
        return bytes(bad)

    got = {
        "truncated": reason(variant("cut", data[: offset - 10]), pub),
        "bad_format": reason(variant("magic", b"X" + data[1:]), pub),
        "wrong_alg": reason(resigned(good, keys["pem"], tmp_path / "alg", alg="ecdsa-p384-sha384"), pub),
        "untrusted_key": reason(good, keys["other_pub"]),
        "bad_signature": reason(variant("sig", flipped(offset - 1)), pub),
        "wrong_board": reason(good, pub, board="esp32_generic"),
        "wrong_target": reason(good, pub, target="mpy"),
        "same_version": reason(good, pub, running="0.2.0"),
        "downgrade": reason(good, pub, running="1.0.0"),
        "bad_path": reason(
            resigned(good, keys["pem"], tmp_path / "path", files=[["main.py", 0, hashlib.sha256(b"").hexdigest()]]),
            pub,
        ),
        "bad_hash": reason(variant("payload", flipped(len(data) - 2)), pub),
        "too_big": reason(good, pub, max_bytes=10),
    }
    assert got == {r: r for r in REASONS}
    # The payload cut short passes the head checks and is caught by the hashing pass.
    assert reason(variant("short", data[:-1]), pub) == "truncated"
    # A flipped byte inside the signed manifest is a bad signature, whatever it changed.
    assert reason(variant("manifest", flipped(11 + mbytes.index(b'"version":"0.2.0"') + 13)), pub) == "bad_signature"
    # Signed by a key the device does not trust, kid and all: untrusted, not merely a bad signature.
    stranger = otakey.make_or_load(tmp_path / "stranger")
    assert reason(resigned(good, stranger, tmp_path / "stranger.bpota"), pub) == "bad_signature"
    foreign = tmp_path / "foreign.bpota"
    bundle.build_bundle("host_sim", "0.2.0", stranger, foreign, src=src)
    assert reason(foreign, pub) == "untrusted_key"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"--version": "0.2"}, "version"),
        ({"--version": "v1.0.0"}, "version"),
        ({"--board": "no_such_board"}, "board"),
        ({"--key": "/nonexistent/ota_signing.pem"}, "key"),
        ({"--target": "exe"}, "--target"),
        ({"--src": "/nonexistent-src"}, "src"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(
    tmp_path: Path,
    keys: dict[str, Any],
    src: Path,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, str],
    named: str,
) -> None:
    args = {"--board": "host_sim", "--version": "0.2.0", "--key": str(keys["pem"]), "--src": str(src)}
    args.update(change)
    argv = ["bundle", "--out", str(tmp_path / "x.bpota")]
    for flag, value in args.items():
        argv += [flag, value]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and named in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.bpota").exists()


def test_a_key_that_is_not_p256_is_a_bad_key(tmp_path: Path, src: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "k.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    argv = ["bundle", "--board", "host_sim", "--version", "0.2.0", "--key", str(tmp_path / "k.pem")]
    assert main([*argv, "--out", str(tmp_path / "x.bpota"), "--src", str(src)]) == 2
    assert "key" in capsys.readouterr().err


def test_the_bundled_version_py_says_the_bundle_version(tmp_path: Path, keys: dict[str, Any], src: Path) -> None:
    (src / "device" / "version.py").write_text(
        '"""doc"""\n\nVERSION = "0.1.0"\n\n\ndef parse_version(t):\n    return t\n'
    )
    out = tmp_path / "v.bpota"
    bundle.build_bundle("host_sim", "0.3.0", keys["pem"], out, src=src)
    m = check_file(out, keys["pub"])
    data = out.read_bytes()
    _, _, offset = head_of(out)
    for path, off, size, _ in manifest.entries(m):
        body = data[offset + off : offset + off + size]
        if path == "device/version.py":
            assert body == b'"""doc"""\n\nVERSION = "0.3.0"\n\n\ndef parse_version(t):\n    return t\n'
        else:
            assert body == (src / path).read_bytes()
    assert (src / "device" / "version.py").read_text().count('"0.1.0"') == 1  # the source tree is untouched
    mpy = bundle.mpy_files(src, "0.3.0")
    assert dict(mpy)["device/version.mpy"] != dict(bundle.mpy_files(src, "0.4.0"))["device/version.mpy"]


def test_device_version_matches_pyproject() -> None:
    import tomllib

    from device.version import VERSION

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["version"] == VERSION
