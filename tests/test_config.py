"""Training configs: every shipped one validates; overrides by dotted path."""

from __future__ import annotations

import pytest

from simreal.errors import ConfigError
from simreal.resources import configs_dir
from simreal.runs.config_files import apply_overrides, load_config, parse_overrides
from simreal.train.callbacks import config_table

# training configs; transfer_*.yaml are the pipeline's (tests/test_transfer.py)
SHIPPED = sorted(path.stem for path in configs_dir().glob("*.yaml") if not path.stem.startswith("transfer_"))


def test_the_issue_configs_are_shipped():
    assert {
        "hopper_ppo_dr",
        "hopper_ppo_nominal",
        "hopper_sac_dr",
        "halfcheetah_ppo_dr",
        "walker2d_ppo_dr",
        "ant_sac_dr",
        "inverted_pendulum_ppo_dr",
    } <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_validates(name):
    config = load_config(name)
    assert config.robot in name
    assert config.algorithm.name in name
    assert config.randomization.enabled == ("nominal" not in name)


def test_overrides_are_yaml_values_at_dotted_paths():
    parsed = parse_overrides(["algorithm.hyperparameters.batch_size=512", "env.vec_env=subproc", "a.b=[1, 2]"])
    assert parsed == [("algorithm.hyperparameters.batch_size", 512), ("env.vec_env", "subproc"), ("a.b", [1, 2])]
    data = apply_overrides({"algorithm": {"name": "ppo"}}, parsed)
    assert data["algorithm"] == {"name": "ppo", "hyperparameters": {"batch_size": 512}}
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_overrides(["batch_size"])
    with pytest.raises(ConfigError, match="override algorithm.name.x: name is not a mapping"):
        apply_overrides({"algorithm": {"name": "ppo"}}, [("algorithm.name.x", 1)])


def test_switching_algorithm_by_override_validates_its_hyperparameters():
    config = load_config("hopper_sac_dr", ["algorithm.hyperparameters.gradient_steps=2"])
    assert config.algorithm.hyperparameters.gradient_steps == 2
    with pytest.raises(ConfigError, match="algorithm.hyperparameters.n_epochs: unknown field"):
        load_config("hopper_sac_dr", ["algorithm.hyperparameters.n_epochs=3"])
    rows = dict(config_table(config))
    assert rows["algorithm.name"] == "sac" and rows["robot"] == "hopper"
