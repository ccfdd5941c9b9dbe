"""``MUJOCO_GL``: which OpenGL backend MuJoCo renders with, checked before MuJoCo is imported.

``import mujoco`` raises when ``MUJOCO_GL`` holds an unknown value, or names a library that is not installed
(``osmesa`` without libOSMesa), although most of simreal never renders. So ``import simreal`` checks the variable
first: when it cannot work, the process renders nothing (``MUJOCO_GL=disable`` for MuJoCo) and every command that
does not render works; one that renders raises :class:`~simreal.errors.SetupError` with what to set or install.
"""

from __future__ import annotations

import ctypes.util
import os
import platform

from simreal.errors import SetupError

_OFF = ("disable", "disabled", "off", "false", "0")
#: Values that leave MuJoCo on its default backend, GLFW (which needs a display).
_DEFAULT = ("", "enable", "enabled", "on", "true", "1", "glfw")
_LIBRARIES = {"osmesa": "OSMesa", "egl": "EGL"}
_ADVICE = "set MUJOCO_GL=egl (GPU machines) or MUJOCO_GL=osmesa (CPU; Debian/Ubuntu: apt-get install libosmesa6)"

_problem: str | None = None


def _backends() -> tuple[str, ...]:
    system = platform.system()
    extra = {"Linux": ("glx", "egl", "osmesa"), "Windows": ("wgl",), "Darwin": ("cgl",)}.get(system, ())
    return (*_DEFAULT, *extra)


def diagnose(value: str | None) -> str | None:
    """What is wrong with ``MUJOCO_GL=value`` for rendering, or ``None`` when it may work."""
    chosen = (value or "").lower().strip()
    headless = platform.system() == "Linux" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if chosen in _DEFAULT and headless:
        shown = "unset" if value is None else f"MUJOCO_GL={value}"
        return f"no display for MuJoCo's default (GLFW) renderer ({shown}): {_ADVICE}"
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
    (so that importing MuJoCo succeeds) and remember why."""
    global _problem
    value = os.environ.get("MUJOCO_GL")
    _problem = diagnose(value)
    if value is not None and value.lower().strip() not in (*_OFF, *_backends()):
        os.environ["MUJOCO_GL"] = "disable"
    elif value is not None and value.lower().strip() in _LIBRARIES and _problem is not None:
        os.environ["MUJOCO_GL"] = "disable"  # names a library that is not installed


def require_rendering() -> None:
    """Raise :class:`SetupError` (one line: what to set or install) when this process cannot render."""
    if _problem is not None:
        raise SetupError(_problem)
