# The scalestudy image: Ray's GPU image at exactly the Ray version pyproject pins, with
# scalestudy and its dependencies installed. The KubeRay manifests in k8s/ run it on the head
# and the GPU workers; spec files are at /app/search_spaces/.
#
#   docker build -t scalestudy:0.1.0 .          # tag = pyproject's version
#
# tests/test_k8s.py checks that the tag below, every rayproject/ray image and every
# `rayVersion:` in k8s/ equal pyproject's `ray[...]==` pin; the build checks it again.
FROM rayproject/ray:2.60.0-py311-gpu

# The MLflow client, pinned to the tracking server's version (k8s/mlflow-image/Dockerfile).
ARG MLFLOW_VERSION=3.17.2

USER root
RUN mkdir -p /app && chown ray:users /app
USER ray
WORKDIR /app

# Dependencies first, from pyproject alone, so that editing the code does not re-download
# torch. Ray is already in the base image at the pinned version, so pip leaves it alone.
COPY --chown=ray:users pyproject.toml /app/pyproject.toml
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt "mlflow==${MLFLOW_VERSION}" \
    && rm /tmp/requirements.txt

# The repository (filtered by .dockerignore): the package, search_spaces/, README.
COPY --chown=ray:users . /app
RUN pip install --no-cache-dir --no-deps /app \
    && scalestudy --help > /dev/null

# Fail the build if Ray is not the version pyproject pins (a base image or a pip resolution
# that moved it would break the cluster: every node must run the same Ray).
RUN pin=$(sed -n 's/^ *"ray\[[^]]*\]==\([^"]*\)".*/\1/p' pyproject.toml) \
    && have=$(python -c "import ray; print(ray.__version__)") \
    && if [ "$have" != "$pin" ]; then echo "image has Ray $have, pyproject pins $pin" >&2; exit 1; fi
