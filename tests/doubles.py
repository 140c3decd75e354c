"""Test doubles for unit tests of pure logic (integration tests use the real broker and Redis)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Fake"]


@dataclass
class Fake:
    """A stand-in for a Kafka message: what the timestamp merge reads of one, and nothing more."""

    name: str
    number: int
    position: int
    stamp: int

    def topic(self) -> str:
        return self.name

    def partition(self) -> int:
        return self.number

    def offset(self) -> int:
        return self.position

    def timestamp(self) -> tuple[int, int]:
        return (1, self.stamp)
