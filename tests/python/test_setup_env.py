"""The README's commands choose an interpreter and a torch the way a new
user needs (tools/setup_env.sh, asked with KESTREL_SETUP_PRINT=1 to say
what it would use and stop), in a copy of the script so that a .venv it
makes lands in a scratch checkout."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def choose(tmp_path: Path, **env: str) -> dict[str, str]:
    (tmp_path / "tools").mkdir(exist_ok=True)
    shutil.copy(ROOT / "tools" / "setup_env.sh", tmp_path / "tools")
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "VIRTUAL_ENV", "KESTREL_TORCH_SPEC")}
    out = subprocess.run(["bash", "-c", f"source {tmp_path / 'tools' / 'setup_env.sh'}"],
                         env={**clean, "KESTREL_SETUP_PRINT": "1", **env}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line and " " not in line.split("=")[0])


def externally_managed(python: str) -> bool:
    stdlib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
                            capture_output=True, text=True).stdout.strip()
    return (Path(stdlib) / "EXTERNALLY-MANAGED").exists()


@pytest.mark.skipif(not (Path("/usr/bin/python3").exists() and externally_managed("/usr/bin/python3")),
                    reason="needs an externally managed system python3 (Debian's, Ubuntu's)")
def test_a_system_python_that_refuses_pip_gets_the_project_venv_made_from_it(tmp_path):
    chosen = choose(tmp_path, PYTHON="/usr/bin/python3")
    assert chosen["python"] == str(tmp_path / ".venv" / "bin" / "python")
    version = subprocess.run([chosen["python"], "-c", "import sys; print(sys.base_prefix)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == "/usr"  # made from the interpreter asked for


def test_an_interpreter_that_takes_pip_is_used_as_it_is(tmp_path):
    if (Path(sysconfig.get_paths()["stdlib"]) / "EXTERNALLY-MANAGED").exists() and sys.prefix == sys.base_prefix:
        pytest.skip("this interpreter is externally managed itself")
    assert choose(tmp_path, PYTHON=sys.executable)["python"] == sys.executable
    assert not (tmp_path / ".venv").exists()


def test_the_default_torch_on_linux_is_the_cpu_build(tmp_path):
    spec = choose(tmp_path, PYTHON=sys.executable)["torch_spec"]
    if platform.system() == "Linux" and platform.machine() == "x86_64":
        assert spec == "torch==2.13.0+cpu --extra-index-url https://download.pytorch.org/whl/cpu"
    else:
        assert spec == "torch==2.13.0"
    assert choose(tmp_path, PYTHON=sys.executable, KESTREL_TORCH_SPEC="torch==2.14.1")["torch_spec"] == "torch==2.14.1"
