"""Deploying: a trained policy exported with everything it needs to run outside simreal, and driven on any
gymnasium-API env that stands in for a robot, recording what sysid and fine-tuning read.

- :mod:`~simreal.deploy.network`: the policy as one torch module (histories, estimator, normalization, action
  scaling inside);
- :mod:`~simreal.deploy.manifest`: the manifest an export travels with, and the check of an env against it;
- :mod:`~simreal.deploy.export`: ``simreal export`` (ONNX or TorchScript) and loading an export back;
- :mod:`~simreal.deploy.deploy`: ``simreal deploy``: episodes on an env, recorded.
"""
