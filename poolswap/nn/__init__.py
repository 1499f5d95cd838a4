"""poolswap's layers: weighted pools, adaUnPool and LiftPool, each a drop-in for a torch pool."""

from .lift import LiftDownPool1d, LiftDownPool2d, LiftPredictor, LiftResult, LiftUpPool1d, LiftUpPool2d, aux_loss
from .pools import (
    AdaPool1d, AdaPool2d, AdaPool3d, EDSCWPool1d, EDSCWPool2d, EDSCWPool3d, EMPool1d, EMPool2d, EMPool3d,
    IDWPool1d, IDWPool2d, IDWPool3d, SoftPool1d, SoftPool2d, SoftPool3d,
)  # fmt: skip
from .unpool import AdaUnPool1d, AdaUnPool2d, AdaUnPool3d

__all__ = [
    "AdaPool1d", "AdaPool2d", "AdaPool3d", "AdaUnPool1d", "AdaUnPool2d", "AdaUnPool3d",
    "EDSCWPool1d", "EDSCWPool2d", "EDSCWPool3d", "EMPool1d", "EMPool2d", "EMPool3d",
    "IDWPool1d", "IDWPool2d", "IDWPool3d", "SoftPool1d", "SoftPool2d", "SoftPool3d",
    "LiftDownPool1d", "LiftDownPool2d", "LiftUpPool1d", "LiftUpPool2d", "LiftPredictor", "LiftResult", "aux_loss",
]  # fmt: skip
