"""Which arithmetic the encoder computes in: float32, bfloat16, or ``auto`` (the default).

``auto`` picks bfloat16 only where it is both fast and faithful:
  * the CPU has native bfloat16 instructions (AMX or AVX-512 BF16, from /proc/cpuinfo's flags, or
    PyTorch's own check where /proc is not readable); without them bfloat16 is emulated and slower
    than float32;
  * the model's bfloat16 vectors of a fixed multilingual probe set (``PROBE_TEXTS``, as queries and
    as passages) all have a cosine of at least ``MIN_PROBE_COSINE`` to its float32 vectors. A model
    whose vectors drift more (an unusual architecture, a badly scaled fine-tune) stays float32.
Otherwise float32. The decision (``PrecisionChoice``) is logged and shown in the admin's index
generations page; the precision itself is recorded in every index generation's metadata, and a
generation is always queried in its own precision whatever this setting says.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

AUTO = "auto"
FLOAT32 = "float32"
BFLOAT16 = "bfloat16"
PRECISIONS = (FLOAT32, BFLOAT16)
PRECISION_SETTINGS = (AUTO, *PRECISIONS)
# Cosine 0.9999 moves a query's neighbours by less than the ties of float32 ranking do in practice;
# e5-small measures 0.99999 (docs/benchmarks.md).
MIN_PROBE_COSINE = 0.9999
# CPU flags (Linux names) of instructions that compute bfloat16 products natively.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
_CPUINFO = Path("/proc/cpuinfo")

# Short queries and passage-like sentences in the languages kbsearch serves, with digits, mixed
# scripts and punctuation: enough spread to show a model whose bfloat16 vectors drift.
PROBE_TEXTS = (
    "How do I reset my VPN password?",
    "Travel expenses must be submitted within 30 days of the trip, with receipts attached.",
    "error E-120 when connecting from home",
    "The release train leaves every second Tuesday; hotfixes go through the on-call engineer.",
    "报销需要在出差结束后三十天内提交，并附上发票。",
    "会议室预订在开始后十五分钟无人签到会自动取消。",
    "パスワードを忘れた場合は、社内ポータルから再設定してください。",
    "東京オフィスの入館証は受付で受け取れます。",
    "육아휴직 기간 동안 회사는 건강보험료 일부를 지원합니다.",
    "배포 장애 원인 분석 보고서",
    "Die Kaffeemaschine im dritten Stock zeigt Fehler E4: Wassertank leer.",
    "Les congés payés doivent être posés au moins deux semaines à l'avance.",
    "¿Dónde encuentro la política de teletrabajo?",
    "Отпуск согласовывается с руководителем не позднее чем за две недели.",
    "Q3 OKR review: latency p95 < 100 ms, 40 searches/s on 2 cores",
    "k8s rollout stuck at 1/3 pods ready after helm upgrade",
)


@dataclass(frozen=True)
class PrecisionChoice:
    """What an encoder computes in and why (logged, shown in the admin)."""

    requested: str  # the setting: auto, float32 or bfloat16
    precision: str  # what is used: float32 or bfloat16
    reason: str
    native_bf16: bool
    probe_cosine: float | None = None  # lowest probe cosine bfloat16 vs float32, when probed

    def describe(self) -> str:
        return f"{self.precision} ({self.requested}: {self.reason})"


def check_precision_setting(value: str) -> str:
    if value not in PRECISION_SETTINGS:
        raise ValueError(f"precision must be one of {', '.join(PRECISION_SETTINGS)}, got {value!r}")
    return value


def cpu_native_bf16() -> tuple[bool, str]:
    """Whether this CPU computes bfloat16 natively, and the evidence (a flag name or why not)."""
    try:
        flags = set()
        for line in _CPUINFO.read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("flags"):
                flags.update(line.partition(":")[2].split())
                break
    except OSError:
        flags = None
    if flags:
        found = [flag for flag in NATIVE_BF16_FLAGS if flag in flags]
        return (True, found[0]) if found else (False, "no amx_bf16 or avx512_bf16 in /proc/cpuinfo")
    import torch

    if torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported():
        return True, "PyTorch reports AMX or AVX-512 BF16"
    return False, "PyTorch reports neither AMX nor AVX-512 BF16"


def precision_choose(requested: str, *, probe_cosine: Callable[[], float]) -> PrecisionChoice:
    """Resolve ``requested`` (a setting) to a precision; ``probe_cosine`` is only called for ``auto``
    on a CPU with native bfloat16, and returns the lowest probe cosine of bfloat16 to float32."""
    check_precision_setting(requested)
    native, evidence = cpu_native_bf16()
    if requested != AUTO:
        reason = "set explicitly"
        if requested == BFLOAT16 and not native:
            reason += f"; this CPU has no native bfloat16 ({evidence}): correct but slower than float32"
        return PrecisionChoice(requested, requested, reason, native)
    if not native:
        return PrecisionChoice(AUTO, FLOAT32, f"this CPU has no native bfloat16 ({evidence})", native)
    cosine = float(probe_cosine())
    if cosine >= MIN_PROBE_COSINE:
        return PrecisionChoice(AUTO, BFLOAT16, f"native bfloat16 ({evidence}), probe cosine {cosine:.6f}", native, cosine)
    return PrecisionChoice(
        AUTO, FLOAT32,
        f"the model's bfloat16 vectors drift (probe cosine {cosine:.6f} < {MIN_PROBE_COSINE})", native, cosine,
    )
