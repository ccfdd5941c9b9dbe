"""Catalogues generated from the model, the new parameter kinds (armature, kp, kv) and effects (observation delay,
actuator lag), and robot files of one's own."""

from __future__ import annotations

import json

import mujoco
import numpy as np
import pytest
import yaml
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from typer.testing import CliRunner

import simreal
from simreal.cli import app
from simreal.envs.dynamics import DynamicsModel
from simreal.envs.effects import ActuatorLag, ObservationDelay
from simreal.envs.generate import DEFAULT_KINDS, GENERATED_KINDS, generated_parameters, model_of, robot_name
from simreal.envs.robots import load_robot
from simreal.envs.spec import ParameterRange, RobotSpec
from simreal.errors import SpecError
from tests.conftest import ROBOTS, TARGETS, rollout

#: Every gymnasium MuJoCo v5 env.
V5_IDS = [
    "Ant-v5",
    "HalfCheetah-v5",
    "Hopper-v5",
    "Humanoid-v5",
    "HumanoidStandup-v5",
    "InvertedDoublePendulum-v5",
    "InvertedPendulum-v5",
    "Pusher-v5",
    "Reacher-v5",
    "Swimmer-v5",
    "Walker2d-v5",
]

#: A two-joint arm driven by position actuators (kp, kv), one joint with armature, damping and friction loss.
ARM_XML = """
<mujoco>
  <option timestep="0.01"/>
  <worldbody>
    <body name="upper">
      <joint name="shoulder" type="hinge" axis="0 1 0" damping="0.5" armature="0.1"/>
      <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.03" mass="1"/>
      <body name="lower" pos="0.3 0 0">
        <joint name="elbow" type="hinge" axis="0 1 0" damping="0.2"/>
        <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.03" mass="0.5"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <position joint="shoulder" kp="20" kv="2"/>
    <position joint="elbow" kp="10"/>
  </actuator>
</mujoco>
"""


def _arm_spec(parameters: dict) -> RobotSpec:
    return RobotSpec.model_validate(
        {"robot": "arm", "gym_id": "unused", "simreal_id": "simreal/Arm-v0", "parameters": parameters}
    )


@pytest.mark.parametrize("gym_id", V5_IDS)
def test_every_v5_env_generates_a_catalogue_that_binds(gym_id):
    model = model_of(gym_id, {}, "test")
    parameters = generated_parameters(model)
    assert parameters, gym_id
    kinds = [fields["kind"] for fields in parameters.values()]
    assert kinds == sorted(kinds, key=GENERATED_KINDS.index)  # kind by kind, in catalogue order
    spec = _arm_spec(parameters)
    nominal = DynamicsModel(spec, model).nominal()
    multiplied = {name: value for name, value in nominal.items() if not spec.parameters[name].offset}
    assert all(value > 0 for value in multiplied.values()), multiplied  # nothing a multiplier cannot move


def test_the_first_robots_keep_their_catalogue():
    # hopper's catalogue as it was hand-written before generation: same names, order, ranges and distributions
    spec = load_robot("hopper")
    rows = [(name, p.kind, p.body or p.joint, p.range, p.distribution) for name, p in spec.parameters.items()]
    optional = [row for row in rows if not spec.parameters[row[0]].default]  # after the others
    joints = ("thigh_joint", "leg_joint", "foot_joint")
    coms = [f"{b}_com_{axis}" for b in ("torso", "thigh", "leg", "foot") for axis in "xz"]  # y: the hinges' axis
    assert [row[0] for row in optional] == [
        *[f"{j}_armature" for j in joints],
        *[f"{j}_frictionloss" for j in joints],
        *coms,
    ]
    rows = rows[: -len(optional)]
    masses = [(f"{b}_mass", "mass", b, (0.75, 1.25), "uniform") for b in ("torso", "thigh", "leg", "foot")]
    assert rows == [
        *masses,
        ("friction", "friction", None, (0.6, 1.5), "loguniform"),
        *[(f"{j}_damping", "damping", j, (0.5, 2.0), "loguniform") for j in joints],
        *[(f"{j}_gain", "gain", j, (0.8, 1.2), "uniform") for j in joints],
        ("gravity", "gravity", None, (0.9, 1.1), "truncnormal"),
    ]
    assert spec.parameters["foot_joint_frictionloss"].range == (0.0, 4.0)  # 2% of its 200 N·m motor
    ant = load_robot("ant").parameters
    assert ant["back_foot_mass"].joint == "ankle_3" and list(ant).index("back_foot_mass") == 9


@pytest.mark.parametrize("robot", ROBOTS)
def test_stable_baselines3_checker_passes_randomized_and_on_targets(robot):
    sb3_check_env(simreal.make(robot), warn=False, skip_render_check=True)
    for target in TARGETS:
        sb3_check_env(simreal.make(robot, target=target), warn=False, skip_render_check=True)


