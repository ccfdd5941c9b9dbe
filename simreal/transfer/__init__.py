"""Transfer to the target: fine-tuning under a budget of target steps, and the end-to-end pipeline with its report.

- :mod:`~simreal.transfer.layers`: a policy's layers counted from the output, fresh optimizers, per-layer rates.
- :mod:`~simreal.transfer.strategies`: full, head, partial and progressive unfreezing, L2-SP.
- :mod:`~simreal.transfer.config`: the fine-tuning and pipeline configs.
- :mod:`~simreal.transfer.finetune`: fine-tuning on a target under a budget of target steps, its curve and its
  report.
- :mod:`~simreal.transfer.finetune_evaluations`: the target and source envs fine-tuning evaluates on.
- :mod:`~simreal.transfer.finetune_report`: the final return, forgetting and the verdict against from-scratch; the
  baseline's report read and checked.
- :mod:`~simreal.transfer.derive`: each stage's training config, derived from the resolved source config.
- :mod:`~simreal.transfer.pipeline`: the stages (zero-shot, sysid, identified simulator, fine-tuning, oracle: the
  better of the sim policy fine-tuned on the target and a fresh policy trained there), resumable.
- :mod:`~simreal.transfer.stage_setups`: what the pipeline's training stages train with (the source's and the
  identified simulator's setups, the oracle candidates' settings), and the target checked against the source's robot.
- :mod:`~simreal.transfer.pipeline_folder`: the pipeline's state file checked, its stages' folders emptied or resumed.
- :mod:`~simreal.transfer.report`: markdown, JSON, plots and TensorBoard.
"""
