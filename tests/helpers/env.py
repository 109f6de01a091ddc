"""A test module's settings in this process: SEEDGRID_* variables set, the cached settings and validator dropped."""

import os
from contextlib import contextmanager


@contextmanager
def process_env(env: dict[str, str]):
    from app.config import get_settings
    from app.tasks import validator as validator_tasks

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    validator_tasks.validator.cache_clear()
    try:
        yield
    finally:
        for k, value in saved.items():
            os.environ.pop(k, None) if value is None else os.environ.__setitem__(k, value)
        get_settings.cache_clear()
        validator_tasks.validator.cache_clear()
