"""SQLAlchemy models. Every schema change comes with an Alembic migration in alembic/versions."""

from app.models.base import Base
from app.models.chain import ChainNeuron, ChainSubnet, ChainWeightSet
from app.models.gateway import ApiKey, Job
from app.models.generation import Generation, GenerationStatus
from app.models.validator import (
           Challenge,
           Epoch,
           MinerState,
           Outcome,
           ProviderTask,
           Response,
           TierChange,
           WeightSet,
)

__all__ = ["ApiKey", "Base", "Challenge", "ChainNeuron", "ChainSubnet", "ChainWeightSet", "Epoch", "Generation",
           "GenerationStatus", "Job", "MinerState", "Outcome", "ProviderTask", "Response", "TierChange", "WeightSet"]
