"""The paths of the images (libraries) this process has loaded: from dyld on
macOS, /proc/self/maps on Linux. Imported by test children as well."""

from __future__ import annotations

import ctypes
import sys


def loaded_images() -> list[str]:
    if sys.platform == "darwin":
        libc = ctypes.CDLL(None)
        libc._dyld_image_count.restype = ctypes.c_uint32
        libc._dyld_get_image_name.restype = ctypes.c_char_p
        libc._dyld_get_image_name.argtypes = [ctypes.c_uint32]
        names = (libc._dyld_get_image_name(i) for i in range(libc._dyld_image_count()))
        return sorted({n.decode() for n in names if n})
    with open("/proc/self/maps") as maps:
        return sorted({line.split(None, 5)[5].strip() for line in maps if len(line.split(None, 5)) == 6})
