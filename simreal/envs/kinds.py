"""Where each kind of parameter applies in a compiled ``MjModel``: the bodies with mass, whether geoms can touch with
friction, the joints with damping, armature or dry friction, the actuators' gains, gravity, and the bodies whose
centre of mass can move. Each kind's function names its elements from the model's own names and gives the fields of
their catalogue entries (:mod:`simreal.envs.generate` assembles the catalogue from them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mujoco
import numpy as np

#: A frictionloss's default range and limits as fractions of the joint's peak actuator force.
FRICTIONLOSS_RANGE, FRICTIONLOSS_LIMIT = 0.02, 0.5
_JOINT_KINDS = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))


def _name(model: mujoco.MjModel, kind: mujoco.mjtObj, index: int) -> str | None:
    return mujoco.mj_id2name(model, kind, index)


def _masses(model: mujoco.MjModel) -> list[tuple[str, dict[str, Any]]]:
    result = []
    for body in range(1, model.nbody):
        if model.body_mass[body] <= 0:
            continue
        name = _name(model, mujoco.mjtObj.mjOBJ_BODY, body)
        if name is not None:
            result.append((f"{name}_mass", {"body": name, "description": f"mass and inertia of body {name}"}))
            continue
        joints = [j for j in range(model.njnt) if model.jnt_bodyid[j] == body]
        joint = _name(model, mujoco.mjtObj.mjOBJ_JOINT, joints[0]) if joints else None
        if joint is not None:  # an unnamed body without a named joint cannot be bound by name: left out
            description = f"mass and inertia of the body carrying joint {joint}"
            result.append((f"{joint}_body_mass", {"joint": joint, "description": description}))
    return result


def _friction(model: mujoco.MjModel) -> list[tuple[str, dict[str, Any]]]:
    contype, conaffinity, body = model.geom_contype, model.geom_conaffinity, model.geom_bodyid
    touching = (contype[:, None] & conaffinity[None, :]) | (conaffinity[:, None] & contype[None, :])
    parent = model.body_parentid[body]
    touching &= body[:, None] != body[None, :]
    # MuJoCo filters contacts between a body and its parent, unless the parent is the world
    touching &= ~(
        ((parent[:, None] == body[None, :]) & (body[None, :] > 0))
        | ((parent[None, :] == body[:, None]) & (body[:, None] > 0))
    )
    touching &= np.maximum(model.geom_condim[:, None], model.geom_condim[None, :]) > 1  # condim 1: frictionless
    if model.npair == 0 and not touching.any():  # no contact with friction can happen: friction changes nothing
        return []
    return [("friction", {"description": "sliding friction of every geom"})]


def _joint_field(model: mujoco.MjModel, values: np.ndarray, kind: str, what: str) -> list[tuple[str, dict[str, Any]]]:
    result = []
    for joint in range(model.njnt):
        name = _name(model, mujoco.mjtObj.mjOBJ_JOINT, joint)
        if name and model.jnt_type[joint] in _JOINT_KINDS and values[model.jnt_dofadr[joint]] > 0:
            result.append((f"{name}_{kind}", {"joint": name, "description": f"{what} of joint {name}"}))
    return result


def _actuated_joints(model: mujoco.MjModel, position: bool) -> list[str]:
    """The joints driven by motors (``position`` false) or by position actuators (true), in joint order."""
    joints: list[tuple[int, str]] = []
    for actuator in range(model.nu):
        if model.actuator_trntype[actuator] != mujoco.mjtTrn.mjTRN_JOINT:
            continue
        affine = model.actuator_biastype[actuator] == mujoco.mjtBias.mjBIAS_AFFINE
        is_position = affine and model.actuator_gainprm[actuator, 0] > 0 and model.actuator_biasprm[actuator, 1] < 0
        is_motor = model.actuator_biastype[actuator] == mujoco.mjtBias.mjBIAS_NONE
        joint = int(model.actuator_trnid[actuator, 0])
        name = _name(model, mujoco.mjtObj.mjOBJ_JOINT, joint)
        if name and (is_position if position else is_motor):
            joints.append((joint, name))
    return [name for _, name in sorted(joints)]


def _gains(model: mujoco.MjModel) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{joint}_gain", {"joint": joint, "description": f"gear of the actuator driving {joint}"})
        for joint in _actuated_joints(model, position=False)
    ]


def _kp(model: mujoco.MjModel) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{joint}_kp", {"joint": joint, "description": f"position gain of the position actuator on {joint}"})
        for joint in _actuated_joints(model, position=True)
    ]


def _kv(model: mujoco.MjModel) -> list[tuple[str, dict[str, Any]]]:
    result = []
    for joint in _actuated_joints(model, position=True):
        actuator = _actuator_of(model, joint)
        if model.actuator_biasprm[actuator, 2] < 0:  # a velocity gain to scale
            result.append(
                (f"{joint}_kv", {"joint": joint, "description": f"velocity gain of the position actuator on {joint}"})
            )
    return result


def _actuator_of(model: mujoco.MjModel, joint: str) -> int:
    joint_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, joint)
    return next(a for a in range(model.nu) if model.actuator_trnid[a, 0] == joint_id)


def _gravity(model: mujoco.MjModel) -> list[tuple[str, dict[str, Any]]]:
    if not np.any(model.opt.gravity):
        return []
    return [("gravity", {"description": "gravity vector"})]


def _peak_force(model: mujoco.MjModel, actuator: int) -> float:
    """The largest force or torque an actuator can apply at its joint."""
    if model.actuator_forcelimited[actuator]:
        return float(np.abs(model.actuator_forcerange[actuator]).max())
    control = float(np.abs(model.actuator_ctrlrange[actuator]).max()) if model.actuator_ctrllimited[actuator] else 1.0
    if model.actuator_biastype[actuator] == mujoco.mjtBias.mjBIAS_AFFINE:  # a position servo: kp x its span
        span = float(np.ptp(model.actuator_ctrlrange[actuator])) if model.actuator_ctrllimited[actuator] else 1.0
        return float(model.actuator_gainprm[actuator, 0]) * span
    return abs(float(model.actuator_gear[actuator, 0])) * control


def _round(value: float) -> float:
    return float(f"{value:.2g}")


def _frictionloss(model: mujoco.MjModel) -> list[tuple[str, dict[str, Any]]]:
    result = []
    for joint in range(model.njnt):
        name = _name(model, mujoco.mjtObj.mjOBJ_JOINT, joint)
        actuators = [a for a in range(model.nu) if model.actuator_trnid[a, 0] == joint]
        if not name or model.jnt_type[joint] not in _JOINT_KINDS or not actuators:
            continue
        peak = max(_peak_force(model, a) for a in actuators)
        if not peak > 0:
            continue
        unit = "N" if model.jnt_type[joint] == mujoco.mjtJoint.mjJNT_SLIDE else "N·m"
        fields = {
            "joint": name,
            "range": [0.0, _round(FRICTIONLOSS_RANGE * peak)],
            "limits": [0.0, _round(FRICTIONLOSS_LIMIT * peak)],
            "description": f"dry friction of joint {name}, added ({unit})",
        }
        result.append((f"{name}_frictionloss", fields))
    return result


def _chain_axis(model: mujoco.MjModel, data: mujoco.MjData, body: int) -> np.ndarray | None:
    """The one direction every rotation of ``body`` is about (the hinges on its chain to the world all parallel,
    no ball or free joint), else ``None``; also ``None`` for a body that cannot rotate. Moving the centre of mass
    along it changes nothing: not the inertia about it, and gravity's torque only across it, where nothing turns."""
    axis = None
    while body > 0:
        for joint in range(model.body_jntadr[body], model.body_jntadr[body] + model.body_jntnum[body]):
            kind = model.jnt_type[joint]
            if kind in (mujoco.mjtJoint.mjJNT_BALL, mujoco.mjtJoint.mjJNT_FREE):
                return None
            if kind == mujoco.mjtJoint.mjJNT_HINGE:
                direction = data.xaxis[joint] / np.linalg.norm(data.xaxis[joint])
                if axis is None:
                    axis = direction
                elif abs(abs(float(np.dot(axis, direction))) - 1.0) > 1e-6:
                    return None
        body = int(model.body_parentid[body])
    return axis


