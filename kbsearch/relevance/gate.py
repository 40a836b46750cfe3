"""The evaluation gate: a fine-tuned model is compared with the serving one before it may serve.

Both models rank the same questions the way search does (``kbsearch.evaluation``: BEIR sets indexed
as public documents, ``rank_documents`` in each mode): the snapshot's held-out in-domain pairs (never
trained on) and the regression sets (``KBSEARCH_RELEVANCE_REGRESSION_SETS``, by default the shared
public sets). The report gives, per set and mode, nDCG@10, MRR@10 and Recall@10 before, after and
their difference. The verdict, in the gate mode (hybrid by default, what users get): in-domain
nDCG@10 must rise by at least ``KBSEARCH_RELEVANCE_MIN_GAIN`` and no regression set may fall by more
than ``KBSEARCH_RELEVANCE_MAX_REGRESSION``. A set that cannot be read or evaluated fails the gate: a
model nobody could measure does not serve.

Cost: each set's corpus is embedded once per model. The serving model's scores are cached by the
weights' fingerprint and the set's content (``KBSEARCH_RELEVANCE_EVAL_DIR/scores``), so a second
candidate only pays for itself; its index is deleted after use, the baseline's kept. Sets with many
questions are sampled (``KBSEARCH_RELEVANCE_GATE_MAX_QUERIES``, a fixed sample by a hash of the
question id): both models answer the same questions, so the difference stays a paired comparison.
"""
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from django.conf import settings

from kbsearch.evaluation.beir import BeirSet, EvaluationSetError, load_beir
from kbsearch.evaluation.runner import Evaluator
from kbsearch.index.ranking import MODES
from kbsearch.text.analysis import ANALYZER_VERSION

logger = logging.getLogger(__name__)

METRICS = ("ndcg@10", "mrr@10", "recall@10")
GATE_METRIC = "ndcg@10"
IN_DOMAIN = "in-domain"
REGRESSION = "regression"
# Deltas are compared after rounding, so 0.1 - 0.095 counts as the 0.005 it is meant to be.
_DIGITS = 6
# Options a run or a command may choose; the thresholds are policy and come from settings only.
CHOOSABLE = ("regression_sets", "modes", "gate_mode", "max_queries")


class GateOptionsError(ValueError):
    """Gate options that cannot work (an unknown mode, a gate mode not evaluated)."""


@dataclass(frozen=True)
class GateOptions:
    regression_sets: tuple[str, ...]
    modes: tuple[str, ...]
    gate_mode: str
    max_queries: int  # 0: every question
    min_gain: float
    max_regression: float
    alpha: float
    work_dir: Path

    @classmethod
    def from_settings(cls, overrides: dict | None = None) -> "GateOptions":
        """The settings' options, with a run's or command's choices (``CHOOSABLE``) applied."""
        options = cls(
            regression_sets=tuple(settings.KBSEARCH_RELEVANCE_REGRESSION_SETS),
            modes=tuple(settings.KBSEARCH_RELEVANCE_GATE_MODES),
            gate_mode=settings.KBSEARCH_RELEVANCE_GATE_MODE,
            max_queries=int(settings.KBSEARCH_RELEVANCE_GATE_MAX_QUERIES),
            min_gain=float(settings.KBSEARCH_RELEVANCE_MIN_GAIN),
            max_regression=float(settings.KBSEARCH_RELEVANCE_MAX_REGRESSION),
            alpha=float(settings.KBSEARCH_HYBRID_ALPHA),
            work_dir=Path(settings.KBSEARCH_RELEVANCE_EVAL_DIR),
        )
        overrides = {key: value for key, value in (overrides or {}).items() if value is not None}
        unknown = sorted(set(overrides) - set(CHOOSABLE))
        if unknown:
            raise GateOptionsError(f"unknown gate options {unknown}; choosable: {list(CHOOSABLE)}")
        for key in ("regression_sets", "modes"):
            if key in overrides:
                overrides[key] = tuple(str(item) for item in overrides[key])
        options = replace(options, **overrides)
        options.check()
        return options

    def check(self) -> None:
        unknown = sorted(set(self.modes) - set(MODES))
        if unknown or not self.modes:
            raise GateOptionsError(f"gate modes must be some of {list(MODES)}, got {list(self.modes)}")
        if self.gate_mode not in self.modes:
            raise GateOptionsError(f"the gate mode {self.gate_mode!r} must be among the evaluated modes {list(self.modes)}")
        if self.max_queries < 0:
            raise GateOptionsError("max_queries must be >= 0 (0: all)")

    def as_dict(self) -> dict:
        values = asdict(self)
        values["work_dir"] = str(self.work_dir)
        values["regression_sets"] = list(self.regression_sets)
        values["modes"] = list(self.modes)
        return values


