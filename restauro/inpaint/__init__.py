"""Semantic inpainting of paintings by z-optimization on a DCGAN (Yeh et al. 2017).

``inpaint(rgb, mask, models, params)`` restores a full-resolution scan and returns ranked
candidates; :class:`ZOptimizer` is the algorithm alone, usable on any generator/discriminator pair.
"""

from restauro.inpaint.blending import PoissonBlender, paste, poisson_blend
from restauro.inpaint.context import context_weights
from restauro.inpaint.engine import CandidateLoss, GroupLoss, GroupReport, Restoration, inpaint
from restauro.inpaint.finetune import GeneratorFineTuner
from restauro.inpaint.models import GANModels
from restauro.inpaint.params import InpaintParams
from restauro.inpaint.zopt import ZOptimizer, ZOptResult

__all__ = [
    "CandidateLoss",
    "GANModels",
    "GeneratorFineTuner",
    "GroupLoss",
    "GroupReport",
    "InpaintParams",
    "PoissonBlender",
    "Restoration",
    "ZOptResult",
    "ZOptimizer",
    "context_weights",
    "inpaint",
    "paste",
    "poisson_blend",
]
