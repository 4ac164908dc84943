"""ULW-SleepNet in PyTorch: the model, its training, REST fine-tuning and noise evaluation.

The data layer (Sleep-EDF loading and epoching, the cache, hypnograms, the simulator, the
integer normalisation, noise, metrics and plots) is the torch-free ``sleepdata`` package; this
package stands on it. Modules by topic:

- ``model`` (ULW-SleepNet, its configuration, saving and loading a model folder, per-layer
  counts);
- ``splits`` (a data folder's nights, subject-wise folds and fixed splits, int8 model inputs,
  training statistics), ``loop`` (the one epoch loop, its resumable checkpoint, inference),
  ``train`` (cross-validated training runs), ``evaluate`` (scoring a folder of recordings);
- ``rest`` (REST's attacks, regularisers and pruning), ``finetune`` (robust fine-tuning of a
  model folder), ``robustness`` (the noise and attack evaluation of a model folder, float and
  int8; its tables and plots are ``sleepdata.robustness_report``);
- ``model_card`` (MODEL_CARD.md of a model folder), ``bench`` (data-path and training-epoch
  benchmarks), ``cli`` (``python -m training``).
"""

__version__ = "0.1.0"
