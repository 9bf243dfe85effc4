"""Beam predictors: the interface and registry (`learners.models.registry`) and the built-in models.

The registry never imports its plug-ins: each model module registers its classes where they are
defined, and importing this package (which any import of `learners.models.<module>` does first)
registers the built-in ones. A model of another package registers the same way, with
`register_model`, when that package is imported.
"""

from learners.models import baselines, beamtransfuser, cvae, jepa, vipoe, wmfm
from learners.models.registry import MODELS, BeamPredictor, ModelContext, register_model

__all__ = [
    "MODELS",
    "BeamPredictor",
    "ModelContext",
    "baselines",
    "beamtransfuser",
    "cvae",
    "jepa",
    "register_model",
    "vipoe",
    "wmfm",
]
