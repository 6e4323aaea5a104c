# One image for every Seer program: `seer train|evaluate|serve|retrain`, and `mlflow server`
# (mlflow is a project dependency). docker-compose.yml picks the program with `command:`.
#
#   docker build -t seer --build-arg SEER_GIT_COMMIT=$(git rev-parse HEAD) .
#   docker run --rm seer                      # seer --help
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The CPU wheel first, from the PyTorch index: `torch>=2.4` in pyproject is then already met,
# so the project install below never pulls the CUDA build (several GB) from PyPI.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

# Third-party dependencies in their own layer, read from pyproject, so editing the code does not
# reinstall them (psycopg2-binary among them: the MLflow server's PostgreSQL driver).
COPY pyproject.toml /tmp/pyproject.toml
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt /tmp/pyproject.toml

# The project itself, installed as a wheel (the packages, the `seer` script and the ETT files in
# data/series/datasets); the sources are removed after, nothing runs from a source tree.
WORKDIR /src
COPY pyproject.toml README* ./
COPY core ./core
COPY forecasters ./forecasters
COPY signals ./signals
COPY data ./data
COPY inference ./inference
COPY training ./training
COPY service ./service
COPY seer ./seer
RUN pip install . && cd / && rm -rf /src
# The shipped pretrained bundles (`seer pretrained register NAME`), outside the installed package.
COPY pretrained /opt/seer/pretrained
ENV SEER_PRETRAINED_DIR=/opt/seer/pretrained

# Runs as an unprivileged user. /app is the working directory (a local mlflow.db, Lightning logs);
# /mlartifacts is created here so that a named volume mounted there starts owned by `seer`.
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin seer \
    && mkdir -p /app /mlartifacts \
    && chown seer:seer /app /mlartifacts

# The commit the image was built from; there is no .git inside, so runs can tag it from here.
ARG SEER_GIT_COMMIT=unknown
ENV SEER_GIT_COMMIT=${SEER_GIT_COMMIT}
LABEL org.opencontainers.image.title="seer" \
      org.opencontainers.image.revision="${SEER_GIT_COMMIT}"

WORKDIR /app
USER seer
EXPOSE 8000 5000
CMD ["seer", "--help"]
