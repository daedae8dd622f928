"""A live process's memory from /proc: resident now (VmRSS) and at its peak (VmHWM), which can be reset."""
from __future__ import annotations

MiB_KIB = 1024


def memory_kib(pid: int) -> dict[str, int]:
    """{'VmRSS': KiB, 'VmHWM': KiB} of process `pid`."""
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status if line.startswith(("VmRSS", "VmHWM")))
    return {name: int(value.split()[0]) for name, value in fields.items()}


def reset_peak(pid: int) -> bool:
    """Start VmHWM again from the current VmRSS (Linux clear_refs 5); False where that is not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        return False
    return True
