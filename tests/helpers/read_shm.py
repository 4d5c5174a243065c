#!/usr/bin/env python3
"""Python's side of the shared-memory interoperability tests (tests/integration/python_shm_test).

    read_shm.py <name> <size>           attach, print the checksum of the first <size> bytes
    read_shm.py --create <name> <size>  create, fill with the test pattern, print its checksum,
                                        leave the segment for the C++ side to unlink
    read_shm.py --unlink <name>         attach and unlink

Output, on success, is exactly one line: "size=<segment size> fnv=<FNV-1a 32-bit, 8 hex digits>"
(or "unlinked" for --unlink). Anything else on stdout/stderr (such as a resource-tracker warning)
makes the C++ test fail.
"""
import sys
from multiprocessing import resource_tracker, shared_memory


def pattern(i):
    return (i * 131 + 7) & 0xFF


def fnv1a32(data):
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def open_untracked(name, create=False, size=0):
    """Opens a segment without leaving it to this process's resource tracker.

    Python 3.8-3.12 registers every segment a process creates *or attaches to* with the resource
    tracker, which unlinks it (with a "leaked shared_memory objects" warning) when this process
    exits, although the C++ side still owns and uses it. Python 3.13 has track=False for this; on
    older versions we unregister by hand right after opening.
    """
    try:
        return shared_memory.SharedMemory(name=name, create=create, size=size, track=False)
    except TypeError:  # Python < 3.13: no track parameter
        shm = shared_memory.SharedMemory(name=name, create=create, size=size)
        resource_tracker.unregister(shm._name, "shared_memory")  # pylint: disable=protected-access
        return shm


def main(argv):
    if len(argv) == 3 and argv[0] == "--create":
        name, size = argv[1], int(argv[2])
        shm = open_untracked(name, create=True, size=size)
        shm.buf[:size] = bytes(pattern(i) for i in range(size))
        print(f"size={shm.size} fnv={fnv1a32(shm.buf[:size]):08x}")
        shm.close()  # the C++ side attaches, checks and unlinks
        return 0
    if len(argv) == 2 and argv[0] == "--unlink":
        # unlink() unregisters from the tracker itself, so plain attach is right here.
        shm = shared_memory.SharedMemory(name=argv[1])
        shm.close()
        shm.unlink()
        print("unlinked")
        return 0
    if len(argv) == 2:
        name, size = argv[0], int(argv[1])
        shm = open_untracked(name)
        print(f"size={shm.size} fnv={fnv1a32(shm.buf[:size]):08x}")
        shm.close()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
