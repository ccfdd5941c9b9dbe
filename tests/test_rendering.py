"""Rendering: the camera follows every robot, ``human`` without a window is one line (not an abort), the env checkers
pass headless, and with ``MUJOCO_GL`` unset and no display the first render picks a backend that works.

Everything that renders runs in a subprocess: ``import simreal`` reads ``MUJOCO_GL`` once, and a failed GL setup may
abort the process. Without libOSMesa or libEGL those tests skip, unless SIMREAL_REQUIRE_RENDERING=1 (CI) makes that a
failure.
"""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import FIRST_ROBOTS

OSMESA = ctypes.util.find_library("OSMesa") is not None
EGL = ctypes.util.find_library("EGL") is not None
REQUIRED = os.environ.get("SIMREAL_REQUIRE_RENDERING") == "1"
needs_osmesa = pytest.mark.skipif(not OSMESA and not REQUIRED, reason="libOSMesa is not installed (libosmesa6)")
needs_headless_gl = pytest.mark.skipif(not (OSMESA or EGL) and not REQUIRED, reason="neither libOSMesa nor libEGL")
#: glvnd's EGL finds no driver with this: EGL is installed but cannot create a context.
BROKEN_EGL = {"__EGL_VENDOR_LIBRARY_FILENAMES": "/nonexistent.json"}


def python(code: str, gl: str | None, *args: str, **extra: str) -> subprocess.CompletedProcess:
    """Run ``code`` (with ``args``) in a fresh interpreter without a display, with ``MUJOCO_GL=gl`` (``None``:
    unset) and the ``extra`` environment variables."""
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY", "WAYLAND_DISPLAY")}
    if gl is not None:
        env["MUJOCO_GL"] = gl
    env.update(extra)
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300)


#: Robot pixels (the frame minus the same frame with the robot's geoms hidden) with the root moved along x.
IN_FRAME = """
import json, sys
import mujoco, numpy as np
import simreal

robot, size = sys.argv[1], 64
env = simreal.make(robot, nominal=True, render_mode="rgb_array", width=size, height=size)
env.reset(seed=0)
base = env.unwrapped
model, data = base.model, base.data
robot_geoms = np.flatnonzero(model.geom_bodyid != 0)
# the root's x: the first joint of the model that is free (x is its first coordinate) or slides along x
x_joint = next(j for j in range(model.njnt) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE
               or (model.jnt_type[j] == mujoco.mjtJoint.mjJNT_SLIDE and abs(model.jnt_axis[j][0]) > 0.9))
start = data.qpos[model.jnt_qposadr[x_joint]]
rows = []
for offset in (0.0, 6.0, 15.0, -12.0):  # within the floor (hopper's ends 20 m out)
    data.qpos[model.jnt_qposadr[x_joint]] = start + offset
    mujoco.mj_forward(model, data)
    frame = env.render().astype(int)
    shown = model.geom_rgba.copy()
    model.geom_rgba[robot_geoms, 3] = 0.0
    background = env.render().astype(int)
    model.geom_rgba[:] = shown
    robot_pixels = np.abs(frame - background).max(axis=2) > 40
    columns = np.flatnonzero(robot_pixels.any(axis=0))
    centre = float(columns.mean()) / size if columns.size else -1.0
    rows.append({"offset": offset, "pixels": int(robot_pixels.sum()), "centre": centre})
env.close()
print(json.dumps(rows))
"""


@needs_osmesa
@pytest.mark.parametrize("robot", FIRST_ROBOTS)  # the robots that move away from their start
def test_the_camera_follows_the_robot_far_from_its_start(robot):
    result = python(IN_FRAME, "osmesa", robot)
    assert result.returncode == 0, result.stderr
    at_start, *moved = json.loads(result.stdout)
    assert at_start["pixels"] > 0.01 * 64 * 64, "the robot is not in the first frame"
    for row in moved:
        # as big as at the start (the camera keeps its distance) and near the middle (it looks at the robot)
        assert row["pixels"] > 0.5 * at_start["pixels"], f"{robot} left the frame {row['offset']:+g} m from its start"
        assert abs(row["centre"] - 0.5) < 0.25, f"{robot} is at the edge of the frame: {row}"


#: The same actions with and without a render mode, rendering every step: the observations must not change.
SAME_NUMBERS = """
import numpy as np, simreal
def run(**kwargs):
    env = simreal.make("hopper", **kwargs)
    obs = [env.reset(seed=3)[0]]
    rng = np.random.default_rng(0)
    for _ in range(30):
        obs.append(env.step(rng.uniform(-1, 1, env.action_space.shape))[0])
        if kwargs:
            env.render()
    env.close()
    return np.asarray(obs)
print(np.array_equal(run(), run(render_mode="rgb_array", width=32, height=32)))
"""


