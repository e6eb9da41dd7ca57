#!/usr/bin/env python3
"""Set up and run Siyu on a fresh machine with only Python 3.11+ and git.

    python3 dev.py demo [--port 8000]   # the demo: Siyu + WeCom emulator + a simulated world
    python3 dev.py test [pytest args]   # the whole test suite

Each command creates `.venv` on first use and installs what it needs; later runs
reinstall only when pyproject.toml changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".siyu-installed"
COMPILED = VENV / ".siyu-compiled"
CHROMIUM = Path("/usr/bin/chromium")


def run(*cmd: str | Path, **kw) -> None:
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs on whatever python3 is
        sys.exit("Siyu needs Python 3.11 or newer")
    if not PY.exists():
        print("creating .venv ...", flush=True)
        run(sys.executable, "-m", "venv", VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != wanted:
        print("installing Siyu and its test tools into .venv ...", flush=True)
        try:  # uv installs the stack in seconds; plain pip is the fallback
            run(PY, "-m", "pip", "install", "-q", "uv")
            run(BIN / "uv", "pip", "install", "-q", "--python", PY, "-e", f"{ROOT}[test]")
        except (subprocess.CalledProcessError, FileNotFoundError):
            run(PY, "-m", "pip", "install", "-q", "-e", f"{ROOT}[test]")
        STAMP.write_text(wanted)
    if not COMPILED.exists() or COMPILED.read_text() != wanted:
        compile_ahead(VENV)
        COMPILED.write_text(wanted)


def compile_ahead(*where: Path) -> None:
    """Byte-compile ahead: where PYTHONDONTWRITEBYTECODE is set (containers, CI), nothing is
    cached, and every process started (a worker, the CLI, a test's server) compiled some 800
    modules on import again, 2 s of each start. Files already compiled are skipped."""
    subprocess.run(
        [str(PY), "-m", "compileall", "-q", "-j", "0", *map(str, where)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # (packages ship a few files of other Pythons' syntax)
        check=False,
    )


def ensure_chromium() -> None:
    """Browser tests drive Debian's Chromium; `playwright install` cannot download here."""
    if CHROMIUM.exists() or not shutil.which("apt-get") or os.geteuid() != 0:
        return
    print("installing Debian's chromium and CJK fonts for the browser tests ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run("apt-get", "update", "-q", env=env, stdout=subprocess.DEVNULL)
    run(
        "apt-get",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "chromium",
        "fonts-liberation",
        "fonts-wqy-microhei",
        env=env,
        stdout=subprocess.DEVNULL,
    )


def in_parallel(args: list[str]) -> list[str]:
    """The tests run in a process per core, up to four (pytest-xdist; each process has a
    database of its own): the suite took 11 min on SQLite and 16 on PostgreSQL in one process
    of a 2-core machine, much of it waiting on timers and other processes. `-n 0` runs them
    in one process (a debugger, `-s`); any `-n` given is kept."""
    if any(a in ("-n", "--numprocesses") or a.startswith(("-n", "--numprocesses=")) for a in args):
        return args
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = min(cores, 4)
    # worksteal: a worker done early takes tests queued for the other, so that a few long
    # tests at the end of one worker's share do not leave the rest of the machine idle
    return ["-n", str(workers), "--dist", "worksteal", *args] if workers > 1 else args


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in {"demo", "test", "serve"}:
        sys.exit(__doc__)
    command, rest = sys.argv[1], sys.argv[2:]
    ensure_venv()
    compile_ahead(ROOT / "src")
    if command == "test":
        ensure_chromium()
        os.execv(PY, [str(PY), "-m", "pytest", *in_parallel(rest)])
    os.execv(BIN / "siyu", [str(BIN / "siyu"), command, *rest])


if __name__ == "__main__":
    main()
