# The studio as a container: CPU torch by default; build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128
# for CUDA. Runs as a non-root user; the studio's home (runs, models, ratings) is /data.
FROM python:3.11-slim

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# Public mode (README, "Safety on the internet"): give visitors a login with STUDIO_AUTH=user:password,...
# (or run it as a Space); for a private box, run with -e STUDIO_PUBLIC=
ENV PYTHONUNBUFFERED=1 GRADIO_ANALYTICS_ENABLED=False HF_HUB_DISABLE_TELEMETRY=1 \
    STUDIO_HOME=/data STUDIO_HOST=0.0.0.0 STUDIO_PORT=7860 STUDIO_PUBLIC=1

RUN apt-get update && apt-get install -y --no-install-recommends wordnet-base g++ && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 1000 studio && mkdir -p /data && chown studio /data
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir --index-url "$TORCH_INDEX" torch==2.13.0 \
 && pip install --no-cache-dir -r requirements.txt
COPY --chown=studio . .
USER studio
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=4)"
CMD ["python", "app.py"]