def test_position_actuator_gains_and_armature_scale_from_nominal():
    model = mujoco.MjModel.from_xml_string(ARM_XML)
    parameters = generated_parameters(model, DEFAULT_KINDS)
    assert {name: fields["kind"] for name, fields in parameters.items()} == {
        "upper_mass": "mass",
        "lower_mass": "mass",
        "shoulder_damping": "damping",
        "elbow_damping": "damping",
        "shoulder_armature": "armature",
        "shoulder_kp": "kp",
        "elbow_kp": "kp",
        "shoulder_kv": "kv",
        "gravity": "gravity",
    }
    dynamics = DynamicsModel(_arm_spec(parameters), model)
    assert dynamics.nominal()["shoulder_kp"] == 20.0 and dynamics.nominal()["shoulder_kv"] == 2.0
    data = mujoco.MjData(model)
    names = dynamics.names
    for _ in range(50):  # many writes never compound
        dynamics.apply_array(model, data, np.full(len(names), 1.7))
    multipliers = np.ones(len(names))
    multipliers[names.index("shoulder_kp")] = 1.5
    multipliers[names.index("shoulder_kv")] = 0.5
    multipliers[names.index("shoulder_armature")] = 2.0
    dynamics.apply_array(model, data, multipliers)
    assert model.actuator_gainprm[0, 0] == 30.0 and model.actuator_biasprm[0, 1] == -30.0
    assert model.actuator_biasprm[0, 2] == -1.0
    assert model.actuator_gainprm[1, 0] == 10.0 and model.actuator_biasprm[1, 1] == -10.0
    assert model.dof_armature[0] == pytest.approx(0.2) and model.dof_armature[1] == 0.0


def test_offsets_add_to_nominal_and_go_back_to_it():
    model = mujoco.MjModel.from_xml_string(ARM_XML)
    parameters = generated_parameters(model, ("mass", "frictionloss", "com"))
    # the arm swings about y: a shift along y changes nothing, so none is generated
    assert [n for n in parameters if "com" in n] == ["upper_com_x", "upper_com_z", "lower_com_x", "lower_com_z"]
    peak = 20 * 1.0  # kp x the control span (unlimited here: 1), a position servo's peak torque
    assert parameters["shoulder_frictionloss"]["range"] == [0.0, pytest.approx(0.02 * peak)]
    spec = _arm_spec(parameters)
    dynamics = DynamicsModel(spec, model)
    nominal_ipos, data = model.body_ipos.copy(), mujoco.MjData(model)
    names = dynamics.names
    values = dynamics.neutral.copy()
    assert values[names.index("upper_com_x")] == 0.0 and values[names.index("upper_mass")] == 1.0
    for _ in range(20):  # offsets never compound
        values[names.index("upper_com_x")] = 0.01
        values[names.index("elbow_frictionloss")] = 0.5
        values[names.index("upper_mass")] = 1.2
        dynamics.apply_array(model, data, values)
    upper = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "upper")
    assert model.body_ipos[upper, 0] == pytest.approx(nominal_ipos[upper, 0] + 0.01)
    assert model.dof_frictionloss[1] == 0.5 and model.body_mass[upper] == pytest.approx(1.2)
    dynamics.apply_array(model, data, dynamics.neutral)
    assert np.array_equal(model.body_ipos, nominal_ipos) and model.dof_frictionloss[1] == 0.0


def test_offsets_on_hopper_targets_sysid_and_the_privileged_critic(tmp_path):
    env = simreal.make("hopper", target={"parameters": {"foot_joint_frictionloss": 2.0, "torso_com_x": 0.02}})
    assert simreal.get_dynamics(env)["foot_joint_frictionloss"] == 2.0
    assert simreal.get_dynamics(env)["torso_mass"] == 1.0 and simreal.get_dynamics(env)["thigh_com_z"] == 0.0
    ranges = {"torso_com_x": [-0.02, 0.02], "foot_joint_frictionloss": [0.0, 3.0]}
    drawn = [simreal.make("hopper", ranges=ranges).reset(seed=s)[1]["dynamics"] for s in range(10)]
    assert all(-0.02 <= d["torso_com_x"] <= 0.02 and 0 <= d["foot_joint_frictionloss"] <= 3 for d in drawn)
    assert len({d["torso_com_x"] for d in drawn}) == 10
    with pytest.raises(SpecError, match="frictionloss offset adds friction"):
        simreal.make("hopper", target={"parameters": {"foot_joint_frictionloss": -1.0}})
    with pytest.raises(SpecError, match=r"ranges.torso_com_x: range \[-0.5, 0.5\] is outside the limits"):
        simreal.make("hopper", ranges={"torso_com_x": [-0.5, 0.5]})


