"""Rating campaigns: a frozen set of pairs, a rubric, k raters per pair, gold checks, planned repeats, and
exclusion rules fixed at creation, so that what a group of raters said can be published with what was
excluded and why.

Contract (all in the studio's ratings database, ``Ratings``):
- ``create(db, items, ...) -> id``: items are one row per system's answer (question_id, prompt, model, output);
  each question gives a unit per pair of systems that answered it; gold rows (question_id, model_a, model_b,
  winner) become gold units, shown unannounced; the rubric, overlap, repeat share and exclusion rules are
  frozen with it (``Spec``). A campaign is never edited, only closed or copied.
- ``next_unit(db, id, rater)``: what this rater sees next: a gold unit about one in ``GOLD_EVERY``, a planned
  repeat of one they answered (about ``repeat`` of their answers), else the unit with the fewest raters among
  those they have not seen and that still need raters; sides are drawn at random and recorded. None: done.
- ``answer(db, id, rater, unit, side)``: left, right or tie, timed from when the unit was shown.
- ``quality(db, id)``: per rater: items, gold accuracy (with its Wilson interval), self-consistency,
  agreement with the others (leave-one-out majority), median seconds per item, excluded and why. A rater is
  excluded when their gold accuracy is surely below ``min_gold`` (the interval's top under it: a few unlucky
  gold answers out of six exclude nobody) or their median time per item is under ``min_seconds``.
- ``leaderboard(db, id, all_raters=False)``: Bradley-Terry with bootstrap intervals (``human.leaderboard``)
  on the first answers of units (no gold, no repeats), without the excluded raters unless asked.
- ``import_battles(db, id, file)``: Chatbot Arena rows (question_id, model_a, model_b, winner, judge,
  optional tstamp and seconds) as the campaign's answers.
- ``export(db, id, out)`` / ``import_export(db, folder)``: the campaign as a Hugging Face dataset folder
  (answers.parquet and .jsonl, units.jsonl, campaign.json, a README dataset card) and back, exactly.

The package: ``store`` (spec, units, answers; make, copy, close), ``assign`` (who rates what next, answers),
``raters`` (each rater's quality and the exclusion rules), ``results`` (votes, leaderboard, coverage, agreement),
``dataset`` (export, import, Arena battles, the dataset card), ``judges`` (a judge beside the people).
"""

from studio.engine.judge.campaign.assign import (
    GOLD_EVERY,
    answer,
    next_unit,
    planned,
)
from studio.engine.judge.campaign.dataset import (
    ANSWER_FIELDS,
    UNIT_FIELDS,
    ZIP_MAX_MB,
    card,
    export,
    export_zip,
    import_battles,
    import_export,
    import_zip,
)
from studio.engine.judge.campaign.judges import (
    JUDGE_PROMPT,
    endpoint_judge,
    judge_agreement,
    judge_units,
    reward_judge,
)
from studio.engine.judge.campaign.raters import (
    excluded,
    quality,
)
from studio.engine.judge.campaign.results import (
    all_votes,
    alpha,
    coverage,
    human_vs_metric,
    leaderboard,
    likert,
    preference_rows,
    rating_rows,
    scores,
    votes,
)
from studio.engine.judge.campaign.store import (
    ANCHORS,
    HOLD_S,
    MODES,
    SIDES,
    Rubric,
    Shown,
    Spec,
    answers,
    campaigns,
    checks_said,
    close,
    copy,
    create,
    default_guidelines,
    draft_key,
    gold_from,
    guidelines,
    items_from,
    items_from_eval,
    mark_gold,
    open_draft,
    owner_of,
    preview,
    spec_of,
    state_of,
    units,
)
from studio.engine.judge.ratings import DIMENSIONS

__all__ = ["ANCHORS", "ANSWER_FIELDS", "DIMENSIONS", "GOLD_EVERY", "HOLD_S", "JUDGE_PROMPT", "MODES", "SIDES",
           "UNIT_FIELDS", "ZIP_MAX_MB", "Rubric", "Shown", "Spec", "all_votes", "alpha", "answer", "answers",
           "campaigns", "card", "checks_said", "close", "copy", "coverage", "create", "default_guidelines", "draft_key",
           "endpoint_judge", "excluded", "export", "export_zip", "gold_from", "guidelines", "human_vs_metric",
           "import_battles", "import_export", "import_zip", "items_from", "items_from_eval", "judge_agreement",
           "judge_units", "leaderboard", "likert", "mark_gold", "next_unit", "open_draft", "owner_of", "planned",
           "preference_rows", "preview", "quality", "rating_rows", "reward_judge", "scores", "spec_of", "state_of",
           "units", "votes"]
