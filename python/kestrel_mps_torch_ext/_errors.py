"""The package's exception hierarchy: every failure the loader or a table call
can meet is one of these, never a bare OSError or a crash."""

from __future__ import annotations

__all__ = [
    "KestrelMPSError",
    "BridgeUnavailableError",
    "UnsupportedTorchVersionError",
    "BridgeLoadError",
    "BridgeMismatchError",
    "BridgeCallError",
]


class KestrelMPSError(Exception):
    """Base class of every error raised by kestrel_mps_torch_ext."""


class BridgeUnavailableError(KestrelMPSError, ImportError):
    """The bridge cannot be loaded for the running torch (an ImportError, so
    code that treats the bridge as optional can catch ImportError)."""


class UnsupportedTorchVersionError(BridgeUnavailableError):
    """No bundled library matches the running torch's major.minor, or the
    version cannot be parsed. Raised before any native code is loaded.
    ``remedies``: shell commands that get a working bridge (also in the
    message), empty where none applies."""

    def __init__(self, message: str, remedies: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.remedies = remedies


class BridgeLoadError(BridgeUnavailableError):
    """The matching library exists but cannot be used: unreadable, corrupt,
    truncated, or missing the KestrelMPSTorchExtAPI_v1 symbol."""


class BridgeMismatchError(BridgeLoadError):
    """The library loaded but was built for another torch minor or ABI
    version than its name promises (a renamed or misplaced file)."""


class BridgeCallError(KestrelMPSError, RuntimeError):
    """A call through the C table returned a non-OK status."""

    def __init__(self, status: int, status_name: str, message: str) -> None:
        super().__init__(f"{status_name}: {message}")
        self.status = status
        self.status_name = status_name
        self.message = message
