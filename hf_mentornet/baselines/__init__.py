"""The baselines of the MentorNet paper (Jiang et al., ICML 2018, Sec. 5.1 and Appendix E.2) and Co-teaching, each a
trainer with its own arguments built on [`WeightedLossTrainer`] (itself plain training, every weight 1), or a
student wrapper trained by it:

| method | how |
|---|---|
| plain (FullModel / NoReg) | `WeightedLossTrainer` |
| focal, Reed soft / hard | `RobustLossTrainer` + `RobustLossConfig(loss_type=...)` |
| self-paced (Kumar et al.) | `SelfPacedTrainer` + `SelfPacedConfig` |
| S-model | `WeightedLossTrainer` on `NoiseAdaptationLayer(student, num_labels)` |
| forgetting (Arpit et al.) | `WeightedLossTrainer` on a student with dropout |
| co-teaching | `CoTeachingTrainer` + `CoTeachingConfig` on `CoTeachingPair(student, peer)` |

`hf_mentornet.methods.METHODS` names them all.
"""

from .co_teaching import (
    CoTeachingConfig,
    CoTeachingPair,
    CoTeachingTrainer,
    co_teaching_forget_rate,
    co_teaching_weights,
)
from .losses import RobustLossConfig, RobustLossTrainer, focal_loss, reed_hard_loss, reed_soft_loss
from .s_model import NoiseAdaptationLayer
from .self_paced import SelfPacedConfig, SelfPacedTrainer, self_paced_threshold

__all__ = [
    "CoTeachingConfig",
    "CoTeachingPair",
    "CoTeachingTrainer",
    "NoiseAdaptationLayer",
    "RobustLossConfig",
    "RobustLossTrainer",
    "SelfPacedConfig",
    "SelfPacedTrainer",
    "co_teaching_forget_rate",
    "co_teaching_weights",
    "focal_loss",
    "reed_hard_loss",
    "reed_soft_loss",
    "self_paced_threshold",
]
