"""What a run is told: ``params.yaml`` (the settings that decide results, DVC params), the machine settings
(how this machine runs it, not DVC params), and the named choices both refer to. Pure Python."""

from embedft.config.choices import (
    BM25_LANGUAGES,
    CANDIDATE_PREFIX,
    CORPUS_SOURCE_NAMES,
    FINE_TUNED_SYSTEMS,
    PAIR_SOURCES,
    SCORE_NORMALISATIONS,
    SOURCE_NAMES,
    STRUCTURE_SOURCE_NAMES,
    SYSTEM_LABELS,
    SYSTEMS,
)
from embedft.config.losses import LOSS_NAMES, LOSSES, Loss
from embedft.config.machine import MachineSettings, load_machine
from embedft.config.params import (
    BaseParams,
    Bm25Params,
    DataParams,
    EvaluateParams,
    ExportParams,
    IngestParams,
    LlmParams,
    LocalGeneratorParams,
    LoraParams,
    MineNegativesParams,
    Params,
    PublishParams,
    SearchLogParams,
    SplitParams,
    SynthesizeParams,
    TrainParams,
    TruncateEvalParams,
    load_params,
)

__all__ = [
    "BM25_LANGUAGES", "BaseParams", "Bm25Params", "CANDIDATE_PREFIX", "CORPUS_SOURCE_NAMES", "DataParams",
    "EvaluateParams", "ExportParams", "FINE_TUNED_SYSTEMS", "IngestParams", "LOSSES", "LOSS_NAMES", "LlmParams",
    "LocalGeneratorParams", "LoraParams", "Loss", "MachineSettings", "MineNegativesParams", "PAIR_SOURCES", "Params",
    "PublishParams", "SCORE_NORMALISATIONS", "SOURCE_NAMES", "STRUCTURE_SOURCE_NAMES", "SYSTEMS", "SYSTEM_LABELS",
    "SearchLogParams", "SplitParams", "SynthesizeParams", "TrainParams", "TruncateEvalParams", "load_machine",
    "load_params",
]
