"""What a run is: its config (:mod:`~simreal.runs.config`) resolved once (:mod:`~simreal.runs.setup`), the
algorithms it trains (:mod:`~simreal.runs.algorithms`; with a privileged critic: :mod:`~simreal.runs.asymmetric`),
the run directory it writes (:mod:`~simreal.runs.rundir`), and the policy loaded back from it
(:mod:`~simreal.runs.policy`). Training, evaluation, data collection and transfer all read runs through here."""
