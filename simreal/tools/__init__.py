"""Day-to-day tools on trained policies.

- :mod:`~simreal.tools.grid`: a map's axes (parameters or effects, with the training range, the targets and the
  nominal value marked) and the checks of what is asked for.
- :mod:`~simreal.tools.robustness`: the return over 1-D and 2-D grids of parameters or effects, on worker processes,
  with difference maps against another policy.
- :mod:`~simreal.tools.map_files`: a map's CSV, JSON, plot and TensorBoard image.
- :mod:`~simreal.tools.coverage`: how much of a policy's training range a map shows it holding (nominal return,
  worst in-range cell, the fraction of the range above 70% of nominal).
- :mod:`~simreal.tools.video`: ``simreal record``'s videos (MP4 or GIF, captions, side by side).
- :mod:`~simreal.tools.sweep`: seeds x grid points of training (or transfer) jobs as Ray tasks, aggregated over seeds.
"""