def _rotates(model: mujoco.MjModel, body: int) -> bool:
    """Whether a body can rotate: a hinge, ball or free joint on it or on a body it hangs from."""
    while body > 0:
        joints = range(model.body_jntadr[body], model.body_jntadr[body] + model.body_jntnum[body])
        if any(model.jnt_type[j] != mujoco.mjtJoint.mjJNT_SLIDE for j in joints):
            return True
        body = int(model.body_parentid[body])
    return False


def _com(model: mujoco.MjModel) -> list[tuple[str, dict[str, Any]]]:
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    result: list[tuple[str, dict[str, Any]]] = []
    for name, fields in _masses(model):
        body = (
            mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, fields["body"])
            if "body" in fields
            else int(model.jnt_bodyid[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, fields["joint"])])
        )
        if not _rotates(model, body):  # a body that only slides moves the same wherever its mass sits
            continue
        along = _chain_axis(model, data, body)
        frame = data.xmat[body].reshape(3, 3)  # the body frame's axes (columns) in the world: body_ipos's
        element: dict[str, Any] = {key: fields[key] for key in ("body", "joint") if key in fields}
        stem = name.removesuffix("_mass")
        for index, axis in enumerate("xyz"):
            if along is not None and abs(abs(float(np.dot(frame[:, index], along))) - 1.0) < 1e-6:
                continue
            description = f"centre of mass of {stem} moved along its {axis} axis (m)"
            result.append((f"{stem}_com_{axis}", {**element, "axis": axis, "description": description}))
    return result


#: Each kind's elements in a model, kind -> (name, catalogue fields) in model order.
KIND_ELEMENTS: dict[str, Callable[[mujoco.MjModel], list[tuple[str, dict[str, Any]]]]] = {
    "mass": _masses,
    "friction": _friction,
    "damping": lambda model: _joint_field(model, model.dof_damping, "damping", "damping"),
    "armature": lambda model: _joint_field(model, model.dof_armature, "armature", "rotor inertia (armature)"),
    "gain": _gains,
    "kp": _kp,
    "kv": _kv,
    "gravity": _gravity,
    "frictionloss": _frictionloss,
    "com": _com,
}
