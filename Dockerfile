FROM python:3.11-slim
WORKDIR /srv/seedgrid
COPY pyproject.toml constraints.txt README.md alembic.ini beat_schedule.py ./
COPY app ./app
COPY workers ./workers
COPY alembic ./alembic
# For CUDA, install the CUDA build of torch 2.13.0 instead of the CPU wheel pinned here.
RUN pip install --no-cache-dir torch==2.13.0 -c constraints.txt \
 && pip install --no-cache-dir -e . -c constraints.txt
ENV SEEDGRID_STATE_DIR=/state
