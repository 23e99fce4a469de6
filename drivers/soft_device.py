"""Lifecycle shared by devices that exist only in software (simulated and replayed drivers)."""

from __future__ import annotations

from typing import ClassVar, Self

from drivers.base import CheckResult


class SoftDevice:
    """open/close (also as a context manager), a self-test that always passes, and a clear error when the
    device is used before open(). Subclasses set `family` ("sim", "replay") and `role`, and may override
    `_attach`/`_detach` (called on open/close) and `_describe` (the self-test message)."""

    family: ClassVar[str] = ""
    role: ClassVar[str] = ""
    _open = False

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        if not self._open:
            self._attach()
            self._open = True

    def close(self) -> None:
        if self._open:
            self._open = False
            self._detach()

    def self_test(self) -> list[CheckResult]:
        return [CheckResult(f"{self.family} {self.role}", True, self._describe())]

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _need_open(self) -> None:
        if not self._open:
            raise RuntimeError(f"{self.family} {self.role} driver is not open; call open() first")

    def _attach(self) -> None:
        pass

    def _detach(self) -> None:
        pass

    def _describe(self) -> str:
        return self.family
