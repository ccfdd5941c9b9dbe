"""Training: randomization schedules (:mod:`~simreal.train.schedules`), stable-baselines3 callbacks
(:mod:`~simreal.train.callbacks`) and the trainer that runs and resumes a run (:mod:`~simreal.train.trainer`)."""
