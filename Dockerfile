# Image Atlas app image. docker compose up starts it next to a Qdrant server (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 \
    ATLAS_STORE_PATH=/data/qdrant ATLAS_CACHE_DIR=/data/cache ATLAS_REPORT_DIR=/data/reports \
    NUMBA_CACHE_DIR=/app/numba-cache
WORKDIR /app

# Exact versions from requirements.lock, as CI tests them. CPU wheels of the pinned torch pair keep the image
# small; on a GPU host install the CUDA build instead.
COPY requirements.txt requirements.lock ./
RUN pip install -c requirements.lock torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cpu
RUN pip install -c requirements.lock -r requirements.txt

COPY core core
COPY ui ui
COPY app_pages app_pages
COPY app.py .
COPY .streamlit/config.toml .streamlit/config.toml
# numba's compiled map code goes into the image (outside the /data volume): the first map is not a minute late.
RUN python -m core warmup

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"
CMD ["python", "-m", "ui.serve", "--server.address", "0.0.0.0", "--server.port", "8501"]
