"""Flare: configuration, the command line and process wiring."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("flare")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
