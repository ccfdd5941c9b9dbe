"""System identification: recordings (:mod:`~simreal.sysid.trajectories`), collecting them
(:mod:`~simreal.sysid.collect`), the states they hold (:mod:`~simreal.sysid.states`,
:mod:`~simreal.sysid.smoothing`), windows of them (:mod:`~simreal.sysid.windows`), the batched simulator that
scores parameters on them (:mod:`~simreal.sysid.simulator`), the fit (:mod:`~simreal.sysid.fitting`), its plan of
work and progress reports (:mod:`~simreal.sysid.progress`), its uncertainty and checks
(:mod:`~simreal.sysid.uncertainty`), its result (:mod:`~simreal.sysid.result`), and the entry point that runs them
in turn (:mod:`~simreal.sysid.identify`)."""