@needs_osmesa
def test_rendering_with_the_tracking_camera_changes_no_number():
    result = python(SAME_NUMBERS, "osmesa")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_the_root_body_is_found_from_the_model_structure():
    import mujoco

    from simreal.envs.rendering import root_body

    # a static base (no joint), then a body on a hinge, then the robot on a slide: the slide wins
    xml = """<mujoco><worldbody>
      <body name="base"><geom size=".1"/></body>
      <body name="door"><joint type="hinge"/><geom size=".1"/></body>
      <body name="robot"><joint type="slide"/><geom size=".1"/><body name="leg"><joint/><geom size=".1"/></body></body>
    </worldbody></mujoco>"""
    model = mujoco.MjModel.from_xml_string(xml)
    assert mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, root_body(model)) == "robot"
    hinged = mujoco.MjModel.from_xml_string(xml.replace('type="slide"', 'type="hinge"'))
    assert mujoco.mj_id2name(hinged, mujoco.mjtObj.mjOBJ_BODY, root_body(hinged)) == "door"


HUMAN = """
import simreal
try:
    simreal.make("hopper", render_mode="human")
except simreal.SetupError as exc:
    print("SetupError:", exc)
"""


@pytest.mark.parametrize("gl", ["osmesa", "egl", None, "disable"])
def test_a_window_without_a_display_is_one_line_not_an_abort(gl):
    result = python(HUMAN, gl)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])  # was 134: GLFW's assertion
    (line,) = result.stdout.splitlines()
    assert line.startswith("SetupError: render_mode='human' opens a window")
    assert "use render_mode='rgb_array'" in line


CHECK_ENV = """
import warnings
import simreal
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

warnings.simplefilter("ignore")
env = simreal.make("hopper")
print(env.metadata["render_modes"])
check_env(env)
sb3_check_env(simreal.make("hopper"))
if env.metadata["render_modes"]:
    sb3_check_env(simreal.make("hopper", render_mode="rgb_array", width=32, height=32), skip_render_check=False)
print("checked")
"""


@needs_headless_gl
def test_the_env_checkers_pass_headless_with_their_defaults():
    result = python(CHECK_ENV, None)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    modes, done = result.stdout.splitlines()
    # no window without a display: check_env renders every declared mode
    assert modes == "['rgb_array', 'depth_array', 'rgbd_tuple']" and done == "checked"


def test_the_env_checkers_pass_where_rendering_is_off():
    result = python(CHECK_ENV, "disable")
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert result.stdout.splitlines() == ["[]", "checked"]


#: Render one frame and say which backend was chosen and whether the frame shows something.
RENDER = """
import os, sys
import simreal
assert "OpenGL" not in sys.modules and "MUJOCO_GL" not in os.environ, "import simreal probed or loaded a backend"
env = simreal.make("hopper", render_mode="rgb_array", width=32, height=32)
env.reset(seed=0)
frame = env.render()
env.close()
print(os.environ["MUJOCO_GL"], frame.shape, bool(frame.std() > 10))
"""


@needs_headless_gl
def test_unset_mujoco_gl_without_a_display_picks_a_backend_that_renders():
    result = python(RENDER, None)
    assert result.returncode == 0, result.stderr[-2000:]
    backend, *rest = result.stdout.split(maxsplit=1)
    assert backend == ("egl" if EGL else "osmesa") or (backend == "osmesa" and not REQUIRED)
    assert rest == ["(32, 32, 3) True\n"]


@needs_osmesa
def test_an_egl_that_cannot_render_falls_back_to_osmesa():
    broken = python("import mujoco.egl; mujoco.egl.GLContext(8, 8)", "egl", **BROKEN_EGL)
    if broken.returncode == 0:
        pytest.skip("this EGL does not read __EGL_VENDOR_LIBRARY_FILENAMES (not glvnd)")
    result = python(RENDER, None, **BROKEN_EGL)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == "osmesa (32, 32, 3) True\n"


#: Ask for a render mode; print the one-line SetupError if rendering cannot work.
ONE_LINE = """
import simreal
try:
    simreal.make("hopper", render_mode="rgb_array")
except simreal.SetupError as exc:
    print(exc)
"""


@pytest.mark.parametrize(
    ("gl", "extra", "message"),
    [
        ("invalid", {}, "MUJOCO_GL=invalid is not a rendering backend MuJoCo knows: set MUJOCO_GL="),
        ("glfw", {}, "no display for MuJoCo's default (GLFW) renderer (MUJOCO_GL=glfw): set MUJOCO_GL="),
        ("egl", BROKEN_EGL, "MUJOCO_GL=egl cannot create an OpenGL context (Cannot initialize a EGL device display"),
    ],
)
def test_an_explicit_mujoco_gl_is_respected_and_a_broken_one_is_one_line(gl, extra, message):
    if extra and not EGL:
        pytest.skip("libEGL is not installed")
    result = python(ONE_LINE, gl, **extra)
    assert result.returncode == 0, result.stderr[-2000:]
    if extra and not result.stdout:
        pytest.skip("this EGL does not read __EGL_VENDOR_LIBRARY_FILENAMES (not glvnd)")
    (line,) = result.stdout.splitlines()
    assert line.startswith(message)
