"""Experiment configs' schema, validated with pydantic: the robot, what is randomized, the algorithm and its
hyperparameters (structured, no code in strings), the vectorized envs and normalization, the budget, evaluation on
targets and checkpointing. Reading one (a path or a shipped name, ``--set`` overrides, errors naming the file and
the dotted field as :class:`~simreal.errors.ConfigError`) is :mod:`simreal.runs.config_files`'s job.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from simreal.envs.ranges import effect_range
from simreal.envs.spec import MAX_DELAY, STEP_EFFECTS, Effects
from simreal.errors import ConfigError, shown

#: The largest seed: numpy's legacy seeding (``np.random.seed``, which stable-baselines3 and CMA-ES call) takes seeds
#: below 2**32, and the streams derived from a seed add an offset (:mod:`simreal.seeding`), an env's index or an
#: episode's to it: 2**31 - 1 leaves room for every one of them.
MAX_SEED = 2**31 - 1
#: The most envs stepped together: 4096 is what GPU-simulator papers step; each env holds its own simulator, so far
#: more is an allocation that fails rather than a training.
MAX_ENVS = 4096
#: The widest hidden layer: RL policies use 64 to 2048 units, the largest published ones 4096.
MAX_LAYER_WIDTH = 8192
#: The most hidden layers of one network.
MAX_LAYERS = 16
#: The most weights between the hidden layers of one network (two layers of 8192): 64 Mi weights are 256 MiB, and
#: the optimizer keeps three more copies.
MAX_HIDDEN_WEIGHTS = 2**26
#: The most transitions a rollout (PPO's ``n_steps`` x ``n_envs``) or a replay buffer (SAC's ``buffer_size``) holds:
#: 32 Mi, past the largest published settings (a million-step buffer; 4096 envs x 8192 steps), where an allocation
#: fails rather than a training starts.
MAX_TRANSITIONS = 2**25

Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


def check_seed(seed: int, field: str = "seed") -> int:
    """``seed`` when it is a seed simreal takes (0 to :data:`MAX_SEED`).

    Raises:
        ConfigError: naming ``field`` and the bound.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{field}: expected a seed from 0 to {MAX_SEED} (2**31 - 1), got {shown(seed)}")
    return seed


def _checked_layers(sizes: list[int]) -> list[int]:
    """A network's hidden layer sizes: each 1 to :data:`MAX_LAYER_WIDTH`, at most :data:`MAX_LAYERS` of them, at
    most :data:`MAX_HIDDEN_WEIGHTS` weights between them (``ValueError`` otherwise)."""
    if len(sizes) > MAX_LAYERS:
        raise ValueError(f"{len(sizes)} layers, at most {MAX_LAYERS}")
    for size in sizes:
        if not 0 < size <= MAX_LAYER_WIDTH:
            raise ValueError(f"layer sizes must be from 1 to {MAX_LAYER_WIDTH}, got {size}")
    weights = sum(a * b for a, b in zip(sizes, sizes[1:], strict=False))
    if weights > MAX_HIDDEN_WEIGHTS:
        raise ValueError(f"{weights} weights between the layers, at most {MAX_HIDDEN_WEIGHTS} (2**26: [8192, 8192])")
    return sizes


#: Hidden layer sizes, bounded (see :func:`_checked_layers`).
Layers = Annotated[list[int], AfterValidator(_checked_layers)]


