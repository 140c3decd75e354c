# The learner image: `learner run` (the service), `learner produce`, and the operator commands.
# Every dependency ships manylinux wheels (river, confluent-kafka with librdkafka inside, numpy,
# scipy, orjson, pydantic-core), so the slim image needs no compiler.
FROM python:3.11.10-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin learner

WORKDIR /src
COPY requirements-image.lock pyproject.toml README.md ./
COPY stream/ stream/
COPY learner/ learner/
# The runtime's share of the project's lock (README "Development"): the versions the tests ran
# against, checked by hash, pip and setuptools included; then the project itself, without
# dependencies and built with the lock's setuptools.
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements-image.lock \
    && pip install --no-cache-dir --no-deps --no-build-isolation . \
    && pip check \
    && rm -rf /src/build

USER learner
WORKDIR /home/learner

EXPOSE 8000
ENTRYPOINT ["learner"]
CMD ["run"]
