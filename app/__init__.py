"""Seedgrid: a verified generation grid on Celery."""

__version__ = "0.1.0"