class StrictModel(BaseModel):
    """A config's section: unknown fields refused (a typo is an error, not a default), values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FixedScheduleConfig(StrictModel):
    """The configured ranges all run long."""

    kind: Literal["fixed"] = "fixed"


class CurriculumConfig(StrictModel):
    """Ranges widen from ``initial_fraction`` of their width around nominal to all of it over ``ramp_fraction`` of
    training, ``linear``-ly or in ``steps`` equal increments."""

    kind: Literal["curriculum"]
    initial_fraction: float = Field(default=0.0, ge=0, le=1)
    ramp_fraction: float = Field(default=0.5, ge=0, le=1)
    mode: Literal["linear", "steps"] = "linear"
    steps: int = Field(default=5, gt=0)


class Thresholds(StrictModel):
    """ADR thresholds: returns, or, when ``relative``, fractions of the mean return of recent non-boundary episodes
    (the policy's return under its current ranges, which ADR keeps close to nominal)."""

    low: float = 0.5
    high: float = 0.8
    relative: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.low > self.high:
            raise ValueError(f"low {self.low} > high {self.high}")
        return self


class ADRConfig(StrictModel):
    """Automatic Domain Randomization (see :class:`simreal.train.schedules.ADRSchedule`).

    Attributes:
        initial_width: ranges start at ``1 +- initial_width``.
        step: how far a boundary moves (multiplier units).
        probability: chance that an episode pins one parameter to one boundary.
        buffer_size: boundary returns collected before a boundary is judged.
        thresholds: ``low`` and ``high``; ``relative`` makes them fractions of the nominal-dynamics return.
        limits: hard limits per parameter, each containing 1.0 (default: the parameter's training range; a drawn
            effect's limits are its configured range, and it starts at its low end).
    """

    kind: Literal["adr"]
    initial_width: float = Field(default=0.05, gt=0)
    step: float = Field(default=0.05, gt=0)
    probability: float = Field(default=0.5, ge=0, le=1)
    buffer_size: int = Field(default=10, gt=0)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    limits: dict[str, tuple[float, float]] = Field(default_factory=dict)


Delay = Annotated[int, Field(ge=0, le=MAX_DELAY)]
Std = Annotated[float, Field(ge=0)]


class EffectsConfig(StrictModel):
    """Unmodeled effects during training (:class:`~simreal.envs.spec.Effects`): each a fixed value, or
    ``[low, high]`` drawn anew every episode (the delay over whole control steps). Drawn effects follow the
    schedule like the parameters: their nominal value, where curriculum and ADR start, is 0 (no effect)."""

    action_delay_steps: Delay | tuple[Delay, Delay] = 0
    obs_noise_std: Std | tuple[Std, Std] = 0.0
    action_noise_std: Std | tuple[Std, Std] = 0.0
    obs_bias_std: Std | tuple[Std, Std] = 0.0
    obs_delay_steps: Delay | tuple[Delay, Delay] = 0
    actuator_lag_s: Std | tuple[Std, Std] = 0.0

    @field_validator("*", mode="before")
    @classmethod
    def _value_or_range(cls, value: Any, info: ValidationInfo) -> Any:
        # one clear message rather than one per member of the union
        if isinstance(value, (list, tuple)):
            checked = effect_range(str(info.field_name), value)
            return (checked.low, checked.high)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number or [low, high], got {shown(value)}")
        if not value >= 0:
            raise ValueError(f"must be >= 0, got {shown(value)}")
        if info.field_name in STEP_EFFECTS:
            if not float(value).is_integer():
                raise ValueError(f"a delay is a whole number of control steps, got {shown(value)}")
            effect_range(info.field_name, [value, value])  # within the maximum
        return value

    def drawn(self) -> dict[str, list[float]]:
        """The effects drawn per episode: name -> ``[low, high]``."""
        return {name: list(value) for name, value in self if isinstance(value, tuple)}

    def fixed(self) -> Effects:
        """The fixed effects; a drawn one stands at the low end of its range (what applies with randomization off)."""
        return Effects(**{name: value[0] if isinstance(value, tuple) else value for name, value in self})


ScheduleConfig = Annotated[FixedScheduleConfig | CurriculumConfig | ADRConfig, Field(discriminator="kind")]
SCHEDULE_KINDS = ("fixed", "curriculum", "adr")


class Randomization(StrictModel):
    """What is randomized during training.

    Attributes:
        enabled: ``false`` trains at nominal dynamics only.
        parameters: names to randomize (default: all the robot's parameters).
        ranges: per-parameter range overrides, ``[low, high]`` or a mapping with ``low``, ``high``, ``distribution``;
            or the path of a YAML written by ``simreal sysid`` (its ``ranges``, and its ``effects`` unless
            ``effects`` is set here).
        effects: unmodeled effects applied during training (delay, noise, bias): fixed values, or ranges drawn per
            episode.
        schedule: how the ranges evolve: ``fixed``, ``curriculum`` or ``adr``.
    """

    enabled: bool = True
    parameters: list[str] | None = None
    ranges: dict[str, Any] | str = Field(default_factory=dict)
    effects: EffectsConfig = Field(default_factory=EffectsConfig)
    schedule: ScheduleConfig = Field(default_factory=FixedScheduleConfig)


class Network(StrictModel):
    """Network sizes and activation. ``pi`` is the actor; ``vf`` the PPO critic; ``qf`` the SAC critics."""

    pi: Layers = Field(default_factory=lambda: [64, 64])
    vf: Layers = Field(default_factory=lambda: [64, 64])
    qf: Layers = Field(default_factory=lambda: [256, 256])
    # by name, mapped to torch modules in simreal.runs.algorithms: a config never has code evaluated
    activation: Literal["tanh", "relu", "elu", "leaky_relu", "gelu", "silu"] = "tanh"
    log_std_init: float = 0.0
    ortho_init: bool = True


class PPOHyperparameters(StrictModel):
    """stable-baselines3 PPO arguments (same names, same meaning)."""

    learning_rate: float = Field(default=3e-4, gt=0)
    n_steps: int = Field(default=2048, gt=0, le=MAX_TRANSITIONS)
    batch_size: int = Field(default=64, gt=0)
    n_epochs: int = Field(default=10, gt=0)
    gamma: float = Field(default=0.99, gt=0, le=1)
    gae_lambda: float = Field(default=0.95, ge=0, le=1)
    clip_range: float = Field(default=0.2, gt=0)
    ent_coef: float = Field(default=0.0, ge=0)
    vf_coef: float = Field(default=0.5, ge=0)
    max_grad_norm: float = Field(default=0.5, gt=0)
    target_kl: float | None = Field(default=None, gt=0)
    linear_lr_decay: bool = False


class SACHyperparameters(StrictModel):
    """stable-baselines3 SAC arguments (same names, same meaning)."""

    learning_rate: float = Field(default=3e-4, gt=0)
    buffer_size: int = Field(default=1_000_000, gt=0, le=MAX_TRANSITIONS)
    learning_starts: int = Field(default=10_000, ge=0)
    batch_size: int = Field(default=256, gt=0)
    tau: float = Field(default=0.005, gt=0, le=1)
    gamma: float = Field(default=0.99, gt=0, le=1)
    train_freq: int = Field(default=1, gt=0)
    gradient_steps: int = Field(default=1, ge=-1)
    ent_coef: str | float = "auto"


class PPOAlgorithm(StrictModel):
    """PPO from stable-baselines3.

    Attributes:
        privileged_critic: an asymmetric actor-critic: the value function also sees the episode's true
            log-multipliers and drawn effects (only while training in simulation); the actor sees what a robot has.
    """

    name: Literal["ppo"] = "ppo"
    hyperparameters: PPOHyperparameters = Field(default_factory=PPOHyperparameters)
    network: Network = Field(default_factory=Network)
    privileged_critic: bool = False


class SACAlgorithm(StrictModel):
    """SAC from stable-baselines3.

    Attributes:
        privileged_critic: an asymmetric actor-critic: the Q-functions also see the episode's true
            log-multipliers and drawn effects (only while training in simulation); the actor sees what a robot has.
    """

    name: Literal["sac"]
    hyperparameters: SACHyperparameters = Field(default_factory=SACHyperparameters)
    network: Network = Field(default_factory=Network)
    privileged_critic: bool = False


Algorithm = Annotated[PPOAlgorithm | SACAlgorithm, Field(discriminator="name")]


class Normalize(StrictModel):
    """VecNormalize: running mean/std of observations and returns."""

    observations: bool = True
    rewards: bool = True
    clip_obs: float = Field(default=10.0, gt=0)
    clip_reward: float = Field(default=10.0, gt=0)


class EnvConfig(StrictModel):
    """The vectorized training envs.

    Attributes:
        n_envs: envs stepped together.
        vec_env: ``dummy`` (in this process, batched) or ``subproc`` (one process each).
        normalize: VecNormalize.
        history: feed the policy the last ``history`` observations and actions
            (:class:`~simreal.envs.history.HistoryObservation`; 0: the current observation only). Every env built
            for the policy (evaluation, collection) gets the same input.
    """

    n_envs: int = Field(default=1, gt=0, le=MAX_ENVS)
    vec_env: Literal["dummy", "subproc"] = "dummy"
    normalize: Normalize = Field(default_factory=Normalize)
    history: int = Field(default=0, ge=0, le=1000)


class Evaluation(StrictModel):
    """Periodic evaluation during training.

    Attributes:
        frequency: every this many total timesteps (summed over envs); 0 turns it off.
        episodes: episodes per evaluated env.
        targets: target names or files (default: every target the robot ships).
        video_steps: with each evaluation and at the end of training, log a video of this many steps (one episode,
            deterministic) on nominal dynamics and on each target to TensorBoard (``eval/video/<env>``); 0: none.
            Needs a rendering backend (``MUJOCO_GL``).
        video_size: width and height of those videos, in pixels.
    """

    frequency: int = Field(default=50_000, ge=0)
    episodes: int = Field(default=5, gt=0)
    targets: list[str] | None = None
    video_steps: int = Field(default=0, ge=0)
    video_size: int = Field(default=128, ge=16, le=1024)


class Checkpoint(StrictModel):
    """Checkpoints: every this many total timesteps (summed over envs); 0 saves only at the end."""

    frequency: int = Field(default=100_000, ge=0)
    keep: int = Field(default=2, gt=0)


class OSIConfig(StrictModel):
    """UP-OSI's online system identification network and how it is trained after the universal policy.

    Attributes:
        hidden: hidden layer sizes of the MLP.
        iterations: rounds of rollouts and supervised fitting: the first with the true multipliers driving the
            policy, the later ones with the network's own estimates (DAgger-like, as in Yu et al. 2017); the data
            are aggregated.
        episodes: rollouts on the training distribution per round.
        epochs: passes over the aggregated data per round.
        learning_rate: Adam's.
        batch_size: samples per gradient step.
    """

    hidden: Layers = Field(default_factory=lambda: [128, 128])
    iterations: int = Field(default=3, ge=1)
    episodes: int = Field(default=20, ge=1)
    epochs: int = Field(default=30, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    batch_size: int = Field(default=256, gt=0)


class RMAConfig(StrictModel):
    """RMA's latent, encoder and adaptation module, and how the module is trained after the base policy.

    Attributes:
        latent: size of the latent ``z``.
        encoder: hidden sizes of the encoder ``mu(e)``.
        channels: channels of the adaptation module's 1-D convolutions.
        kernel: their kernel size (time steps).
        iterations: rounds of on-policy collection (the policy acting on the module's estimate) and fitting.
        steps: env steps collected per round.
        epochs: passes over each round's data.
        learning_rate: Adam's.
        batch_size: samples per gradient step.
    """

    latent: int = Field(default=8, ge=1, le=MAX_LAYER_WIDTH)
    encoder: Layers = Field(default_factory=lambda: [64, 64])
    channels: int = Field(default=32, ge=1, le=MAX_LAYER_WIDTH)
    kernel: int = Field(default=5, ge=1)
    iterations: int = Field(default=5, ge=1)
    steps: int = Field(default=20_000, ge=1)
    epochs: int = Field(default=5, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    batch_size: int = Field(default=256, gt=0)


class AdaptationConfig(StrictModel):
    """Online adaptation: a policy that adapts to the dynamics from what it observes. ``uposi``: the policy sees the
    log-multipliers, true while training, estimated from the last ``history`` observations and actions when
    deployed; ``rma``: the policy sees a latent encoded from them, later estimated from the history by an
    adaptation module inside the policy. ``none``: a plain policy.

    Attributes:
        kind: ``none``, ``uposi`` or ``rma``.
        history: steps of observations and actions the estimator reads.
        parameters: the parameters the policy sees and the estimator estimates (default: every randomized physical
            parameter).
        osi: UP-OSI's estimator.
        rma: RMA's latent and adaptation module.
    """

    kind: Literal["none", "uposi", "rma"] = "none"
    history: int = Field(default=10, ge=1, le=1000)
    parameters: list[str] | None = None
    osi: OSIConfig = Field(default_factory=OSIConfig)
    rma: RMAConfig = Field(default_factory=RMAConfig)


class RobustObjective(StrictModel):
    """The training objective over the randomized dynamics: ``none``, plain domain randomization (every episode drawn
    from the training distribution, the average return maximized), or ``weakest``: draw more often where the policy
    is weakest (see :class:`simreal.train.weakest_region.WeakestRegionSchedule`), so it cannot buy average return by
    giving up a region of its training range. The other fields are the weakest-region objective's (kept, unused,
    with ``none``: one key turns it off).

    With ``weakest`` each randomized parameter's (and drawn effect's) range is cut into ``bins``; every training
    episode's return joins the bin its value fell in, on every axis. With ``probability`` an episode draws one axis
    inside that axis's weakest bin (lowest mean of its last ``window`` returns), the others as usual; the axis is
    chosen in proportion to how far its weakest bin lies below its other bins beyond noise (none: a plain episode).

    Attributes:
        method: ``none`` or ``weakest``.
        probability: the share of focused episodes, in (0, 1].
        bins: bins per axis (an integer effect: at most one per value).
        window: returns remembered per bin.
    """

    method: Literal["none", "weakest"] = "none"
    probability: float = Field(default=0.5, gt=0, le=1)
    bins: int = Field(default=8, ge=2, le=100)
    window: int = Field(default=50, ge=2)


class TrainConfig(StrictModel):
    """A training experiment."""

    robot: str | dict[str, Any]
    seed: Seed = 0
    total_timesteps: int = Field(gt=0)
    randomization: Randomization = Field(default_factory=Randomization)
    algorithm: Algorithm = Field(default_factory=PPOAlgorithm)
    env: EnvConfig = Field(default_factory=EnvConfig)
    eval: Evaluation = Field(default_factory=Evaluation)
    checkpoint: Checkpoint = Field(default_factory=Checkpoint)
    adaptation: AdaptationConfig = Field(default_factory=AdaptationConfig)
    robust: RobustObjective = Field(default_factory=RobustObjective)
    torch_threads: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _rollout_fits(self) -> TrainConfig:
        hyper = self.algorithm.hyperparameters
        if isinstance(hyper, PPOHyperparameters) and hyper.n_steps * self.env.n_envs > MAX_TRANSITIONS:
            transitions = hyper.n_steps * self.env.n_envs
            raise ValueError(
                f"algorithm.hyperparameters.n_steps: {hyper.n_steps} steps x {self.env.n_envs} envs = {transitions} "
                f"transitions in a rollout, at most {MAX_TRANSITIONS} (2**25)"
            )
        return self
