"""Rendering: which OpenGL backend MuJoCo renders with (``MUJOCO_GL``), which render modes this process can offer,
and a camera that follows the robot.

``import mujoco`` raises when ``MUJOCO_GL`` holds an unknown value, or names a library that is not installed
(``osmesa`` without libOSMesa), although most of simreal never renders. So ``import simreal`` checks the variable
first: when it cannot work, the process renders nothing (``MUJOCO_GL=disable`` for MuJoCo) and every command that
does not render works; one that renders raises :class:`~simreal.errors.SetupError` with what to set or install.

With ``MUJOCO_GL`` unset on a Linux machine without a display (MuJoCo's default, GLFW, needs one), the first render
picks a backend that works: EGL, else OSMesa. The choice is made in a subprocess that renders one small frame and
checks it is not blank, because a failed EGL attempt cannot be undone in-process (PyOpenGL fixes its platform on
first use) and a broken driver may abort rather than raise. It costs about a second, once per process that renders,
and nothing for the rest: ``import mujoco`` with the variable unset loads no OpenGL library, and gymnasium reads
``MUJOCO_GL`` only when it creates its first renderer. The choice is then written to ``MUJOCO_GL``, so that child
processes inherit it instead of probing again. An explicit ``MUJOCO_GL`` is always respected.
"""

from __future__ import annotations

import ctypes.util
import os
import platform
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from simreal.errors import SetupError

if TYPE_CHECKING:  # MuJoCo is imported only once MUJOCO_GL is settled
    import gymnasium as gym
    import mujoco

_OFF = ("disable", "disabled", "off", "false", "0")
#: Values that leave MuJoCo on its default backend, GLFW (which needs a display).
_DEFAULT = ("", "enable", "enabled", "on", "true", "1", "glfw")
_LIBRARIES = {"osmesa": "OSMesa", "egl": "EGL"}
#: Tried in this order when ``MUJOCO_GL`` is unset and there is no display: EGL is hardware-accelerated where a GPU
#: driver provides it (and Mesa's EGL renders in software otherwise); OSMesa is software-only.
_HEADLESS_BACKENDS = ("egl", "osmesa")
_ADVICE = (
    "set MUJOCO_GL=egl or MUJOCO_GL=osmesa, or leave it unset on a machine without a display to have one picked "
    "(CPU machines, Debian/Ubuntu: apt-get install libosmesa6)"
)
#: The render modes of gymnasium's MuJoCo envs: a window, then the offscreen ones.
WINDOW_MODE = "human"
OFFSCREEN_MODES = ("rgb_array", "depth_array", "rgbd_tuple")
#: Run with ``MUJOCO_GL`` set to a candidate: exit status 0 when it renders a frame that is not blank.
_PROBE = """
import mujoco
xml = '<mujoco><worldbody><light pos="0 0 3"/><geom type="box" size=".5 .5 .5" rgba="1 0 0 1"/></worldbody></mujoco>'
model = mujoco.MjModel.from_xml_string(xml)
data = mujoco.MjData(model)
mujoco.mj_forward(model, data)
with mujoco.Renderer(model, 16, 16) as renderer:
    renderer.update_scene(data)
    frame = renderer.render()
if frame.std() == 0:
    raise SystemExit("rendered a blank frame")
"""
_PROBE_TIMEOUT_S = 60

_problem: str | None = None
#: ``MUJOCO_GL`` was unset on a headless Linux machine: the backend is chosen at the first render.
_choose_at_first_render = False
#: An explicit offscreen backend whose context creation has been checked in this process.
_checked = False


def _headless() -> bool:
    return platform.system() == "Linux" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _backends() -> tuple[str, ...]:
    system = platform.system()
    extra = {"Linux": ("glx", "egl", "osmesa"), "Windows": ("wgl",), "Darwin": ("cgl",)}.get(system, ())
    return (*_DEFAULT, *extra)


def _unset(value: str | None) -> bool:
    return value is None or not value.strip()


def _installed_headless_backends() -> list[str]:
    return [name for name in _HEADLESS_BACKENDS if ctypes.util.find_library(_LIBRARIES[name]) is not None]


def diagnose(value: str | None) -> str | None:
    """What is wrong with ``MUJOCO_GL=value`` for rendering, or ``None`` when it may work."""
    chosen = (value or "").lower().strip()
    if _unset(value) and _headless():
        if _installed_headless_backends():
            return None  # EGL or OSMesa, chosen at the first render
        return f"no display, and neither libEGL nor libOSMesa is installed (MUJOCO_GL unset): {_ADVICE}"
    if chosen in _DEFAULT and _headless():
        return f"no display for MuJoCo's default (GLFW) renderer (MUJOCO_GL={value}): {_ADVICE}"
    if chosen in _OFF:
        return f"rendering is off (MUJOCO_GL={value}): {_ADVICE}"
    if chosen not in _backends():
        return f"MUJOCO_GL={value} is not a rendering backend MuJoCo knows: {_ADVICE}"
    library = _LIBRARIES.get(chosen)
    if library is not None and ctypes.util.find_library(library) is None:
        return f"MUJOCO_GL={value} but lib{library} is not installed: {_ADVICE}"
    return None


def guard_mujoco_import() -> None:
    """Run before the first ``import mujoco``: when ``MUJOCO_GL`` cannot work, turn rendering off for this process
    (so that importing MuJoCo succeeds) and remember why; when it is unset without a display, remember to choose a
    headless backend at the first render. Reads no library and starts nothing."""
    global _problem, _choose_at_first_render, _checked
    value = os.environ.get("MUJOCO_GL")
    _problem = diagnose(value)
    _checked = False
    _choose_at_first_render = _unset(value) and _headless() and _problem is None
    if _choose_at_first_render and value is not None:
        del os.environ["MUJOCO_GL"]  # blank: gymnasium would look it up as a backend name
    elif value is not None and value.lower().strip() not in (*_OFF, *_backends()):
        os.environ["MUJOCO_GL"] = "disable"
    elif value is not None and value.lower().strip() in _LIBRARIES and _problem is not None:
        os.environ["MUJOCO_GL"] = "disable"  # names a library that is not installed


