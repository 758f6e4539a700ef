"""hf_mentornet: MentorNet (Jiang et al., ICML 2018) for training image classifiers on noisy labels."""

from transformers import AutoConfig, AutoModel

from .configuration_mentornet import MentorNetConfig
from .curricula import CURRICULA, curriculum_weights, feature_grid
from .modeling_mentornet import MentorNetModel, MentorNetOutput, load_curriculum, shipped_curricula

__version__ = "0.1.0"

AutoConfig.register("mentornet", MentorNetConfig, exist_ok=True)
AutoModel.register(MentorNetConfig, MentorNetModel, exist_ok=True)

__all__ = [
    "CURRICULA",
    "MentorNetConfig",
    "MentorNetModel",
    "MentorNetOutput",
    "curriculum_weights",
    "feature_grid",
    "load_curriculum",
    "shipped_curricula",
]
