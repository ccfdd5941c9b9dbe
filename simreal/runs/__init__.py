"""What a run is: its config (the schema: :mod:`~simreal.runs.config`; reading it, with ``--set`` overrides:
:mod:`~simreal.runs.config_files`) resolved once (:mod:`~simreal.runs.setup`), the
algorithms it trains (:mod:`~simreal.runs.algorithms`; with a privileged critic: :mod:`~simreal.runs.asymmetric`),
the run directory it writes (:mod:`~simreal.runs.rundir`), a model's files that are read back without unpickling
(:mod:`~simreal.runs.model_files`), and the policy loaded back from it (:mod:`~simreal.runs.policy`). Training,
evaluation, data collection and transfer all read runs through here."""
