"""Independent test harness for ocibuild: the yardstick the package is measured against.

Nothing here imports ``ocibuild``. Only the standard library, ``jsonschema``/``referencing``,
``zstandard``, ``cryptography`` and ``requests`` are used; everything else is an external tool
(GNU tar, dpkg-deb, apt-get, mmdebstrap, skopeo, umoci, runc, podman, oci-image-tool, qemu-user-static,
docker-registry = CNCF distribution 2.8.2, htpasswd). A missing tool is a hard failure, never a skip.

Modules (import the one you need, e.g. ``from harness.validate import validate_layout``):

- :mod:`harness.proc`: the one subprocess runner (:func:`~harness.proc.run`) and the one skopeo
  wrapper (:func:`~harness.proc.skopeo` plus ``skopeo_copy`` / ``skopeo_inspect`` / ``skopeo_inspect_raw``).
- :mod:`harness.layout`: OCI media-type constants and small OCI-layout read/write helpers.
- :mod:`harness.bases`: base images made by hand (busybox-static, Debian bookworm + python3), cached.
- :mod:`harness.validate`: the conformance checker run on every output a test writes.
- :mod:`harness.runtime`: run images (umoci + runc, podman), binfmt for foreign architectures.
- :mod:`harness.pki`: test CA, server and token-signing certificates.
- :mod:`harness.registry`: real distribution registry processes (plain, TLS + basic, TLS + tokens).
- :mod:`harness.tokens`: in-process bearer-token (JWT) server.
- :mod:`harness.proxy`: fault-injecting reverse proxy.
- :mod:`harness.credentials`: docker/containers auth files, credential helpers, htpasswd.
- :mod:`harness.net`: shared plumbing of the in-process servers (request records, TLS server, ports).
"""
