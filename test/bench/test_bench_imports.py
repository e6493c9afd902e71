"""The bench's light paths import no torch (checked in fresh interpreters via sys.modules)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "ultralytics", "timm", "torchvision")
CHECK = (
    f"bad = [m for m in {HEAVY!r} if m in sys.modules]\n"
    "print('HEAVY', bad)\n"
    "sys.exit(f'imported {bad}' if bad else 0)\n"
)


def run_python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code + CHECK],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_package_and_every_light_module_import_no_torch() -> None:
    code = (
        "import sys\n"
        "import aria_perception.bench as b\n"
        "for name in b.__all__: getattr(b, name)\n"
        "import aria_perception.bench.cli, aria_perception.bench.runner\n"
        "import aria_perception.bench.plot, aria_perception.bench.render\n"
        "import aria_perception.bench.engine_bench, aria_perception.bench.transport\n"
        "from aria_perception.bench.sample import find_photos; find_photos()\n"
    )
    proc = run_python(code)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_bench_help_and_sample_import_no_torch(tmp_path: Path) -> None:
    code = (
        "import sys, contextlib, io\n"
        "from aria_perception.bench.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0\n"
        f"rc = main(['sample', '--out', {str(tmp_path / 'bag')!r}, '--width', '64',"
        " '--height', '48', '--count', '2'])\n"
        "assert rc == 0, rc\n"
    )
    proc = run_python(code)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "bag").is_dir()


@pytest.mark.slow
def test_bench_echo_imports_no_torch(domain_id: int) -> None:
    """``bench echo`` runs until it subscribes to its input, then stops on SIGTERM.

    The SIGTERM may come while it still creates its diagnostics publisher: that is a clean stop.
    """
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    code = (
        "import os, signal, sys, threading, time\n"
        "import rclpy\n"
        "from aria_perception.bench.cli import main\n"
        "def stop_when_up():\n"
        "    ctx = rclpy.Context(); rclpy.init(context=ctx)\n"
        "    probe = rclpy.create_node('probe', context=ctx)\n"
        "    deadline = time.monotonic() + 60\n"
        "    while probe.count_subscribers('/image') == 0:\n"
        "        assert time.monotonic() < deadline, 'echo node never appeared'\n"
        "        time.sleep(0.05)\n"
        "    probe.destroy_node(); rclpy.shutdown(context=ctx)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "threading.Thread(target=stop_when_up, daemon=True).start()\n"
        "assert main(['echo', '--ros-args', '-r', '__node:=echo_probe_target']) == 0\n"
    )
    proc = run_python(code, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "HEAVY []" in proc.stdout


def test_import_command_loads_projectaria_only_when_it_runs() -> None:
    code = (
        "import sys\n"
        "import aria_perception.bench.aria_import, aria_perception.bench.vrs_source\n"
        "import aria_perception.bench.replay, aria_perception.bench.runner\n"
        "assert 'projectaria_tools' not in sys.modules, 'projectaria-tools imported early'\n"
    )
    proc = run_python(code)
    assert proc.returncode == 0, proc.stdout + proc.stderr
