"""SQLAlchemy models. Every schema change comes with an Alembic migration in alembic/versions."""

from app.models.base import Base
from app.models.generation import Generation, GenerationStatus

__all__ = ["Base", "Generation", "GenerationStatus"]
