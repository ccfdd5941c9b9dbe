"""Domain-randomized envs and targets: the rules DR libraries are known to break."""

from __future__ import annotations

import pickle

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import simreal
from simreal.envs.mujoco_base import MujocoWarning
from simreal.envs.ranges import default_parameters
from simreal.envs.robots import load_robot
from tests.conftest import ROBOTS, TARGETS, rollout


@pytest.mark.parametrize("robot", ROBOTS)
def test_randomized_env_passes_gymnasium_checker(robot):
    check_env(simreal.make(robot).unwrapped, skip_render_check=True)
    check_env(simreal.make(robot), skip_render_check=True)


@pytest.mark.parametrize("robot", ROBOTS)
@pytest.mark.parametrize("target", TARGETS)
def test_shipped_target_passes_gymnasium_checker(robot, target):
    env = simreal.make(robot, target=target)
    check_env(env, skip_render_check=True)
    expected = {name: param.neutral for name, param in load_robot(robot).parameters.items()}
    expected.update(load_robot(robot).targets[target].parameters)
    assert simreal.get_dynamics(env) == expected


def test_resets_scale_from_nominal_without_drift():
    env = simreal.make("hopper")
    model = env.unwrapped.model
    nominal = gym.make("Hopper-v5").unwrapped.model
    torso = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "torso")
    for episode in range(3000):
        _, info = env.reset(seed=episode if episode == 0 else None)
        dyn = info["dynamics"]
        assert model.body_mass[torso] == nominal.body_mass[torso] * dyn["torso_mass"]
        assert np.array_equal(model.geom_friction[:, 0], nominal.geom_friction[:, 0] * dyn["friction"])
    simreal.set_dynamics(env, {name: 1.0 for name in dyn})
    for field in ("body_mass", "body_inertia", "geom_friction", "dof_damping", "actuator_gear"):
        assert np.array_equal(getattr(model, field), getattr(nominal, field)), field
    assert np.array_equal(model.opt.gravity, nominal.opt.gravity)


def test_mass_change_recomputes_derived_constants():
    env = simreal.make("hopper", nominal=True)
    env.reset(seed=0)
    model = env.unwrapped.model
    before = model.body_subtreemass[0]
    invweight_before = model.dof_invweight0.copy()
    simreal.set_dynamics(env, {"torso_mass": 1.5, "foot_mass": 0.5})
    assert model.body_subtreemass[0] == pytest.approx(model.body_mass.sum())
    assert model.body_subtreemass[0] != pytest.approx(before)
    assert not np.allclose(model.dof_invweight0, invweight_before)


def test_same_seed_same_dynamics_and_samples_inside_ranges():
    spec = load_robot("hopper")

    def sequence(seed):
        env = simreal.make("hopper")
        first = env.reset(seed=seed)[1]["dynamics"]
        return [first] + [env.reset()[1]["dynamics"] for _ in range(199)]

    a, b, c = sequence(3), sequence(3), sequence(4)
    assert a == b
    assert a != c
    for values in a:
        for name, value in values.items():
            low, high = spec.parameters[name].range
            assert low <= value <= high, (name, value)
    # every parameter randomized by default is really sampled: it takes many distinct values; the others stay
    for name in default_parameters(spec):
        assert len({values[name] for values in a}) == len(a)
    assert {values["foot_joint_armature"] for values in a} == {1.0}  # optional: in the catalogue, not randomized


@pytest.mark.parametrize("robot", ROBOTS)
def test_every_parameter_changes_the_dynamics(robot):
    spec = load_robot(robot)
    env = simreal.make(robot, nominal=True)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(60, *env.action_space.shape))
    actions = actions * env.action_space.high
    baseline = rollout(env, actions, kick=0.5)
    for name, param in spec.parameters.items():
        simreal.set_dynamics(env, {name: param.range[1]})
        changed = rollout(env, actions, kick=0.5)
        simreal.set_dynamics(env, {name: param.neutral})
        n = min(len(changed), len(baseline))
        assert not np.allclose(changed[:n], baseline[:n]), f"{robot}: {name} left the trajectory unchanged"
    assert np.array_equal(rollout(env, actions, kick=0.5), baseline)


def test_target_effects_change_the_trajectory_deterministically():
    env = simreal.make("hopper", target="severe")
    actions = np.full((40, 3), 0.5)
    first, again = rollout(env, actions, seed=1), rollout(env, actions, seed=1)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, rollout(env, actions, seed=2))


