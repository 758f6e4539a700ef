"""hf_mentornet: MentorNet (Jiang et al., ICML 2018) for training image classifiers on noisy labels."""

from transformers import AutoConfig, AutoModel

from .configuration_mentornet import MentorNetConfig
from .curricula import CURRICULA, curriculum_weights, feature_grid
from .data import MentorNetCollator, image_transforms, load_embedded_dataset, with_image_transform
from .learning import learn_from_records, learn_predefined
from .modeling_mentornet import MentorNetModel, MentorNetOutput, load_curriculum, shipped_curricula
from .noise import add_sample_index, inject_label_noise, noise_report
from .plotting import plot_curriculum
from .students import build_student
from .trainer import MentorNetTrainer
from .training_args import MentorNetTrainingArguments

__version__ = "0.1.0"

AutoConfig.register("mentornet", MentorNetConfig, exist_ok=True)
AutoModel.register(MentorNetConfig, MentorNetModel, exist_ok=True)

__all__ = [
    "CURRICULA",
    "MentorNetCollator",
    "MentorNetConfig",
    "MentorNetModel",
    "MentorNetOutput",
    "MentorNetTrainer",
    "MentorNetTrainingArguments",
    "add_sample_index",
    "build_student",
    "curriculum_weights",
    "feature_grid",
    "image_transforms",
    "inject_label_noise",
    "learn_from_records",
    "learn_predefined",
    "load_curriculum",
    "load_embedded_dataset",
    "noise_report",
    "plot_curriculum",
    "shipped_curricula",
    "with_image_transform",
]