def regression_set_dirs(paths) -> list[tuple[str, Path | None, str]]:
    """(name, folder, error) per regression set: a path is a BEIR folder or a folder of them."""
    found = []
    for raw in paths:
        path = Path(raw).expanduser()
        if (path / "corpus.jsonl").is_file():
            found.append((path.name, path, ""))
            continue
        children = sorted(child.parent for child in path.glob("*/corpus.jsonl")) if path.is_dir() else []
        if not children:
            found.append((path.name or str(path), None, f"{path} holds no BEIR set (no corpus.jsonl)"))
        found.extend((child.name, child, "") for child in children)
    return found


def gate_evaluate(*, baseline, candidate, heldout_dir: Path | None, options: GateOptions, in_domain: bool = True) -> dict:
    """Evaluate both encoders on the in-domain and regression sets; the report with its verdict.

    ``in_domain=False`` evaluates the regression sets alone (a measurement, not a gate: its verdict
    then always refuses for want of an in-domain set).
    """
    started = time.monotonic()
    missing = "" if heldout_dir else "the training data has no held-out set"
    entries = [(IN_DOMAIN, IN_DOMAIN, heldout_dir, missing)] if in_domain else []
    entries += [(name, REGRESSION, path, error) for name, path, error in regression_set_dirs(options.regression_sets)]
    sets = []
    for name, kind, path, error in entries:
        entry = {"name": name, "kind": kind, "path": str(path or "")}
        try:
            if error:
                raise EvaluationSetError(error)
            entry.update(_compare(baseline, candidate, Path(path), options))
        except (EvaluationSetError, OSError, ValueError) as failure:
            logger.warning("gate: set %s could not be evaluated: %s", name, failure)
            entry["error"] = str(failure)
        sets.append(entry)
    report = {
        "baseline": _describe(baseline),
        "candidate": _describe(candidate),
        "options": options.as_dict(),
        "sets": sets,
        "seconds": round(time.monotonic() - started, 1),
    }
    passed, reasons = gate_verdict(report, options)
    report["verdict"] = {"passed": passed, "reasons": reasons, "summary": _summary(passed, reasons)}
    return report


def gate_verdict(report: dict, options: GateOptions) -> tuple[bool, list[str]]:
    """Apply the rule to a report: (passed, one sentence per check, failures first)."""
    failures, passes = [], []
    mode = options.gate_mode
    in_domain = [entry for entry in report["sets"] if entry["kind"] == IN_DOMAIN]
    if not in_domain or "error" in in_domain[0] or mode not in in_domain[0].get("modes", {}):
        error = in_domain[0].get("error", f"no {mode} scores") if in_domain else "no in-domain set"
        failures.append(f"in-domain: not evaluated ({error})")
    else:
        scores = in_domain[0]["modes"][mode]
        gain = scores["delta"][GATE_METRIC]
        sentence = (f"in-domain {mode} nDCG@10 {scores['before'][GATE_METRIC]:.4f} -> "
                    f"{scores['after'][GATE_METRIC]:.4f} ({gain:+.4f}; needs {options.min_gain:+.4f})")
        (passes if gain >= round(options.min_gain, _DIGITS) else failures).append(sentence)
    for entry in report["sets"]:
        if entry["kind"] != REGRESSION:
            continue
        if "error" in entry or mode not in entry.get("modes", {}):
            failures.append(f"{entry['name']}: not evaluated ({entry.get('error', f'no {mode} scores')})")
            continue
        scores = entry["modes"][mode]
        change = scores["delta"][GATE_METRIC]
        sentence = (f"{entry['name']} {mode} nDCG@10 {scores['before'][GATE_METRIC]:.4f} -> "
                    f"{scores['after'][GATE_METRIC]:.4f} ({change:+.4f}; may fall {options.max_regression:.4f})")
        (passes if change >= -round(options.max_regression, _DIGITS) else failures).append(sentence)
    return not failures, failures + passes


