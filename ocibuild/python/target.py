"""The target Python of a build and how it is found in a base image: one import for the three parts.

- ``targetpy``: :class:`TargetPython` (version, platform, C library), its wheel tags and
  ``uv --python-platform``; :func:`wheel_arch`.
- ``facts``: :func:`scan_image` reads an image's merged filesystem (``ocibuild.imagefs``) into
  :class:`ImageFacts`: interpreters, symlinks, C library files, dpkg / apk databases, os-release.
- ``detect``: :func:`detect_target` / :func:`target_from_facts` decide what those facts mean.
"""

from __future__ import annotations

from .detect import detect_target, target_from_facts
from .facts import ImageFacts, scan_image
from .targetpy import TargetPython, wheel_arch

__all__ = ["ImageFacts", "TargetPython", "detect_target", "scan_image", "target_from_facts", "wheel_arch"]
