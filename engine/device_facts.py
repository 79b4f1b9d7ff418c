"""What this machine's CPU offers the models, read from /proc/cpuinfo without torch (`python -m engine doctor`).

The node layer decides what `precision=auto` means; these facts let a user see why it chose so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
MEMINFO = Path("/proc/meminfo")
# The CPU flags that change how fast models run on the CPU, and what each one brings.
CPU_FEATURES = {
    "avx2": "AVX2 (the fp32 baseline)",
    "avx512f": "AVX-512",
    "avx512_vnni": "AVX512-VNNI (int8 dot products)",
    "avx512_bf16": "AVX512-BF16 (native bf16)",
    "amx_tile": "AMX tiles",
    "amx_bf16": "AMX-BF16 (native bf16 matrices)",
    "amx_int8": "AMX-INT8",
}
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class CpuFacts:
    model: str
    flags: frozenset[str]
    logical_cpus: int
    usable_cpus: int

    @property
    def native_bf16(self) -> bool:
        return any(flag in self.flags for flag in NATIVE_BF16_FLAGS)

    def features(self) -> dict[str, bool]:
        return {flag: flag in self.flags for flag in CPU_FEATURES}


def read_cpu_facts(cpuinfo: Path = CPUINFO) -> CpuFacts:
    """The first processor's model name and flags (empty where there is no /proc/cpuinfo), and the CPU counts."""
    model, flags = "unknown", frozenset[str]()
    try:
        lines = cpuinfo.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown":
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
    logical = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    return CpuFacts(model, flags, logical, usable)


def read_memory(meminfo: Path = MEMINFO) -> tuple[int, int]:
    """(total, available) RAM in bytes from /proc/meminfo, or sysconf where that is missing; (0, 0) unknown."""
    try:
        fields = {}
        with open(meminfo) as handle:
            for line in handle:
                key, _, value = line.partition(":")
                fields[key] = int(value.split()[0]) * 1024
        return fields["MemTotal"], fields.get("MemAvailable", fields.get("MemFree", 0))
    except (OSError, KeyError, ValueError, IndexError):
        try:
            page = os.sysconf("SC_PAGE_SIZE")
            return page * os.sysconf("SC_PHYS_PAGES"), page * os.sysconf("SC_AVPHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return 0, 0
