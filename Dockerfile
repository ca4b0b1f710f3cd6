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
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/app/pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt "mlflow==${MLFLOW_VERSION}" \
    && rm /tmp/requirements.txt

# The repository (filtered by .dockerignore): the package, search_spaces/, README.
COPY --chown=ray:users . /app
RUN pip install --no-cache-dir --no-deps /app \
    && python -c "import re, tomllib, ray; deps = tomllib.load(open('/app/pyproject.toml', 'rb'))['project']['dependencies']; pin = next(re.match(r'ray\[[^]]*\]==(\S+)', d).group(1) for d in deps if d.startswith('ray[')); assert ray.__version__ == pin, f'image has Ray {ray.__version__}, pyproject pins {pin}'" \
    && scalestudy --help > /dev/null
