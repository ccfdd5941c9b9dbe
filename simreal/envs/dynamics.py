"""Named physical parameters of a MuJoCo model: sampling their values and applying them from cached nominal values.

Two pure pieces, kept apart from any env so that training, schedules and system identification share them:

* :class:`DynamicsSampler` draws one multiplier per parameter from its :class:`~simreal.envs.spec.ParameterRange`;
* :class:`DynamicsModel` binds a robot's catalogue to a compiled ``MjModel`` by element *names* and writes
  values into it: multipliers, and the offsets of :data:`~simreal.envs.spec.OFFSET_KINDS`. Every write scales (or
  shifts) the nominal values cached when the binding was made, never the current ones, so thousands of resets never
  compound or drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import mujoco
import numpy as np

from simreal.envs.spec import ParameterRange, RobotSpec
from simreal.errors import SpecError

#: Units of the nominal values reported by :meth:`DynamicsModel.nominal` (damping is N·s/m or N·m·s/rad by joint).
UNITS = {
    "mass": "kg",
    "friction": "",
    "damping": "",
    "armature": "",
    "gain": "",
    "kp": "",
    "kv": "",
    "gravity": "m/s²",
    "frictionloss": "N·m",
    "com": "m",
}


class DynamicsSampler:
    """Draws multipliers for a fixed set of parameters, vectorized (it runs at every reset).

    Each draw consumes exactly one uniform number per parameter from the generator, in the order of ``ranges``, so
    the same seed gives the same sequence of dynamics whatever the distributions are.

    Args:
        ranges: name -> distribution.
    """

    def __init__(self, ranges: Mapping[str, ParameterRange]) -> None:
        self.ranges = dict(ranges)
        self.names = tuple(ranges)
        items = list(ranges.values())
        self._low = np.array([r.low for r in items], dtype=np.float64)
        self._high = np.array([r.high for r in items], dtype=np.float64)
        self._width = self._high - self._low
        self._log = np.array([r.distribution == "loguniform" for r in items], dtype=bool)
        self._any_log = bool(self._log.any())
        self._integer = np.array([r.distribution == "integer" for r in items], dtype=bool)
        self._any_integer = bool(self._integer.any())
        with np.errstate(divide="ignore"):
            self._log_low = np.where(self._log, np.log(np.where(self._log, self._low, 1.0)), 0.0)
            self._log_span = np.where(self._log, np.log(np.where(self._log, self._high, 1.0)), 0.0) - self._log_low
        # exact truncated normal by inverting the normal CDF between the bounds
        self._normal: list[tuple[int, NormalDist, float, float]] = []
        for index, r in enumerate(items):
            if r.distribution == "truncnormal" and r.high > r.low:
                mean = (r.low + r.high) / 2 if r.mean is None else r.mean
                std = (r.high - r.low) / 4 if r.std is None else r.std
                normal = NormalDist(mean, std)
                lo, hi = normal.cdf(r.low), normal.cdf(r.high)
                if hi <= lo:  # the whole range lies far in one tail: all mass sits at the nearest bound
                    lo = hi = 0.0 if mean < r.low else 1.0
                self._normal.append((index, normal, lo, hi))

    def sample_block(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """``count`` draws at once, shape ``(count, len(names))``: the same numbers as ``count`` single draws."""
        return self.transform(rng.random((count, len(self.names))))

    def transform(self, u: np.ndarray) -> np.ndarray:
        """Multipliers from uniform numbers in [0, 1), one per parameter: shape ``(count, len(names))`` in and
        out. The uniform stream does not depend on the ranges, so ranges can change between draws."""
        values = self._low + u * self._width
        if self._any_log:
            values = np.where(self._log, np.exp(self._log_low + u * self._log_span), values)
        if self._any_integer:  # each whole number of [low, high] equally likely
            values = np.where(self._integer, self._low + np.floor(u * (self._width + 1)), values)
        for index, normal, lo, hi in self._normal:
            column = np.clip(lo + u[:, index] * (hi - lo), 1e-12, 1 - 1e-12)
            values[:, index] = [normal.inv_cdf(p) for p in column.tolist()]
        return np.minimum(np.maximum(values, self._low), self._high)

    def sample_array(self, rng: np.random.Generator) -> np.ndarray:
        """One draw: the multipliers in the order of :attr:`names`."""
        return self.sample_block(rng, 1)[0]

    def episode(self, values: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        """Run once per episode on its draw (in the order of :attr:`names`): the multipliers to use, and what to
        report beside the episode's return in its last ``info``.

        The plain sampler uses the draw as it is. A schedule may push a subclass that changes it: ADR's pins one
        parameter to a boundary of its range (:class:`simreal.train.schedules.BoundarySampler`).
        """
        return values, {}


@dataclass(frozen=True)
class _Binding:
    name: str
    kind: str
    index: int  # body id for mass, dof address for damping/armature/frictionloss, actuator id for gain/kp/kv,
    # 3 * body id + axis for com; else unused


class DynamicsModel:
    """A robot's parameter catalogue bound to the element ids of one compiled ``MjModel``.

    Args:
        spec: the robot spec.
        model: a model compiled from the robot's MJCF, at nominal values (it is read, not changed).

    Raises:
        SpecError: a parameter names a body, joint or actuator the model does not have.
    """

    def __init__(self, spec: RobotSpec, model: mujoco.MjModel) -> None:
        self.spec = spec
        self.names: tuple[str, ...] = tuple(spec.parameters)
        self._bindings = tuple(self._bind(name, model) for name in self.names)
        # Every field a parameter can touch, flattened into one vector of nominal values. Each entry takes its scale
        # from one slot of the multiplier vector and its shift from one slot of the offset vector: its parameter's
        # (a multiplier's offset slot and an offset's multiplier slot stay neutral), or the last slot of each,
        # which always holds 1.0 and 0.0.
        fields = _fields(model)
        self._sizes = [view.size for view in fields]
        self._nominal = np.concatenate(fields)
        offsets = np.cumsum([0, *self._sizes])
        unscaled = len(self.names)
        self._source = np.full(self._nominal.size, unscaled, dtype=np.intp)
        for position, binding in enumerate(self._bindings):
            for field, elements in _elements(binding, model):
                rows = offsets[field] + elements
                if np.any(self._source[rows] != unscaled):
                    raise SpecError(
                        f"{spec.source}: parameters.{binding.name}: scales an element another parameter already scales"
                    )
                self._source[rows] = position
        self._slices = [slice(a, b) for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
        self._is_offset = np.array([spec.parameters[name].offset for name in self.names], dtype=bool)
        self._any_offset = bool(self._is_offset.any())
        # an offset's elements take their scale from the unscaled slot, a multiplier's their shift from the
        # unshifted one: both vectors then take the values as they are, with no choosing per reset
        offset_rows = self._is_offset[np.minimum(self._source, unscaled - 1)] & (self._source < unscaled)
        self._scale_source = np.where(offset_rows, unscaled, self._source)
        self._offset_source = np.where(offset_rows, self._source, unscaled)
        self._multipliers = np.ones(unscaled + 1)
        self._offsets = np.zeros(unscaled + 1)
        #: each parameter's neutral value (1.0 for a multiplier, 0.0 for an offset), in catalogue order
        self.neutral = np.where(self._is_offset, 0.0, 1.0)
        self._cached_views: tuple[mujoco.MjModel, tuple[np.ndarray, ...]] | None = None

    def _bind(self, name: str, model: mujoco.MjModel) -> _Binding:
        param = self.spec.parameters[name]
        field = f"{self.spec.source}: parameters.{name}"
        if param.kind in ("friction", "gravity"):
            return _Binding(name, param.kind, -1)
        joint_id = -1
        if param.joint is not None:
            joint_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, param.joint)
            if joint_id < 0:
                raise SpecError(f"{field}.joint: no joint named {param.joint!r} in the model")
        if param.kind in ("mass", "com"):
            if param.body is not None:
                body_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, param.body)
                if body_id < 0:
                    raise SpecError(f"{field}.body: no body named {param.body!r} in the model")
            else:
                body_id = int(model.jnt_bodyid[joint_id])
            if param.kind == "com":
                return _Binding(name, "com", 3 * body_id + "xyz".index(str(param.axis)))
            return _Binding(name, "mass", body_id)
        if param.kind in ("damping", "armature", "frictionloss"):
            return _Binding(name, param.kind, int(model.jnt_dofadr[joint_id]))
        # gain, kp, kv: the actuator whose transmission is this joint (actuators are often unnamed in these models)
        for actuator_id in range(model.nu):
            if model.actuator_trntype[actuator_id] == mujoco.mjtTrn.mjTRN_JOINT and (
                model.actuator_trnid[actuator_id, 0] == joint_id
            ):
                if param.kind != "gain" and model.actuator_biastype[actuator_id] != mujoco.mjtBias.mjBIAS_AFFINE:
                    raise SpecError(f"{field}.joint: the actuator driving {param.joint!r} is not a position actuator")
                return _Binding(name, param.kind, actuator_id)
        raise SpecError(f"{field}.joint: no actuator drives joint {param.joint!r}")

    def index_of(self, names: tuple[str, ...]) -> np.ndarray:
        """Positions of ``names`` in the catalogue order used by :meth:`apply_array`."""
        position = {name: i for i, name in enumerate(self.names)}
        return np.array([position[name] for name in names], dtype=np.intp)

    def apply_array(self, model: mujoco.MjModel, data: mujoco.MjData, multipliers: np.ndarray) -> None:
        """Write values, one per parameter in catalogue order, into ``model`` and recompute derived constants.

        Args:
            model: the model to change: the one this binding was made from, or a copy of it.
            data: its data, used by ``mj_setConst`` to recompute the constants that depend on masses and gears.
            multipliers: multipliers of the nominal values (offsets added to them, for the offset kinds), in the
                order of :attr:`names`.
        """
        if self._any_offset:
            self._multipliers[:-1] = self._offsets[:-1] = multipliers
            values = self._nominal * self._multipliers[self._scale_source] + self._offsets[self._offset_source]
        else:
            self._multipliers[:-1] = multipliers
            values = self._nominal * self._multipliers[self._source]
        for view, part in zip(self._views(model), self._slices, strict=True):
            view[:] = values[part]
        mujoco.mj_setConst(model, data)

    def _views(self, model: mujoco.MjModel) -> tuple[np.ndarray, ...]:
        # each attribute access on MjModel builds a new numpy view: build them once per model
        if self._cached_views is None or self._cached_views[0] is not model:
            self._cached_views = (model, _fields(model))
        return self._cached_views[1]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cached_views": None}

    def nominal(self) -> dict[str, float]:
        """Each parameter's nominal physical value: body mass (kg), mean sliding friction over geoms, joint damping,
        armature or frictionloss, actuator gear, position gain kp, velocity gain kv, the gravity magnitude (m/s²),
        or the centre of mass's coordinate along the axis (m, in the body's frame)."""
        result = {}
        for position, binding in enumerate(self._bindings):
            values = self._nominal[self._source == position]
            if binding.kind in ("mass", "kp"):
                value = values[0]  # the body mass comes before its inertia, kp (gainprm) before -kp (biasprm)
            elif binding.kind == "kv":
                value = -values[0]  # MuJoCo stores -kv as the bias
            elif binding.kind == "gravity":
                value = np.linalg.norm(values)
            else:
                value = values.mean()
            result[binding.name] = float(value)
        return result


def _fields(model: mujoco.MjModel) -> tuple[np.ndarray, ...]:
    """Flat views of the model fields that parameters scale, in a fixed order (see :func:`_elements`)."""
    return (
        model.body_mass,
        model.body_inertia.reshape(-1),
        model.dof_damping,
        model.actuator_gear[:, 0],
        model.geom_friction[:, 0],
        model.opt.gravity,
        model.dof_armature,
        model.actuator_gainprm[:, 0],
        model.actuator_biasprm[:, 1],
        model.actuator_biasprm[:, 2],
        model.dof_frictionloss,
        model.body_ipos.reshape(-1),
    )


def _elements(binding: _Binding, model: mujoco.MjModel) -> list[tuple[int, np.ndarray]]:
    """``(field number in _fields, flat element indices)`` that one parameter scales."""
    if binding.kind == "mass":
        # same shape, scaled density: mass and inertia scale together
        body = binding.index
        return [(0, np.array([body])), (1, np.arange(3 * body, 3 * body + 3))]
    if binding.kind == "damping":
        return [(2, np.array([binding.index]))]
    if binding.kind == "gain":
        return [(3, np.array([binding.index]))]
    if binding.kind == "armature":
        return [(6, np.array([binding.index]))]
    if binding.kind == "kp":  # kp is gainprm[0] and -kp is biasprm[1]: both scale
        return [(7, np.array([binding.index])), (8, np.array([binding.index]))]
    if binding.kind == "kv":
        return [(9, np.array([binding.index]))]
    if binding.kind == "frictionloss":
        return [(10, np.array([binding.index]))]
    if binding.kind == "com":
        return [(11, np.array([binding.index]))]
    if binding.kind == "friction":
        return [(4, np.arange(model.ngeom))]
    return [(5, np.arange(3))]
