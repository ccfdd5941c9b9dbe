"""Each hook of simreal.compat against the installed stable-baselines3, Gymnasium and TensorBoard: an upgrade that
moves one of their private attributes fails here, by name."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.logger import TensorBoardOutputFormat
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from simreal import compat


def tiny_ppo(normalized: bool = False) -> PPO:
    venv = DummyVecEnv([lambda: gym.make("InvertedPendulum-v5")])
    if normalized:
        venv = VecNormalize(venv)
    return PPO("MlpPolicy", venv, n_steps=32, batch_size=32, n_epochs=1, policy_kwargs={"net_arch": [8]}, seed=0)


def test_the_rollout_state_is_read_and_set_back():
    model = tiny_ppo(normalized=True)
    model.learn(32)
    obs, starts, original = compat.rollout_state(model)
    assert obs.shape == (1, 4) and starts.shape == (1,) and original.shape == (1, 4)
    compat.set_rollout_state(model, obs * 0, [True], original * 0)
    again, starts, original = compat.rollout_state(model)
    assert not again.any() and starts.tolist() == [True] and not original.any()
    model.learn(32, reset_num_timesteps=False)  # and stable-baselines3 goes on from it


def test_the_total_budget_counts_from_the_run_start():
    model = tiny_ppo()
    model.learn(32)
    assert compat.total_timesteps(model) == 32
    model.learn(32, reset_num_timesteps=False)
    assert compat.total_timesteps(model) == 64  # learn() was given 32: what is left


def test_a_new_learning_rate_schedule_and_a_wrapped_update():
    model = tiny_ppo()
    model.learning_rate = 0.25
    compat.restart_learning_rate(model)
    assert model.lr_schedule(1.0) == 0.25
    seen = []
    compat.wrap_learning_rate_update(model, lambda optimizers: seen.append(len(optimizers)))
    model.learn(32)
    assert seen and seen[0] == 1 and model.policy.optimizer.param_groups[0]["lr"] == 0.25
    compat.unwrap_learning_rate_update(model)
    seen.clear()
    model.learn(32)
    assert not seen


def test_the_tensorboard_writer_of_stable_baselines3s_output(tmp_path):
    output = TensorBoardOutputFormat(str(tmp_path))
    assert isinstance(compat.tensorboard_writer(output), SummaryWriter)
    replacement = SummaryWriter(log_dir=str(tmp_path), purge_step=5)
    compat.set_tensorboard_writer(output, replacement)
    assert compat.tensorboard_writer(output) is replacement
    output.close()


def test_a_gymnasium_envs_own_generator():
    env = gym.make("InvertedPendulum-v5")
    assert compat.env_rng(env) is None  # read before any reset without seeding one
    env.reset(seed=0)
    state = compat.env_rng(env).bit_generator.state
    first, _ = env.reset()
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    compat.set_env_rng(env, rng)
    again, _ = env.reset()
    assert np.array_equal(first, again)


def test_a_raw_summary_reaches_tensorboard(tmp_path):
    from tensorboard.compat.proto.summary_pb2 import Summary

    writer = SummaryWriter(log_dir=str(tmp_path))
    compat.add_summary(writer, Summary(value=[Summary.Value(tag="x", simple_value=2.5)]), 7)
    writer.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    (event,) = events.Scalars("x")
    assert event.step == 7 and event.value == 2.5


def test_what_a_rebuilt_model_gets_back_from_its_saved_self():
    model = tiny_ppo()
    model.learn(64)
    assert compat.update_count(model) == 2 and compat.episode_count(model) == 0  # PPO does not count episodes
    rebuilt = tiny_ppo()
    compat.set_counts(rebuilt, compat.update_count(model), 7)
    compat.set_episode_infos(rebuilt, [{"r": 1.0, "l": 3, "t": 0.1}])
    assert compat.update_count(rebuilt) == 2 and compat.episode_count(rebuilt) == 7
    assert list(rebuilt.ep_info_buffer) == [{"r": 1.0, "l": 3, "t": 0.1}]
    rebuilt.learn(32, reset_num_timesteps=False)  # stable-baselines3 goes on with both windows set
    assert len(rebuilt.ep_info_buffer) >= 1


def test_the_tensors_a_model_keeps_outside_its_state_dicts():
    from stable_baselines3 import SAC

    venv = DummyVecEnv([lambda: gym.make("InvertedPendulum-v5")])
    sac = SAC("MlpPolicy", venv, policy_kwargs={"net_arch": [8]}, buffer_size=100, seed=0)
    variables = compat.torch_variables(sac)
    assert list(variables) == ["log_ent_coef"] and variables["log_ent_coef"] is sac.log_ent_coef
    assert compat.torch_variables(tiny_ppo()) == {}
