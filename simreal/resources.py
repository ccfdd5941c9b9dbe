"""Where the shipped data lives: robot specs (``envs/``) and experiment configs (``configs/``).

In a wheel they are packaged under ``simreal/_data/``; in a source checkout (editable install) they are the top-level
folders of the repository.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return the folder of shipped data called ``name`` (``"envs"`` or ``"configs"``)."""
    packaged = _PACKAGE_DIR / "_data" / name
    if packaged.is_dir():
        return packaged
    return _PACKAGE_DIR.parent / name


def envs_dir() -> Path:
    """The folder holding one ``<robot>.yaml`` spec per robot."""
    return data_dir("envs")


def configs_dir() -> Path:
    """The folder holding the shipped experiment configs."""
    return data_dir("configs")
