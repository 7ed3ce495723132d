"""Studies built on the library: :mod:`~vbayes.studies.autoencoders` (train and compare AE, VAE
and Bayesian AE: fit, latent measurements, ambiguous inputs, reports) and
:mod:`~vbayes.studies.uq` (inference methods compared: experiment, UCI protocol, report).

The library (everything outside ``studies`` and ``cli``) never imports from here; studies never
import from :mod:`vbayes.cli`.
"""
