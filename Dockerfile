# The inkloop image: API server (`inkloop serve`) and Prefect worker. Build args choose the torch build:
#   CPU (default):  docker build .
#   CUDA:           docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
# Handwriting fonts from npm (@fontsource), installed in a Node stage so the image carries no npm.
FROM node:20-slim AS handfonts
COPY synth/data/fontsource.txt deploy/fontsource.sh /tmp/
RUN sh /tmp/fontsource.sh /tmp/fontsource.txt /fonts

FROM python:3.11-slim

ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    INKLOOP_HOME=/var/lib/inkloop

WORKDIR /app
# Fonts for synthetic paragraphs: keep in step with FONT_PACKAGES in the Makefile.
COPY Makefile /tmp/Makefile
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       $(sed -n '/^FONT_PACKAGES/,/^$/p' /tmp/Makefile | sed 's/FONT_PACKAGES :=//; s/\\//g') \
    && rm -rf /var/lib/apt/lists/* /tmp/Makefile
COPY --from=handfonts /fonts /usr/local/share/fonts/fontsource
# torch first, in its own layer: it is the largest and changes least.
RUN pip install --index-url "${TORCH_INDEX_URL}" "${TORCH_SPEC}"
COPY requirements/constraints.txt requirements/constraints.txt
COPY . .
RUN pip install --constraint requirements/constraints.txt . \
    && useradd --create-home --uid 1000 inkloop \
    && mkdir -p /var/lib/inkloop \
    && chown inkloop /var/lib/inkloop

USER inkloop
EXPOSE 8000
CMD ["inkloop", "serve", "--host", "0.0.0.0", "--port", "8000"]