def test_unstable_simulation_truncates_instead_of_crashing():
    env = simreal.make("hopper", nominal=True)
    obs, _ = env.reset(seed=0)
    env.unwrapped.data.qvel[:] = np.nan
    with pytest.warns(MujocoWarning, match="QVEL"):
        obs2, reward, terminated, truncated, info = env.step(np.zeros(3))
    assert info["sim_unstable"] is True
    assert truncated and not terminated
    assert reward == 0.0
    assert np.isfinite(obs2).all()
    _, info = env.reset()
    _, _, _, truncated, info = env.step(np.zeros(3))
    assert "sim_unstable" not in info and not truncated


def test_step_before_reset_is_refused():
    env = simreal.make("hopper")
    with pytest.raises(gym.error.ResetNeeded):
        env.step(np.zeros(3))


def test_mujoco_warnings_leave_no_log_file_behind(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = simreal.make("halfcheetah", nominal=True)  # its model file uses a deprecated attribute
    env.reset(seed=0)
    env.unwrapped.data.qacc_warmstart[:] = np.inf
    env.unwrapped.data.qvel[:] = np.inf
    with pytest.warns(MujocoWarning):
        env.step(np.zeros(6))
    assert list(tmp_path.iterdir()) == []


def test_extreme_parameters_never_return_nan():
    spec = load_robot("hopper")
    extreme = {}
    for name, param in spec.parameters.items():
        low, high = param.hard_limits
        extreme[name] = high if param.kind in ("gain", "gravity") else max(low, 0.1)
    env = simreal.make("hopper", target={"parameters": extreme})
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    for _ in range(500):
        obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, 3))
        assert np.isfinite(obs).all() and np.isfinite(reward)
        if terminated or truncated:
            env.reset()


def test_get_and_set_dynamics_through_wrappers_and_registration():
    import simreal  # noqa: F401  (registers the ids)

    env = gym.make("simreal/Hopper-v0", target="moderate")
    assert simreal.get_dynamics(env)["torso_mass"] == 1.25
    simreal.set_dynamics(env, {"torso_mass": 1.4})
    assert simreal.get_dynamics(env)["torso_mass"] == 1.4
    env.reset(seed=0)
    assert simreal.get_dynamics(env)["torso_mass"] == 1.4  # a target keeps what was set
    randomized = gym.wrappers.RecordEpisodeStatistics(simreal.make("walker2d"))
    _, info = randomized.reset(seed=0)
    assert simreal.get_dynamics(randomized) == info["dynamics"]
    rebuilt = gym.make(env.spec)
    assert rebuilt.spec.id == "simreal/Hopper-v0"
    assert simreal.get_dynamics(rebuilt)["torso_mass"] == 1.25
    direct = simreal.make("ant", ranges={"torso_mass": [0.9, 1.1]}, parameters=["torso_mass"])
    assert simreal.get_dynamics(gym.make(direct.spec)) == simreal.get_dynamics(direct)
    assert gym.make(direct.spec).reset(seed=3)[1]["dynamics"] == direct.reset(seed=3)[1]["dynamics"]
    with pytest.raises(simreal.SimrealError, match="not a simreal env"):
        simreal.get_dynamics(gym.make("Hopper-v5"))


def test_envs_pickle_with_their_dynamics():
    env = simreal.make("hopper", target="severe")
    env.reset(seed=0)
    clone = pickle.loads(pickle.dumps(env))
    assert simreal.get_dynamics(clone) == simreal.get_dynamics(env)
    assert np.array_equal(clone.unwrapped.model.body_mass, env.unwrapped.model.body_mass)
    actions = np.full((30, 3), 0.3)
    assert np.array_equal(rollout(clone, actions, seed=5), rollout(env, actions, seed=5))


def test_vec_env_dynamics_across_processes():
    from stable_baselines3.common.vec_env import SubprocVecEnv

    venv = SubprocVecEnv([lambda: simreal.make("hopper") for _ in range(2)])
    try:
        venv.seed(7)
        venv.reset()
        dynamics = simreal.get_dynamics(venv)
        assert len(dynamics) == 2 and dynamics[0] != dynamics[1]
        simreal.set_dynamics(venv, [{"torso_mass": 1.1}, {"torso_mass": 0.9}])
        assert [d["torso_mass"] for d in simreal.get_dynamics(venv)] == [1.1, 0.9]
    finally:
        venv.close()
