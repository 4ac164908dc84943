"""ULW-SleepNet training side: Sleep-EDF data layer, PSG simulator, (soon) model and training.

Modules by topic: ``stages`` (AASM classes), ``layout`` (Sleep-EDF PSG layout), ``names``
(file naming), ``hypnogram`` (annotation files), ``psg`` (loading and epoching), ``cache``,
``simulator`` and ``hypnogen`` (simulated nights), ``cli`` (``python -m training``).
"""

__version__ = "0.1.0"
