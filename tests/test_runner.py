"""The policy runner: a policy's input built from a plain env's observations is the wrapper stack's, for every kind of
input; the runner acts as the model does on the wrapped env; an env rebuilt from its spec keeps its estimator."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import simreal
from simreal.envs.factory import make_env
from simreal.envs.inputs import InputLayout, PolicyInput
from simreal.envs.privileged import DynamicsInputSpec, PrivilegedSpec
from simreal.envs.robots import load_robot
from simreal.envs.runner import run_episode
from simreal.envs.vector import EnvFactory, normalized_like, vectorize
from simreal.errors import DataError
from simreal.runs.policy import load_policy

NAMES = ("torso_mass", "friction")
POLICIES = Path(__file__).resolve().parent.parent / "policies"


class Mean:
    """A stand-in estimator: the mean of what it reads, once per parameter (it depends on every input)."""

    history = 3

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        return np.full(len(NAMES), np.tanh(np.mean(inputs)))


PRIVILEGED = PrivilegedSpec(("friction", "obs_noise_std"), (0.0, 0.01), (0.1, 1e-4))
#: every kind of input: (policy history, dynamics input, estimator)
KINDS = {
    "plain": (0, None),
    "history": (3, None),
    "true dynamics": (0, DynamicsInputSpec(NAMES)),
    "estimated dynamics": (0, DynamicsInputSpec(NAMES, Mean())),
    "rma history": (0, DynamicsInputSpec(NAMES, history=4)),
    "privileged": (0, DynamicsInputSpec((), privileged=PRIVILEGED)),
    "history, estimate and privileged": (2, DynamicsInputSpec(NAMES, Mean(), privileged=PRIVILEGED)),
}


def layout_of(history: int, inputs: DynamicsInputSpec | None) -> InputLayout:
    if inputs is None:
        return InputLayout(11, 3, history=history)
    source = "none" if not inputs.names else "estimated" if inputs.estimator is not None else "true"
    return InputLayout(
        11,
        3,
        dynamics=inputs.names,
        source=source,
        estimator_history=inputs.estimator.history if inputs.estimator is not None else 0,
        raw_history=inputs.history,
        history=history,
        privileged=inputs.privileged.size if inputs.privileged is not None else 0,
    )


@pytest.mark.parametrize("kind", KINDS)
def test_the_input_built_from_plain_observations_is_the_wrapper_stacks(kind):
    history, inputs = KINDS[kind]
    spec = load_robot("hopper")
    wrapped = make_env(spec, fixed={"torso_mass": 1.3, "friction": 0.7}, history=history, dynamics_input=inputs)
    plain = make_env(spec, fixed={"torso_mass": 1.3, "friction": 0.7})
    layout = layout_of(history, inputs)
    built = PolicyInput(layout, inputs.estimator if inputs is not None else None)
    assert wrapped.observation_space.shape == (layout.size,)
    rng = np.random.default_rng(0)
    for episode in range(2):  # a second episode forgets the first
        expected, info = wrapped.reset(seed=episode)
        obs, plain_info = plain.reset(seed=episode)
        np.testing.assert_array_equal(built.start(obs, plain_info["dynamics"]), expected)
        for _ in range(30):
            action = rng.uniform(-1, 1, 3)
            expected, *_ = wrapped.step(action)
            obs, *_ = plain.step(action)
            np.testing.assert_array_equal(built.add(action, obs), expected)


def test_a_policy_that_reads_the_true_dynamics_needs_an_env_that_reports_them():
    built = PolicyInput(InputLayout(11, 3, dynamics=NAMES, source="true"))
    with pytest.raises(DataError, match="true dynamics"):
        built.start(np.zeros(11), {"torso_mass": 1.0})
    # RMA once adapting never reads them: zeros without a simulator, the truth where one reports it
    unread = PolicyInput(InputLayout(11, 3, dynamics=NAMES, source="unread", raw_history=2))
    assert np.array_equal(unread.start(np.zeros(11))[11:13], [0.0, 0.0])
    assert np.allclose(unread.start(np.zeros(11), {"torso_mass": 2.0, "friction": 1.0})[11:13], [np.log(2.0), 0.0])
    with pytest.raises(DataError, match="size 5"):
        unread.start(np.zeros(5))


def test_a_layout_round_trips_through_plain_types_and_refuses_a_wrong_size():
    layout = layout_of(*KINDS["history, estimate and privileged"])
    data = layout.as_dict()
    assert data["size"] == layout.size == 2 * (11 + 2 + 3) + 2
    assert InputLayout.from_dict(data) == layout
    with pytest.raises(ValueError, match="size 7"):
        InputLayout.from_dict({**data, "size": 7})
    with pytest.raises(ValueError, match="source"):
        InputLayout(11, 3, dynamics=NAMES)


@pytest.mark.parametrize("name", ["hopper_ppo_dr", "hopper_ppo_uposi", "hopper_ppo_rma", "hopper_ppo_adr"])
def test_the_runner_acts_as_the_model_does_on_the_wrapped_env(name):
    """Every shipped kind (plain, UP-OSI's estimate, RMA's adaptation module, the privileged critic's padding): the
    runner on a plain target env takes the actions the model takes on the wrapped, normalized one."""
    policy = load_policy(POLICIES / name)
    setup = policy.setup
    _, target = simreal.envs.robots.load_target(setup.spec, "severe")
    pieces = {"fixed": target.parameters, "effects": target.effects}
    wrapped = vectorize(
        EnvFactory(setup.spec, history=setup.history, dynamics_input=policy.dynamics_input, **pieces), 1, seed=3
    )
    venv = normalized_like(wrapped, policy.statistics)
    expected = []
    obs = venv.reset()
    for _ in range(120):
        action, _ = policy.model.predict(obs, deterministic=True)
        expected.append(action[0])
        obs, _, done, _ = venv.step(action)
        if done[0]:
            break
    venv.close()
    actions = []
    env = make_env(setup.spec, **pieces)
    run_episode(policy.runner(), env, seed=3, max_steps=len(expected), on_step=lambda o, a, *_: actions.append(a))
    np.testing.assert_allclose(np.array(actions), np.array(expected), atol=1e-6)


def test_an_env_rebuilt_from_its_spec_keeps_its_estimator():
    spec = load_robot("hopper")
    estimator = Mean()
    env = make_env(spec, fixed={"friction": 0.7}, dynamics_input=DynamicsInputSpec(NAMES, estimator))
    rebuilt = gym.make(env.spec)
    first, _ = env.reset(seed=1)
    again, _ = rebuilt.reset(seed=1)
    np.testing.assert_array_equal(first, again)  # the estimate, not the truth (log 0.7 for friction)
    assert not np.isclose(again[-1], np.log(0.7))
    action = np.full(3, 0.3)
    np.testing.assert_array_equal(env.step(action)[0], rebuilt.step(action)[0])
