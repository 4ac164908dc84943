"""The sleep-staging data and domain core, shared by training, converter and host tools.

Needs only numpy, pyedflib, matplotlib and tqdm (never torch or TensorFlow); the simulator also
needs scipy (the ``simulate`` extra). Modules by topic:

- ``stages`` (AASM classes and the R&K mapping), ``layout`` (the Sleep-EDF PSG layout and the
  model's channels), ``names`` (Sleep-EDF file names), ``errors`` (bad-input exceptions);
- ``hypnogram`` (EDF+ and TSV hypnograms), ``psg`` (loading and epoching a PSG + hypnogram
  pair), ``cache`` (epoched nights on disk), ``cohort`` (subjects of a data folder);
- ``normalise`` (the integer input normalisation the board runs, in numpy), ``noise`` (the REST
  noise generators), ``adversarial`` (the adversarial epoch file);
- ``metrics`` (ACC, macro-F1, kappa, sleep statistics), ``plots`` (hypnograms, confusion
  matrices), ``robustness_report`` (the noise-robustness tables and plot, host and on chip);
- ``hypnogen`` (generated hypnograms) and ``simulator`` (PSG files in the Sleep-EDF layout);
- ``tflm`` (TensorFlow Lite Micro's host runtime, the bit-exact reference of the board: needs the
  ``tflite-micro`` package, imported on first use).
"""

__version__ = "0.1.0"