def _summary(passed: bool, reasons: list[str]) -> str:
    return ("passed: " if passed else "refused: ") + "; ".join(reasons)


def _describe(encoder) -> dict:
    metadata = encoder.index_metadata
    return {"spec": metadata.model_id, "fingerprint": metadata.model_version, "dimension": metadata.dimension}


def _compare(baseline, candidate, path: Path, options: GateOptions) -> dict:
    beir = _sampled(load_beir(path), options.max_queries)
    digest = _set_digest(path, beir)
    before = _scores(baseline, beir, digest, options, keep_index=True)
    after = _scores(candidate, beir, digest, options, keep_index=False)
    modes = {}
    for mode in options.modes:
        delta = {metric: round(after[mode][metric] - before[mode][metric], _DIGITS) for metric in METRICS}
        modes[mode] = {"before": before[mode], "after": after[mode], "delta": delta}
    return {"queries": len(beir.queries), "passages": len(beir.corpus), "modes": modes}


def _sampled(beir: BeirSet, max_queries: int) -> BeirSet:
    """The judged questions, at most ``max_queries`` of them (those with the smallest id hashes)."""
    judged = sorted(query_id for query_id in beir.queries if beir.qrels.get(query_id))
    if max_queries and len(judged) > max_queries:
        judged = sorted(judged, key=lambda query_id: hashlib.sha1(query_id.encode()).hexdigest())[:max_queries]
    keep = set(judged)
    return BeirSet(
        beir.name, beir.corpus, {qid: text for qid, text in beir.queries.items() if qid in keep},
        {qid: relevant for qid, relevant in beir.qrels.items() if qid in keep},
    )


def _set_digest(path: Path, beir: BeirSet) -> str:
    """What the scores depend on besides the model: the files, the sample, the analysis settings."""
    digest = hashlib.sha256()
    for name in ("corpus.jsonl", "queries.jsonl", "qrels.tsv"):
        with open(path / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    digest.update(json.dumps([sorted(beir.queries), ANALYZER_VERSION, settings.KBSEARCH_CHUNK_TOKENS,
                              settings.KBSEARCH_CHUNK_OVERLAP_TOKENS]).encode())
    return digest.hexdigest()


def _scores(encoder, beir: BeirSet, set_digest: str, options: GateOptions, *, keep_index: bool) -> dict:
    """Metrics per mode for one encoder on one set, from the score cache where possible."""
    metadata = encoder.index_metadata
    keys = {
        mode: hashlib.sha256(json.dumps(
            [metadata.model_version, metadata.dimension, set_digest, mode, options.alpha]
        ).encode()).hexdigest()
        for mode in options.modes
    }
    cache_dir = options.work_dir / "scores"
    scores = {mode: _cached(cache_dir / f"{key}.json") for mode, key in keys.items()}
    missing = [mode for mode, found in scores.items() if found is None]
    if missing:
        evaluator = Evaluator(beir, encoder=encoder, work_dir=options.work_dir / "sets" / set_digest[:16])
        try:
            for mode in missing:
                metrics = evaluator.evaluate(mode=mode, alpha=options.alpha).metrics
                scores[mode] = {metric: round(metrics[metric], _DIGITS) for metric in METRICS}
                _store(cache_dir / f"{keys[mode]}.json", scores[mode])
        finally:
            evaluator.cache.close()
            if not keep_index:
                shutil.rmtree(evaluator.index_path.parent, ignore_errors=True)
    return scores


def _cached(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _store(path: Path, scores: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(scores), encoding="utf-8")
    partial.replace(path)
