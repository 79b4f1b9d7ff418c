"""`python -m engine doctor`: the CPU facts it reports are /proc/cpuinfo's, and the precision `auto`
picks follows them (bf16 exactly where the CPU computes bf16 natively)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.cli import main
from engine.device_facts import read_cpu_facts

CPUINFO = Path("/proc/cpuinfo")


def proc_flags() -> set[str]:
    line = next(line for line in CPUINFO.read_text().splitlines() if line.startswith("flags"))
    return set(line.partition(":")[2].split())


def test_doctor_reports_this_cpus_flags_and_the_precision_auto_picks(capsys):
    assert main(["doctor", "--json", "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    flags = proc_flags()
    expected = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
    assert report["cpu flags"] == {flag: flag in flags for flag in expected}
    native = bool(flags & {"avx512_bf16", "amx_bf16"})
    assert report["native bf16"] is native
    assert report["precision auto"] == report["precision used"] == ("bf16" if native else "fp32")
    assert report["device"] == "cpu" and report["logical cpus"] == os.cpu_count()
    # compile: auto traces the fp32 UNet through OpenVINO (installed by the test extra) where bf16 is not native
    assert report["compile auto"].startswith("off: bf16 eager" if native else "on: the fp32 UNet")
    # and at precision int8 (NNCF is a dependency) the graph is quantized, on every CPU
    assert report["compile auto"].endswith("at precision int8 the graph quantized by NNCF, once per model")


def test_doctor_text_names_each_flag_and_resolves_an_explicit_precision(capsys):
    assert main(["doctor", "--device", "cpu", "--precision", "fp32"]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    facts = read_cpu_facts()
    for flag, found in facts.features().items():
        assert f"{flag} {'yes' if found else 'no'}" in lines["cpu flags"]
    assert lines["precision used"] == "fp32"
    assert lines["precision auto"] in ("bf16", "fp32") and lines["device"] == "cpu"


def test_cpu_facts_read_a_cpuinfo_file_and_survive_a_missing_one(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu avx2 amx_tile amx_bf16\n\n"
                       "processor\t: 1\nmodel name\t: Test CPU\nflags\t\t: fpu\n")
    facts = read_cpu_facts(cpuinfo)
    assert facts.model == "Test CPU" and facts.native_bf16
    assert facts.features()["amx_tile"] and not facts.features()["avx512_vnni"]
    missing = read_cpu_facts(tmp_path / "absent")
    assert missing.model == "unknown" and not missing.flags and not missing.native_bf16


def test_a_onednn_isa_cap_below_bf16_makes_auto_pick_fp32_and_compile_as_on_an_ice_lake():
    """ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI (an Ice Lake's instructions) makes torch emulate bf16 even on a
    CPU that has it: doctor and `auto` then follow the cap, not the hardware flags."""
    import subprocess
    import sys

    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "avx512_core_vnni"}
    done = subprocess.run([sys.executable, "-m", "engine", "doctor", "--json", "--device", "cpu"], env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(done.stdout)
    assert report["torch sees native bf16"] == "no (oneDNN capped at AVX512_CORE_VNNI)"
    assert report["precision auto"] == "fp32"
    assert report["compile auto"].startswith("on: the fp32 UNet")
