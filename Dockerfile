# One image for every role: compose.yaml picks the command (migrate, daphne or qcluster).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# Static files are served by WhiteNoise from STATIC_ROOT: collected at build time, with DEBUG=0
# so that they get hashed names and gzip and brotli copies (messenger/staticfiles.py), and the web
# container needs no writable volume. DEBUG=0 needs a SECRET_KEY even for collectstatic.
RUN SECRET_KEY=build-only DEBUG=0 python manage.py collectstatic --noinput -v0

RUN useradd --create-home --uid 10001 messenger && mkdir -p /app/media && chown messenger /app/media
USER messenger

EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "project.asgi:application"]