def test_a_gain_kind_on_a_motor_is_refused():
    model = mujoco.MjModel.from_xml_string(
        ARM_XML.replace('<position joint="elbow" kp="10"/>', '<motor joint="elbow"/>')
    )
    with pytest.raises(SpecError, match=r"parameters.elbow_kp.joint: the actuator driving 'elbow' is not a position"):
        DynamicsModel(_arm_spec({"elbow_kp": {"kind": "kp", "joint": "elbow", "range": [0.9, 1.1]}}), model)


def test_robot_names_from_gym_ids():
    assert robot_name("Pusher-v5") == "pusher"
    assert robot_name("InvertedDoublePendulum-v5") == "inverted_double_pendulum"
    assert robot_name("my_package.envs:MyArm-v0") == "my_arm"


def test_starter_file_loads_as_a_robot_and_overrides_apply(tmp_path):
    result = CliRunner().invoke(app, ["envs", "--generate", "Reacher-v5"])
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(result.output)
    data["generate"]["exclude"] = ["target_mass", "grav*"]
    data["parameters"] = {"joint0_gain": {"range": [0.5, 1.5]}}
    path = tmp_path / "reacher_lab.yaml"  # as the README names it: a robot file's name is free
    path.write_text(yaml.safe_dump(data))
    spec = load_robot(str(path))
    assert spec.robot == "reacher"
    assert "target_mass" not in spec.parameters and "gravity" not in spec.parameters
    assert spec.parameters["joint0_gain"].range == (0.5, 1.5)
    assert spec.parameters["joint0_gain"].description == "gear of the actuator driving joint0"
    env = simreal.make(str(path), target="example")
    assert simreal.get_dynamics(env)["body0_mass"] == 1.1
    rebuilt = simreal.make(str(path))
    assert rebuilt.spec.kwargs["robot"] == str(path)
    shown = CliRunner().invoke(app, ["envs", "--robot", str(path), "--json"])
    assert shown.exit_code == 0 and "joint0_armature" in shown.output


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"generate": {"kinds": ["mass", "stiffness"]}}, r"reacher.yaml: generate.kinds.*unknown kind 'stiffness'"),
        ({"generate": {"exclude": ["nothing_*"]}}, r"reacher.yaml: generate.exclude.0: 'nothing_\*' matches no"),
        ({"generate": {"colour": 1}}, r"reacher.yaml: generate.colour: unknown field"),
        ({"parameters": {"wing_mass": {"range": [0.9, 1.1]}}}, r"parameters.wing_mass: not in the catalogue generated"),
        (
            {"parameters": {"wing_mass": {"kind": "mass", "body": "wing", "range": [0.9, 1.1]}}},
            r"reacher.yaml: parameters.wing_mass.body: no body named 'wing'",
        ),
        (
            {"parameters": {"joint0_armature": {"range": [-0.5, 1.5], "distribution": "uniform"}}},
            r"parameters.joint0_armature: range \[-0.5, 1.5\] is outside the limits \[0.0, 20.0\]",
        ),
        ({"gym_id": "NoSuchEnv-v9"}, r"reacher.yaml: gym_id: 'NoSuchEnv-v9' is not a registered gymnasium id"),
        ({"gym_id": "CartPole-v1"}, r"reacher.yaml: gym_id: 'CartPole-v1' is not a MuJoCo env"),
    ],
)
def test_bad_robot_files_are_one_line_naming_the_field(tmp_path, edit, message):
    data = {"robot": "reacher", "gym_id": "Reacher-v5", "simreal_id": "simreal/R-v0", "generate": {}, **edit}
    path = tmp_path / "reacher.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match=message):
        load_robot(str(path))
    result = CliRunner().invoke(app, ["envs", "--robot", str(path)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output


def test_observation_delay_shows_old_observations():
    plain, delayed = (
        simreal.make("hopper", nominal=True),
        simreal.make("hopper", nominal=True, effects={"obs_delay_steps": 2}),
    )
    assert isinstance(delayed.env, ObservationDelay)
    actions = np.full((10, 3), 0.3)
    truth, seen = rollout(plain, actions), rollout(delayed, actions)
    assert np.array_equal(seen[0], truth[0]) and np.array_equal(seen[1], truth[0]) and np.array_equal(seen[2], truth[0])
    assert np.array_equal(seen[3:], truth[1:-2])


def test_actuator_lag_filters_the_action_the_robot_gets():
    env = simreal.make("hopper", nominal=True, effects={"actuator_lag_s": 0.02})
    lag = env.env
    assert isinstance(lag, ActuatorLag)
    env.reset(seed=0)
    share = 1 - np.exp(-env.unwrapped.dt / 0.02)
    applied = [lag.action(np.ones(3))[0] for _ in range(3)]
    assert applied == pytest.approx([share, share + share * (1 - share), 1 - (1 - share) ** 3])
    lagged = rollout(env, np.full((20, 3), 0.5))
    plain = rollout(simreal.make("hopper", nominal=True), np.full((20, 3), 0.5))
    assert not np.allclose(lagged[5:], plain[5 : len(lagged)])


def test_new_effects_are_drawn_per_episode_and_refuse_bad_values():
    env = simreal.make("hopper", effect_ranges={"obs_delay_steps": [0, 3], "actuator_lag_s": [0.0, 0.05]})
    drawn = [env.reset(seed=seed)[1]["effects"] for seed in range(20)]
    assert {d["obs_delay_steps"] for d in drawn} == {0.0, 1.0, 2.0, 3.0}
    assert all(0 <= d["actuator_lag_s"] <= 0.05 for d in drawn)
    with pytest.raises(SpecError, match="obs_delay_steps: .*whole number"):
        simreal.make("hopper", effect_ranges={"obs_delay_steps": [0, 1.5]})
    with pytest.raises(SpecError, match="effects: actuator_lag_s"):
        simreal.make("hopper", effects={"actuator_lag_s": -0.1})


def test_sysid_identifies_armature_and_offsets_with_intervals_in_their_units():
    from simreal.sysid.collect import collect
    from simreal.sysid.identify import identify

    truth = {"foot_joint_frictionloss": 3.0, "torso_com_x": 0.03, "thigh_joint_armature": 1.5}
    data = collect("random", "hopper", target={"parameters": truth}, episodes=3, seed=0)
    result = identify(data, "hopper", list(truth), horizon=3, budget=150, seed=0)
    for name, value in truth.items():
        low, high = result.interval[name]
        assert low < result.estimate[name] < high
        assert abs(result.estimate[name] - value) <= 0.2 * abs(value), (name, result.estimate[name])
    low, high = result.ranges()["foot_joint_frictionloss"]
    assert low >= 0.0 and high - low >= 0.1 * 4.0  # at least a tenth of its default range, in N·m


def test_offsets_are_scheduled_from_zero_and_mapped_around_it(tmp_path, trained_run):
    from simreal.train.schedules import ADRSchedule, CurriculumSchedule

    full = {
        "torso_com_x": ParameterRange(low=-0.02, high=0.02),
        "foot_joint_frictionloss": ParameterRange(low=0.0, high=4.0),
        "torso_mass": ParameterRange(low=0.8, high=1.2),
    }
    offsets = ("torso_com_x", "foot_joint_frictionloss")
    curriculum = CurriculumSchedule(full, initial_fraction=0.0, offsets=offsets)
    start = curriculum.ranges()
    assert (start["torso_com_x"].low, start["torso_com_x"].high) == (0.0, 0.0)  # nominal: no shift
    assert (start["foot_joint_frictionloss"].low, start["foot_joint_frictionloss"].high) == (0.0, 0.0)
    assert (start["torso_mass"].low, start["torso_mass"].high) == (1.0, 1.0)
    limits = {"torso_com_x": (-0.1, 0.1), "torso_mass": (0.5, 2.0)}
    adr = ADRSchedule(limits, initial_width=0.05, offsets=["torso_com_x"]).ranges()
    assert adr["torso_com_x"].low == pytest.approx(-0.01) and adr["torso_com_x"].high == pytest.approx(0.01)
    assert adr["torso_mass"].low == pytest.approx(0.95)

    out = tmp_path / "map"
    args = ["robustness", str(trained_run), "--params", "torso_com_x", "--grid", "3", "--episodes", "1"]
    result = CliRunner().invoke(app, [*args, "--workers", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = json.loads(next(out.glob("*.json")).read_text())
    assert 0.0 in written["axes"][0]["values"]  # the grid holds the nominal (no shift)


def test_the_privileged_critic_takes_ranges_from_zero(tmp_path):
    from simreal.runs.setup import load_setup
    from tests.test_training import tiny_config

    config = tiny_config(
        tmp_path,
        "ppo",
        randomization={"ranges": {"thigh_joint_damping": [0.0, 20.0], "torso_com_x": [-0.02, 0.02]}},
        algorithm={"name": "ppo", "privileged_critic": True},
    )
    privileged = load_setup(config).privileged
    assert privileged is not None and np.all(np.isfinite(privileged.mean)) and np.all(np.isfinite(privileged.variance))
    assert dict(privileged.offsets) == {"torso_com_x": 0.1}
    index = privileged.names.index("torso_com_x")
    assert privileged.mean[index] == 0.0 and privileged.variance[index] == pytest.approx((0.4**2) / 12)
