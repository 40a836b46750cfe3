"""What a training-data build is made with: every knob in one validated, JSON-able object.

Defaults are chosen so a build with no options is sensible on a fresh install; each is stored in
the snapshot's ``params`` so a model version can say exactly how its data was made.
"""
from dataclasses import asdict, dataclass
from datetime import datetime


@dataclass(frozen=True)
class TrainingDataParams:
    # Judgements (clicks, votes) taken from [since, until); None: no bound.
    since: datetime | None = None
    until: datetime | None = None
    # Share of the in-domain queries, the most recent ones, kept out of training for the gate.
    heldout_fraction: float = 0.2
    # Hard negatives per row (thumbs-down passages first, then mined ones).
    negatives_per_pair: int = 3
    # Candidates looked at per query and leg (BM25 over the pool, vector over the index) for mining.
    mining_depth: int = 30
    # Chunks sampled into the BM25 candidate pool besides every positive and thumbs-down passage.
    pool_sample: int = 5000
    # Corpus pairs (heading path -> section): at most this many per document and in total.
    corpus_per_document: int = 3
    corpus_per_query: int = 3  # sections sharing one heading text (normalised)
    corpus_total: int = 20000
    corpus_weight: float = 1.0
    # Sections shorter than this (characters, without the heading line) make no corpus pair.
    corpus_min_chars: int = 40
    # Position bias: a result at rank r is examined with probability (1 / r) ** exponent, so a click
    # there counts 1 / propensity = r ** exponent, clipped at ``propensity_clip``.
    propensity_exponent: float = 1.0
    propensity_clip: float = 10.0
    # Sessions: searches of one user at most this many minutes apart (None: the setting).
    session_minutes: float | None = None
    last_click_boost: float = 2.0
    # Time on an opened result is not recorded; it is estimated as the time until the user's next
    # search or click in the session. A click followed this quickly by another action counts less.
    short_dwell_seconds: float = 10.0
    short_dwell_factor: float = 0.5
    # One thumbs-up counts as much as this many first-rank clicks; a thumbs-down outweighs as much.
    feedback_weight: float = 5.0
    # A row's weight (summed over users and searches) is capped here.
    weight_cap: float = 20.0
    # Distractor passages in the held-out corpus besides the held-out positives and negatives.
    heldout_distractors: int = 1000
    # Sources (keys) whose documents are left out of everything: pairs, negatives and held-out set.
    exclude_sources: tuple[str, ...] = ()
    # None: KBSEARCH_TRAINING_PII_PATTERNS.
    pii_patterns: tuple[str, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            (0.0 <= self.heldout_fraction <= 0.9, "heldout_fraction must be between 0 and 0.9"),
            (0 <= self.negatives_per_pair <= 50, "negatives_per_pair must be between 0 and 50"),
            (1 <= self.mining_depth <= 1000, "mining_depth must be between 1 and 1000"),
            (self.pool_sample >= 0, "pool_sample must be 0 or more"),
            (min(self.corpus_per_document, self.corpus_per_query, self.corpus_total) >= 0,
             "corpus caps must be 0 or more"),
            (self.corpus_weight > 0 and self.feedback_weight > 0, "weights must be positive"),
            (self.propensity_exponent >= 0 and self.propensity_clip >= 1, "propensity exponent >= 0, clip >= 1"),
            (self.session_minutes is None or self.session_minutes > 0, "session_minutes must be positive"),
            (self.last_click_boost >= 1, "last_click_boost must be at least 1"),
            (0 < self.short_dwell_factor <= 1 and self.short_dwell_seconds >= 0, "short dwell factor in (0, 1]"),
            (self.weight_cap > 0, "weight_cap must be positive"),
            (self.heldout_distractors >= 0, "heldout_distractors must be 0 or more"),
            (self.since is None or self.until is None or self.since < self.until, "since must be before until"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def as_json(self) -> dict:
        data = asdict(self)
        for name in ("since", "until"):
            data[name] = data[name].isoformat() if data[name] else None
        data["exclude_sources"] = list(self.exclude_sources)
        data["pii_patterns"] = None if self.pii_patterns is None else list(self.pii_patterns)
        return data
