"""What the machine around simreal may lack or hold: MUJOCO_GL settings, broken robot files, missing extras."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
#: Ask for a render mode; print the one-line SetupError if rendering cannot work.
RENDER = (
    "import simreal\n"
    "try:\n"
    "    simreal.make('hopper', render_mode='rgb_array')\n"
    "except simreal.SetupError as exc:\n"
    "    print(exc)\n"
)


def run(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "MUJOCO_GL"}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120)


def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "MUJOCO_GL"}
    full.update(env)
    command = [sys.executable, "-m", "simreal.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=full, timeout=120)


@pytest.mark.parametrize("gl", [None, "invalid", "osmesa", "egl", "glfw", "disable"])
def test_commands_that_do_not_render_work_whatever_mujoco_gl_says(gl):
    env = {} if gl is None else {"MUJOCO_GL": gl}
    help_text = cli("--help", **env)
    assert help_text.returncode == 0 and "Traceback" not in help_text.stderr, help_text.stderr
    listed = cli("envs", "--robot", "inverted_pendulum", "--json", **env)
    assert listed.returncode == 0 and '"robot": "inverted_pendulum"' in listed.stdout, listed.stderr
    stepped = run(
        "import simreal; e = simreal.make('hopper'); e.reset(seed=0); print(e.step(e.action_space.sample())[1])", **env
    )
    assert stepped.returncode == 0, stepped.stderr


def test_rendering_under_an_unusable_mujoco_gl_is_one_clear_error():
    result = run(RENDER, MUJOCO_GL="invalid")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("MUJOCO_GL=invalid is not a rendering backend MuJoCo knows: set MUJOCO_GL=")


def test_a_window_backend_without_a_display_says_what_to_set():
    # MUJOCO_GL unset picks an offscreen backend (tests/test_rendering.py); GLFW, asked for by name, needs a display
    headless = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY", "WAYLAND_DISPLAY")}
    headless["MUJOCO_GL"] = "glfw"
    result = subprocess.run([sys.executable, "-c", RENDER], capture_output=True, text=True, env=headless, timeout=120)
    assert result.returncode == 0, result.stderr
    expected = "no display for MuJoCo's default (GLFW) renderer (MUJOCO_GL=glfw): set MUJOCO_GL=egl"
    assert result.stdout.startswith(expected)


def test_import_reads_no_robot_file_and_a_broken_one_breaks_only_its_robot(tmp_path):
    envs = tmp_path / "envs"
    shutil.copytree(REPO / "envs", envs)
    (envs / "walker2d.yaml").write_text("robot: walker2d\nparameters: [not, a, mapping\n")
    code = (
        "import simreal, simreal.envs.robots as r, gymnasium as gym, pathlib\n"
        f"r.envs_dir = lambda: pathlib.Path({str(envs)!r})\n"
        "assert 'simreal/Walker2d-v0' in gym.registry\n"
        "print(simreal.get_dynamics(gym.make('simreal/Hopper-v0', target='severe'))['torso_mass'])\n"
        "try:\n"
        "    gym.make('simreal/Walker2d-v0')\n"
        "except simreal.SpecError as exc:\n"
        "    print(exc)\n"
    )
    result = run(code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "1.5" and "walker2d.yaml: malformed YAML" in lines[1]


def test_registered_ids_match_the_robot_specs():
    from simreal.envs.registration import SHIPPED_IDS

    specs = {path.stem: yaml.safe_load(path.read_text())["simreal_id"] for path in (REPO / "envs").glob("*.yaml")}
    assert specs == SHIPPED_IDS


def test_envs_and_sysid_import_without_torch_or_stable_baselines3():
    code = (
        "import sys, simreal, simreal.envs.catalogue, simreal.sysid.identify, simreal.sysid.collect, simreal.cli\n"
        "print(sorted(m for m in ('torch', 'stable_baselines3', 'tensorboard') if m in sys.modules))\n"
    )
    result = run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_training_without_the_train_extra_says_what_to_install():
    # find_spec answering "not installed" for stable_baselines3 stands in for a machine without the extra
    code = (
        "import importlib.util, sys\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'stable_baselines3' else real(name, *a)\n"
        "from simreal.cli import app\n"
        "sys.argv = ['simreal', 'train', 'hopper_ppo_dr']\n"
        "app()\n"
    )
    result = run(code)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("simreal train needs stable_baselines3: pip install 'simreal[train]'")
