"""System identification: recordings (:mod:`~simreal.sysid.trajectories`), collecting them
(:mod:`~simreal.sysid.collect`), the states they hold (:mod:`~simreal.sysid.states`,
:mod:`~simreal.sysid.smoothing`), windows of them (:mod:`~simreal.sysid.windows`), the batched simulator that
scores parameters on them (:mod:`~simreal.sysid.simulator`), and the fit (:mod:`~simreal.sysid.identify`)."""
