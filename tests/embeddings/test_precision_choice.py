"""KBSEARCH_EMBED_PRECISION: auto picks bfloat16 only on CPUs with native bf16 and a faithful probe."""
import logging
from pathlib import Path

import numpy as np
import pytest

from embeddings import precision
from embeddings.encoder import Encoder
from embeddings.precision import precision_choose

PROBE = ["How do I reset my VPN password?", "报销需要在出差结束后三十天内提交。", "パスワードを忘れた"]


@pytest.fixture
def cpu_with_bf16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_native_bf16", lambda: (True, "avx512_bf16"))


@pytest.fixture
def cpu_without_bf16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_native_bf16", lambda: (False, "no amx_bf16 or avx512_bf16 in /proc/cpuinfo"))


def test_auto_picks_bfloat16_where_the_cpu_has_it_and_the_probe_agrees(cpu_with_bf16, tiny_model_dir: Path,
                                                                       tiny_encoder: Encoder):
    encoder = Encoder(str(tiny_model_dir), precision="auto")
    choice = encoder.precision_choice
    assert (choice.requested, choice.precision, encoder.precision) == ("auto", "bfloat16", "bfloat16")
    assert choice.probe_cosine >= precision.MIN_PROBE_COSINE and "avx512_bf16" in choice.reason
    assert encoder.index_metadata.precision == "bfloat16"
    # Same weights, same fingerprint: only the precision tells the two apart.
    assert encoder.index_metadata.model_version == tiny_encoder.index_metadata.model_version
    assert encoder.index_metadata != tiny_encoder.index_metadata
    vectors, reference = encoder.encode_queries(PROBE), tiny_encoder.encode_queries(PROBE)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(vectors * reference, axis=1)) >= precision.MIN_PROBE_COSINE
    assert not np.array_equal(vectors, reference)  # really computed in bfloat16


def test_auto_stays_float32_without_native_bf16_and_runs_no_probe(cpu_without_bf16, tiny_model_dir: Path,
                                                                  tiny_encoder: Encoder, monkeypatch):
    monkeypatch.setattr(Encoder, "_probe_bfloat16_cosine", lambda self: pytest.fail("probed without bf16 support"))
    encoder = Encoder(str(tiny_model_dir), precision="auto")
    assert encoder.precision == "float32" and encoder.index_metadata == tiny_encoder.index_metadata
    assert "no native bfloat16" in encoder.precision_choice.reason
    np.testing.assert_allclose(encoder.encode_queries(PROBE), tiny_encoder.encode_queries(PROBE), atol=1e-6)


def test_auto_stays_float32_when_the_models_bfloat16_vectors_drift(cpu_with_bf16, tiny_model_dir: Path, monkeypatch):
    # A bar no bfloat16 vector can clear stands for a model whose bfloat16 vectors drift.
    monkeypatch.setattr(precision, "MIN_PROBE_COSINE", 1.5)
    encoder = Encoder(str(tiny_model_dir), precision="auto")
    assert encoder.precision == "float32" and encoder.index_metadata.precision == "float32"
    assert encoder.precision_choice.probe_cosine < 1.5 and "drift" in encoder.precision_choice.reason


def test_explicit_precisions_are_kept_and_bfloat16_without_support_is_logged(cpu_without_bf16, tiny_model_dir: Path,
                                                                           tiny_encoder: Encoder, caplog):
    with caplog.at_level(logging.INFO, logger="embeddings.encoder"):
        slow = Encoder(str(tiny_model_dir), precision="bfloat16")
    assert slow.precision == "bfloat16" and slow.index_metadata.precision == "bfloat16"
    warning = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert warning and "no native bfloat16" in warning[0].getMessage()
    assert np.min(np.sum(slow.encode_queries(PROBE) * tiny_encoder.encode_queries(PROBE), axis=1)) > 0.999
    assert Encoder(str(tiny_model_dir), precision="float32").precision_choice.reason == "set explicitly"


def test_bfloat16_without_onednn_packing_falls_back_to_autocast(tiny_model_dir: Path, tiny_encoder: Encoder,
                                                                monkeypatch):
    # A CPU oneDNN cannot run bfloat16 on: plain layers under autocast, same arithmetic, slower.
    monkeypatch.setattr("embeddings.packed_linear.packing_supported", lambda dtype: False)
    encoder = Encoder(str(tiny_model_dir), precision="bfloat16")
    assert encoder._packed_layers == 0 and encoder.precision == "bfloat16"
    vectors = encoder.encode_passages(PROBE)
    assert np.min(np.sum(vectors * tiny_encoder.encode_passages(PROBE), axis=1)) > 0.999


def test_an_unknown_precision_is_refused(tiny_model_dir: Path):
    with pytest.raises(ValueError, match="precision must be one of auto, float32, bfloat16"):
        Encoder(str(tiny_model_dir), precision="float8")


def test_cpu_support_is_read_from_cpuinfo_flags(tmp_path: Path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(precision, "_CPUINFO", cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n")
    assert precision.cpu_native_bf16() == (False, "no amx_bf16 or avx512_bf16 in /proc/cpuinfo")
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_tile amx_bf16\n")
    assert precision.cpu_native_bf16() == (True, "amx_bf16")
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16\n")
    assert precision.cpu_native_bf16() == (True, "avx512_bf16")


def test_the_choice_only_probes_for_auto_on_a_capable_cpu(monkeypatch):
    probes = []

    def probe():
        probes.append(1)
        return 0.99995

    monkeypatch.setattr(precision, "cpu_native_bf16", lambda: (True, "amx_bf16"))
    assert precision_choose("float32", probe_cosine=probe).precision == "float32"
    assert precision_choose("bfloat16", probe_cosine=probe).reason == "set explicitly"
    assert probes == []
    chosen = precision_choose("auto", probe_cosine=probe)
    assert (chosen.precision, chosen.probe_cosine, probes) == ("bfloat16", 0.99995, [1])
    assert precision_choose("auto", probe_cosine=lambda: 0.9998).precision == "float32"
