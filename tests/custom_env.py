"""A robot of one's own, as a user writes it: a gymnasium ``MujocoEnv`` that simreal knows nothing about."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gymnasium import spaces
from gymnasium.envs.mujoco import MujocoEnv

MODEL = Path(__file__).parent / "assets" / "swing_arm.xml"


class SwingArmEnv(MujocoEnv):
    """Swing the arm's tip to a height: two hinges driven by position actuators; the observation is the joint
    positions and velocities; the reward is minus the tip's distance to the goal height, less a small action cost."""

    metadata = {"render_modes": ["human", "rgb_array", "depth_array"], "render_fps": 25}

    def __init__(self, goal_height: float = 1.5, frame_skip: int = 4, **kwargs) -> None:
        self.goal_height = float(goal_height)
        space = spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float64)
        super().__init__(str(MODEL), frame_skip, observation_space=space, **kwargs)

    def _get_obs(self) -> np.ndarray:
        return np.concatenate([self.data.qpos, self.data.qvel])

    def step(self, action):
        self.do_simulation(action, self.frame_skip)
        height = float(self.data.site("tip").xpos[2])
        reward = -abs(height - self.goal_height) - 0.01 * float(np.square(action).sum())
        return self._get_obs(), reward, False, False, {"tip_height": height}

    def reset_model(self) -> np.ndarray:
        noise = self.np_random.uniform(-0.05, 0.05, size=self.model.nq)
        self.set_state(self.init_qpos + noise, self.init_qvel + self.np_random.uniform(-0.05, 0.05, self.model.nv))
        return self._get_obs()