def render_modes() -> list[str]:
    """The render modes this process can offer (``env.metadata["render_modes"]`` of simreal envs): the offscreen
    modes where ``MUJOCO_GL`` can render, ``human`` only where a window can open. Decided from the environment and the
    installed libraries, without creating a GL context."""
    modes = [] if _window_problem() is not None else [WINDOW_MODE]
    return modes + ([] if _problem is not None else list(OFFSCREEN_MODES))


def _window_problem() -> str | None:
    value = os.environ.get("MUJOCO_GL")
    if _choose_at_first_render or _headless():
        return "render_mode='human' opens a window, and there is no display: use render_mode='rgb_array'"
    if (value or "").lower().strip() not in _DEFAULT:
        return (
            f"render_mode='human' opens a window (GLFW), and MUJOCO_GL={value} renders offscreen only: "
            "use render_mode='rgb_array', or unset MUJOCO_GL"
        )
    return None


def require_rendering(render_mode: str = "rgb_array") -> None:
    """Make sure this process can render in ``render_mode``; with ``MUJOCO_GL`` unset and no display, choose the
    backend now (EGL, else OSMesa: whichever renders a frame).

    Raises:
        SetupError: one line saying what to set or install.
    """
    if render_mode == WINDOW_MODE:
        problem = _window_problem()
        if problem is not None:
            raise SetupError(problem)
        return
    if _problem is not None:
        raise SetupError(_problem)
    if _choose_at_first_render:
        _choose_headless_backend()
    else:
        _check_explicit_backend()


def _choose_headless_backend() -> None:
    global _problem, _choose_at_first_render, _checked
    failures = []
    for backend in _installed_headless_backends():
        reason = _probe(backend)
        if reason is None:
            os.environ["MUJOCO_GL"] = backend
            _choose_at_first_render, _checked = False, True
            return
        failures.append(f"{backend}: {reason}")
    _problem = f"no display, and no headless backend renders here ({'; '.join(failures)}): {_ADVICE}"
    raise SetupError(_problem)


def _probe(backend: str) -> str | None:
    """Render a frame in a subprocess with ``MUJOCO_GL=backend``: ``None`` when it works, else why not."""
    environment = {**os.environ, "MUJOCO_GL": backend}
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE],
            env=environment,
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return f"no frame within {_PROBE_TIMEOUT_S} s"
    if done.returncode == 0:
        return None
    lines = done.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit status {done.returncode}"


def _check_explicit_backend() -> None:
    """With ``MUJOCO_GL=egl`` or ``osmesa``, create and free one context now (milliseconds), so that a library that
    is installed but cannot render (EGL without a usable device) is one line, not a traceback at the first frame."""
    global _checked, _problem
    value = (os.environ.get("MUJOCO_GL") or "").lower().strip()
    if _checked or value not in _LIBRARIES:
        return
    import importlib

    try:
        context = importlib.import_module(f"mujoco.{value}").GLContext(16, 16)
        context.free()
    except (ImportError, RuntimeError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        _problem = f"MUJOCO_GL={value} cannot create an OpenGL context ({reason}): {_ADVICE}"
        raise SetupError(_problem) from None
    _checked = True


def root_body(model: mujoco.MjModel) -> int:
    """The body a camera should follow in a MuJoCo model: the first child of the world body that a free or slide
    joint moves (the robot's root: hopper's and ant's torso, the pendulum's cart); else the first child of the world
    with any joint; else the world body (0)."""
    import mujoco

    moving = {int(mujoco.mjtJoint.mjJNT_FREE), int(mujoco.mjtJoint.mjJNT_SLIDE)}
    children = [body for body in range(1, model.nbody) if model.body_parentid[body] == 0]
    for wanted in (moving, None):
        for body in children:
            start, count = int(model.body_jntadr[body]), int(model.body_jntnum[body])
            types = {int(kind) for kind in model.jnt_type[start : start + count]}
            if types and (wanted is None or types & wanted):
                return body
    return 0


def follow_robot(env: gym.Env[Any, Any], body: int | None = None) -> None:
    """Make a gymnasium MuJoCo env's camera follow its robot: MuJoCo's tracking camera on ``body`` (default:
    :func:`root_body`), which moves its look-at point to that body's subtree centre of mass every frame, at the
    distance and angles of the env's ``default_camera_config``.

    gymnasium's renderer applies ``default_camera_config`` (``trackbodyid`` included) to a *free* camera and sets it
    back to free before every frame, and MuJoCo follows a body only with a tracking camera: so without this the
    camera stays where the episode started. A camera the caller chose (``camera_id``/``camera_name`` naming one of the
    model's cameras) is left alone.

    Args:
        env: a gymnasium MuJoCo env, wrapped or not, made with a render mode.
        body: the body to follow.
    """
    import mujoco

    from simreal.envs.mujoco_base import mujoco_env

    base = mujoco_env(env)
    renderer = getattr(base, "mujoco_renderer", None)
    if renderer is None or renderer.camera_id not in (-1, None):
        return
    config = dict(renderer.default_cam_config or {})
    config["type"] = mujoco.mjtCamera.mjCAMERA_TRACKING
    config["trackbodyid"] = root_body(base.model) if body is None else body
    renderer.default_cam_config = config
    renderer.camera_id = None  # None: the renderer leaves the camera's type as configured on every frame
