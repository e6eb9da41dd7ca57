"""The finance-SDK stand-in for tests: `build_standin()` compiles standin.c (against our
WeWorkFinanceSdk_C.h) with gcc into a temp dir, cached by the sources' hash, and returns
the .so path (`standin_or_skip()`: or skips the test where there is no compiler);
`standin_encrypt()` is the stand-in's DecryptData scheme run backwards."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = (HERE / "WeWorkFinanceSdk_C.h", HERE / "standin.c")
LIB_NAME = "libWeWorkFinanceSdk_C.so"


class CompilerMissing(RuntimeError):
    """No C compiler (gcc or cc) on PATH."""


def compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "gcc")) or shutil.which("gcc") or shutil.which("cc")


def build_standin() -> Path:
    """Compile the stand-in once per source version; the path of the shared library."""
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in SOURCES)).hexdigest()[:16]
    out_dir = Path(tempfile.gettempdir()) / f"siyu-finance-sdk-{digest}"
    lib = out_dir / LIB_NAME
    if lib.exists():
        return lib
    cc = compiler()
    if cc is None:
        raise CompilerMissing("no C compiler (gcc/cc) on PATH to build the finance SDK stand-in")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{LIB_NAME}.{os.getpid()}"
    cmd = [cc, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-std=gnu11", "-I", str(HERE)]
    cmd += ["-o", str(tmp), str(HERE / "standin.c")]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"compiling the finance SDK stand-in failed:\n{result.stderr}")
    os.replace(tmp, lib)  # atomic: concurrent test runs never load a half-written file
    return lib


def standin_or_skip() -> Path:
    """build_standin(), or the test skipped where no C compiler can build it."""
    import pytest

    try:
        return build_standin()
    except CompilerMissing as exc:
        pytest.skip(f"needs a C compiler to build the finance SDK stand-in: {exc}")


def standin_encrypt(random_key: str, plaintext: str) -> str:
    """What the stand-in's DecryptData reverses: base64(plaintext XOR key repeated)."""
    key = random_key.encode()
    data = plaintext.encode()
    return base64.b64encode(bytes(b ^ key[i % len(key)] for i, b in enumerate(data))).decode()
