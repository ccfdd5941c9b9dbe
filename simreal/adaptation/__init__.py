"""Online adaptation: policies that identify the dynamics while they act, trained only in randomized simulation.

- :mod:`~simreal.adaptation.osi`: UP-OSI's online system identification, an MLP estimating the log-multipliers from
  the last observations and actions (network, rollouts, the DAgger-like training rounds, saving and loading).
- :mod:`~simreal.adaptation.rma`: RMA's encoder of the true dynamics and its adaptation module (a 1-D convolution
  over the history), both in the policy's features extractor, and the module's on-policy training.
"""
