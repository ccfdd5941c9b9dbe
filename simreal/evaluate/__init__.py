"""Evaluation on the source simulator and on targets (:mod:`~simreal.evaluate.evaluator`), and the reality gap with
bootstrap confidence intervals (:mod:`~simreal.evaluate.gap`)."""
