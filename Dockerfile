# Fraud scoring service image: code and the default model baked in (no runtime_env working_dir).
# Ray's own image, so `ray start` (run by KubeRay), bash and the non-root `ray` user are there.
ARG RAY_VERSION=2.60.0
# The base, by digest: a tag can be moved, a digest names exactly the bytes that were reviewed.
# Read it where Docker Hub is reachable (`docker buildx imagetools inspect
# rayproject/ray:2.60.0-py311-cpu`) and put it here; the build refuses a base without one. CI
# builds on a stand-in with the same user and layout (k8s/image.py), passed by its digest too.
ARG BASE_IMAGE=rayproject/ray:2.60.0-py311-cpu@sha256:REPLACE_WITH_THE_DIGEST_OF_THAT_TAG
# An empty stage by default; a build that must trust an extra certificate authority to reach
# the package indexes names a directory holding `ca-certificates.crt` instead
# (`--build-context host-ca=/etc/ssl/certs`). It is mounted for the steps that download, never
# copied into the image.
FROM scratch AS host-ca

FROM ${BASE_IMAGE}
ARG BASE_IMAGE
ARG RAY_VERSION
# The uv that reads uv.lock here, installed by the sha256 of its wheels (x86_64 and aarch64) so
# that neither a new release nor a changed file on the index changes what is installed.
ARG UV_VERSION=0.13.9
ARG UV_SHA256_X86_64=d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19
ARG UV_SHA256_AARCH64=5435c5ce14a56431208ca0996416d310f1598e8c2c8ba707688985a16bb82dbe

USER root
# Refuse a base that is not pinned by its sha256 digest.
RUN digest="${BASE_IMAGE##*@sha256:}"; \
    if [ "${digest}" = "${BASE_IMAGE}" ] || [ "${#digest}" -ne 64 ] \
        || [ -n "$(printf %s "${digest}" | tr -d 0-9a-f)" ]; then \
        echo "BASE_IMAGE ${BASE_IMAGE} is not pinned by its sha256 digest" >&2; exit 1; \
    fi
# KubeRay's readiness probe for workers runs `wget localhost:8000/-/healthz`.
RUN apt-get update \
    && apt-get install -y --no-install-recommends wget bash \
    && rm -rf /var/lib/apt/lists/*
USER ray
WORKDIR /home/ray/app

# The locked extras installed beside the serving set: the ledger report's (its RayJob runs this
# image). The retraining RayJob runs the variant built with
# `--build-arg EXTRAS="--extra report --extra training"`, tagged <tag>-training (docs/DEPLOY.md).
ARG EXTRAS="--extra report"

# Dependencies first (a layer that only changes with uv.lock): the serving set and EXTRAS'
# packages (no training packages by default), exactly as locked, every file
# checked against the lock's sha256, compiled to bytecode here (the root filesystem is read-only
# in the pods: without it every Ray process would compile Ray again at each start).
COPY --chown=ray:users pyproject.toml uv.lock ./
RUN --mount=type=bind,from=host-ca,target=/run/host-ca \
    if [ -f /run/host-ca/ca-certificates.crt ]; then \
        export PIP_CERT=/run/host-ca/ca-certificates.crt \
            SSL_CERT_FILE=/run/host-ca/ca-certificates.crt; \
    fi \
    && printf 'uv==%s --hash=sha256:%s --hash=sha256:%s\n' \
        "${UV_VERSION}" "${UV_SHA256_X86_64}" "${UV_SHA256_AARCH64}" >/tmp/uv.txt \
    && pip install --no-cache-dir --only-binary=:all: --require-hashes -r /tmp/uv.txt \
    && uv export --frozen --no-dev ${EXTRAS} --no-emit-project -o /tmp/requirements.txt \
    && uv pip install --python "$(command -v python)" --no-cache --compile-bytecode --require-hashes \
        -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt /tmp/uv.txt \
    && python -c "import ray, sys; sys.exit(ray.__version__ != '${RAY_VERSION}')"

# Then the code and the bundled model.
COPY --chown=ray:users fraud_model/ fraud_model/
COPY --chown=ray:users serve_app/ serve_app/
COPY --chown=ray:users ledger/ ledger/
COPY --chown=ray:users training/ training/
COPY --chown=ray:users configs/ configs/
COPY --chown=ray:users artifacts/default/ artifacts/default/
COPY --chown=ray:users README.md ./
RUN --mount=type=bind,from=host-ca,target=/run/host-ca \
    if [ -f /run/host-ca/ca-certificates.crt ]; then \
        export SSL_CERT_FILE=/run/host-ca/ca-certificates.crt; \
    fi \
    && uv pip install --python "$(command -v python)" --no-cache --no-deps -e . \
    && python -m compileall -q fraud_model serve_app ledger training

ENV PYTHONDONTWRITEBYTECODE=1
EXPOSE 8000
# BEGIN rendered by `python -m k8s.render` from fraud_model/ray_env.py and serve_app/routes.py
ENV RAY_ENABLE_UV_RUN_RUNTIME_ENV="0" \
    RAY_SERVE_ENABLE_HA_PROXY="1" \
    RAY_SERVE_THROUGHPUT_OPTIMIZED="1" \
    RAY_SERVE_HAPROXY_RETRY_ON="conn-failure empty-response" \
    RAY_SERVE_HAPROXY_METRICS_ENABLED="0" \
    RAY_SERVE_HAPROXY_NBTHREAD="1" \
    RAY_SERVE_GRPC_MAX_MESSAGE_SIZE="4194304" \
    RAY_ROTATION_MAX_BYTES="8388608" \
    RAY_ROTATION_BACKUP_COUNT="1"
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD wget -q -O /dev/null http://localhost:8000/api/v1/utils/health-check/ || exit 1
# END rendered
# The production Serve config (host 0.0.0.0, model from S3 through the standard AWS credential
# chain), rendered from configs/ by `python -m k8s.render`. On KubeRay, the RayService's
# serveConfigV2 (the same file) is what runs; this command is for a plain `docker run`.
CMD ["serve", "run", "configs/serve_config.production.yaml"]
