"""Fine-tuning: the training examples each loss needs, the loss, the trainer's arguments and batch sampler,
dev evaluation and curves, checkpoints and resuming, LoRA, multi-GPU runs, the run's report and the model card
(the Hub card, and the card with the test metrics that publishing uploads)."""

import embedft.training.distributed as distributed
from embedft.training.data import TrainingSet, build_training_set, check_settings, score_warning
from embedft.training.dev_pool import CandidatePool
from embedft.training.fine_tuning import fine_tune
from embedft.training.model_card import CardFacts, card_with_test_metrics, split_front_matter, write_model_card
from embedft.training.monitor import DevSet, TrainingCurves, load_dev_set
from embedft.training.run_report import split_run_measurements
from embedft.training.saving import save_model

__all__ = ["CandidatePool", "CardFacts", "DevSet", "TrainingCurves", "TrainingSet", "build_training_set", "card_with_test_metrics",
           "check_settings", "distributed", "fine_tune", "load_dev_set", "save_model", "score_warning", "split_front_matter",
           "split_run_measurements", "write_model_card"]
