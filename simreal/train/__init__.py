"""Training: the schedule protocol (:mod:`~simreal.train.protocol`), randomization schedules
(:mod:`~simreal.train.schedules`) and the weakest-region objective around them (:mod:`~simreal.train.weakest_region`),
stable-baselines3 callbacks (:mod:`~simreal.train.callbacks`), the trainer that runs a run
(:mod:`~simreal.train.trainer`), where it starts and its exact resume (:mod:`~simreal.train.resume`), and its stop on
SIGINT and SIGTERM (:mod:`~simreal.train.signals`)."""
