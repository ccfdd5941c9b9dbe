"""Evaluation on the source simulator and on targets (:mod:`~simreal.evaluate.evaluator`), the reality gap with
bootstrap confidence intervals (:mod:`~simreal.evaluate.gap`), and an episode rendered to frames, shown in TensorBoard
as an animated image (:mod:`~simreal.evaluate.video`)."""
