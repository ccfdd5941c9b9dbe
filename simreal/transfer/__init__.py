"""Transfer to the target: fine-tuning under a budget of target steps, and the end-to-end pipeline with its report.

- :mod:`~simreal.transfer.layers`: a policy's layers counted from the output, fresh optimizers, per-layer rates.
- :mod:`~simreal.transfer.strategies`: full, head, partial and progressive unfreezing, L2-SP.
- :mod:`~simreal.transfer.config`: the fine-tuning and pipeline configs.
- :mod:`~simreal.transfer.finetune`: fine-tuning on a target, its curve, forgetting and the verdict against
  from-scratch.
- :mod:`~simreal.transfer.derive`: each stage's training config, derived from the resolved source config.
- :mod:`~simreal.transfer.pipeline`: the stages (zero-shot, sysid, identified simulator, fine-tuning, oracle: the
  better of the sim policy fine-tuned on the target and a fresh policy trained there), resumable.
- :mod:`~simreal.transfer.report`: markdown, JSON, plots and TensorBoard.
"""
