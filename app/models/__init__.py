"""SQLAlchemy models. Every schema change comes with an Alembic migration in alembic/versions."""

from app.models.base import Base
from app.models.chain import ChainNeuron, ChainSubnet, ChainWeightSet
from app.models.generation import Generation, GenerationStatus

__all__ = ["Base", "ChainNeuron", "ChainSubnet", "ChainWeightSet", "Generation", "GenerationStatus"]
