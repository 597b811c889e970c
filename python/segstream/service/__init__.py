"""The real-time service: a Faust app that segments customers from Kafka events.

Run it with `segstream worker RULES --broker kafka://127.0.0.1:9092`, or with Faust's own
command line, `faust -A segstream.service worker`, which reads the settings from
`SEGSTREAM_*` variables (`SEGSTREAM_RULES`, `SEGSTREAM_BROKER`, … see `ServiceSettings`).
The app is only built when `app` is first looked up, so importing this package for its
command-line registration costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from segstream.service.settings import ServiceSettings

if TYPE_CHECKING:
    import faust

__all__ = ["ServiceSettings", "create_app"]


def create_app(settings: ServiceSettings) -> faust.App:
    """A configured Faust app for `settings`."""
    from segstream.service.app import create_app as _create

    return _create(settings)


def __getattr__(name: str) -> Any:
    # `faust -A segstream.service` looks up `segstream.service.app`: build it from the
    # environment the first time, then keep it as a plain module attribute.
    if name == "app":
        built = create_app(ServiceSettings.from_env())
        globals()["app"] = built
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
