# The demandcast processes (stream worker, forecast worker, updater) in one image.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY streams ./streams
COPY models ./models
COPY updater ./updater
COPY demandcast ./demandcast
RUN pip install .
RUN useradd --create-home demandcast && mkdir -p /var/lib/demandcast/models \
    && chown -R demandcast /var/lib/demandcast
USER demandcast
ENTRYPOINT []
CMD ["demandcast", "--help"]
