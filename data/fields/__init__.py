"""PDE fields for the rollout task: our own solver and data, and the shipped reference sets.

Modules (import them directly; this package imports nothing heavy):
- `spectral`: pseudo-spectral periodic solvers in torch (1D Burgers, 2D Navier–Stokes in vorticity form
  with Kolmogorov forcing, 3D Navier–Stokes in rotational form with energy-injecting forcing), 2/3-rule
  dealiasing, integrating-factor RK4, CFL step, energy, shell spectrum, sharp/Gaussian filter + coarse
  sampling.
- `generate`: seeded trajectories (random initial spectrum, spin-up, snapshots), compressed `.npz`
  datasets with their generation parameters, a validating reader, and the CLI
  `python -m data.fields.generate`.
- `burgers`: the Raissi Burgers reference and the neuraloperator mini Burgers set (`datasets/`,
  provenance in `datasets/SOURCE.md`), and our solver run on the reference problem.
"""
