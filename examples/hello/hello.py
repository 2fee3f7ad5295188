import platform
import sys

print(f"Hello from ocibuild: Python {sys.version_info.major}.{sys.version_info.minor} on {platform.machine()}")
