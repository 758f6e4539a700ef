"""hf_mentornet: MentorNet (Jiang et al., ICML 2018) for training image classifiers on noisy labels."""

from transformers import AutoConfig, AutoModel

from .baselines import (
    CoTeachingConfig,
    CoTeachingPair,
    CoTeachingTrainer,
    NoiseAdaptationLayer,
    RobustLossConfig,
    RobustLossTrainer,
    SelfPacedConfig,
    SelfPacedTrainer,
)
from .configuration_mentornet import MentorNetConfig
from .curricula import CURRICULA, curriculum_weights, feature_grid
from .data import MentorNetCollator, image_transforms, load_embedded_dataset, with_image_transform
from .hub import load_curriculum, push_curriculum_to_hub, save_curriculum, shipped_curricula
from .label_issues import LabelIssueAggregates, rank_label_issues
from .learning import learn_data_driven_curriculum, learn_from_records, learn_predefined
from .mentormix import MentorMixConfig, MentorMixTrainer, mentormix_batch
from .methods import METHODS, train_method
from .modeling_mentornet import MentorNetModel, MentorNetOutput
from .noise import UNVERIFIED_LABEL, add_sample_index, inject_label_noise, noise_report, with_verified_labels
from .plotting import plot_curriculum
from .students import build_student
from .trainer import MentorNetTrainer
from .training_args import MentorNetTrainingArguments
from .weighted_trainer import WeightedLossArguments, WeightedLossTrainer

__version__ = "0.2.0.dev0"

AutoConfig.register("mentornet", MentorNetConfig, exist_ok=True)
AutoModel.register(MentorNetConfig, MentorNetModel, exist_ok=True)

__all__ = [
    "CURRICULA",
    "METHODS",
    "CoTeachingConfig",
    "CoTeachingPair",
    "CoTeachingTrainer",
    "LabelIssueAggregates",
    "MentorMixConfig",
    "MentorMixTrainer",
    "MentorNetCollator",
    "MentorNetConfig",
    "MentorNetModel",
    "MentorNetOutput",
    "MentorNetTrainer",
    "MentorNetTrainingArguments",
    "NoiseAdaptationLayer",
    "RobustLossConfig",
    "RobustLossTrainer",
    "SelfPacedConfig",
    "SelfPacedTrainer",
    "UNVERIFIED_LABEL",
    "WeightedLossArguments",
    "WeightedLossTrainer",
    "add_sample_index",
    "build_student",
    "curriculum_weights",
    "feature_grid",
    "image_transforms",
    "inject_label_noise",
    "learn_data_driven_curriculum",
    "learn_from_records",
    "learn_predefined",
    "load_curriculum",
    "load_embedded_dataset",
    "mentormix_batch",
    "noise_report",
    "plot_curriculum",
    "push_curriculum_to_hub",
    "rank_label_issues",
    "save_curriculum",
    "shipped_curricula",
    "train_method",
    "with_image_transform",
    "with_verified_labels",
]
