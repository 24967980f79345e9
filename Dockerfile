# The ledger's services (api, projector, relay, subscriber): one image, one CLI.
#   docker build -t salesledger .
#   docker run --rm salesledger --help
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 ledger
WORKDIR /app

COPY pyproject.toml README.md ./
COPY events ./events
COPY aggregates ./aggregates
COPY commands ./commands
COPY projections ./projections
COPY services ./services
COPY schemas ./schemas
RUN pip install .

USER ledger
ENV LEDGER_STORE=postgres
ENTRYPOINT ["salesledger"]
CMD ["--help"]
