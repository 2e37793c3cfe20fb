# Fraud scoring service image: code and the default model baked in (no runtime_env working_dir).
# Ray's own image, so `ray start` (run by KubeRay), bash and the non-root `ray` user are there.
ARG RAY_VERSION=2.60.0
FROM rayproject/ray:${RAY_VERSION}-py311-cpu
ARG RAY_VERSION
# The uv that reads uv.lock here; pinned so that a new release never changes what is installed.
ARG UV_VERSION=0.13.9

# KubeRay's readiness probe for workers runs `wget localhost:8000/-/healthz`.
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends wget bash \
    && rm -rf /var/lib/apt/lists/*
USER ray
WORKDIR /home/ray/app

# Dependencies first (a layer that only changes with uv.lock): the serving set and the ledger
# report's (its RayJob runs this image; no training packages), exactly as locked, every file
# checked against the lock's sha256.
COPY --chown=ray:users pyproject.toml uv.lock ./
RUN pip install --no-cache-dir "uv==${UV_VERSION}" \
    && uv export --frozen --no-dev --extra report --no-emit-project -o /tmp/requirements.txt \
    && uv pip install --system --no-cache --require-hashes -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt \
    && python -c "import ray, sys; sys.exit(ray.__version__ != '${RAY_VERSION}')"

# Then the code and the bundled model.
COPY --chown=ray:users fraud_model/ fraud_model/
COPY --chown=ray:users serve_app/ serve_app/
COPY --chown=ray:users ledger/ ledger/
COPY --chown=ray:users configs/ configs/
COPY --chown=ray:users artifacts/default/ artifacts/default/
COPY --chown=ray:users README.md ./
RUN uv pip install --system --no-cache --no-deps -e .

ENV PYTHONDONTWRITEBYTECODE=1
EXPOSE 8000
# BEGIN rendered by `python -m k8s.render` from fraud_model/ray_env.py and serve_app/routes.py
ENV RAY_ENABLE_UV_RUN_RUNTIME_ENV="0" \
    RAY_SERVE_ENABLE_HA_PROXY="1" \
    RAY_SERVE_THROUGHPUT_OPTIMIZED="1" \
    RAY_SERVE_HAPROXY_RETRY_ON="conn-failure empty-response" \
    RAY_SERVE_GRPC_MAX_MESSAGE_SIZE="4194304"
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD wget -q -O /dev/null http://localhost:8000/api/v1/utils/health-check/ || exit 1
# END rendered
# The production Serve config (host 0.0.0.0, model from S3 through the standard AWS credential
# chain), rendered from configs/ by `python -m k8s.render`. On KubeRay, the RayService's
# serveConfigV2 (the same file) is what runs; this command is for a plain `docker run`.
CMD ["serve", "run", "configs/serve_config.production.yaml"]
