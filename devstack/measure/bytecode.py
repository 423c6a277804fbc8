"""Bytecode for what ships. Lambda's /var/task and /opt are read-only, so a module that arrives
without its .pyc is compiled from source at every cold start, and since August 2025 the init
phase is billed. SAM's pip workflow ships none; `make build` compiles every build folder for the
runtime's Python (this one, 3.13) with unchecked-hash .pyc files: a deployed artifact's sources
never change, so the interpreter loads the .pyc without reading the source to check it.

`python -m devstack.measure.bytecode [FOLDER ...]` (default: every folder `sam build` made) compiles,
then fails naming any .py that has no .pyc.
"""

from __future__ import annotations

import compileall
import importlib.util
import os
import py_compile
import shutil

# the interpreters of this machine, run on fixed arguments, no shell
import subprocess  # nosec B404
import sys
from pathlib import Path

from devstack.measure.artifacts import BUILD

# Layers that serve other runtimes than the broker's get bytecode for each (where this machine
# has that Python): token_client serves python3.10 to python3.13.
OTHER_RUNTIMES = {"TokenClientLayer": ("python3.10", "python3.11", "python3.12")}


def compile_tree(folder: Path) -> bool:
    """Compiles every .py under `folder`; False when one does not compile."""
    return bool(
        compileall.compile_dir(folder, quiet=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    )


def without_bytecode(folder: Path) -> list[Path]:
    """The .py files under `folder` whose .pyc, for this interpreter, is missing."""
    return sorted(
        source for source in folder.rglob("*.py") if not Path(importlib.util.cache_from_source(str(source))).is_file()
    )


def _compile_with(runtime: str, folder: Path) -> bool:
    """Compiles `folder` with another Python, if this machine has it."""
    interpreter = _interpreter(runtime)
    if interpreter is None:
        return False
    command = [interpreter, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(folder)]
    return subprocess.run(command, check=False, capture_output=True).returncode == 0  # nosec B603


def _interpreter(runtime: str) -> str | None:
    """`python3.X` on PATH if it runs (pyenv's shims may not), else pyenv's own build of it."""
    version = runtime.removeprefix("python")
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [shutil.which(runtime), *sorted(map(str, pyenv_root.glob(f"versions/{version}.*/bin/{runtime}")))]
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "-c", ""], check=False, capture_output=True).returncode == 0:  # nosec B603
            return candidate
    return None


def main(argv: list[str]) -> int:
    folders = [Path(name) for name in argv] or sorted(path for path in BUILD.iterdir() if path.is_dir())
    failed = False
    for folder in folders:
        compiled = compile_tree(folder)
        missing = without_bytecode(folder)
        sources = sum(1 for _ in folder.rglob("*.py"))
        others = [runtime for runtime in OTHER_RUNTIMES.get(folder.name, ()) if _compile_with(runtime, folder)]
        also = f", and for {', '.join(others)}" if others else ""
        print(f"  {folder.name:<28} {sources - len(missing)} of {sources} modules compiled (unchecked-hash){also}")
        for source in missing[:10]:
            print(f"    no bytecode: {source.relative_to(folder)}")
        failed |= not compiled or bool(missing)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
