"""Rate tab: people judge outputs. Blind A/B pairs (sides randomised, identities revealed after the
vote), 1-5 Likert ratings on four dimensions, and the results: a Bradley-Terry leaderboard with
intervals, Likert means, rater agreement and which automatic metric agrees with the people."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from studio.engine import methods, runs
from studio.engine.errors import StudioError
from studio.engine.export.exporters import export_root
from studio.engine.judge import human, pool
from studio.engine.judge.ratings import DIMENSIONS, Ratings, default_db
from studio.engine.judge.ratings_io import export_file, import_file, import_text, preference_rows, skipped_text
from studio.engine.judge.results_cache import ResultsCache
from studio.engine.judge.scope import Scope
from studio.policy import policy
from studio.ui import campaigns, identity
from studio.ui.handlers import deliver, guard, safe_md
from studio.ui.identity import username
from studio.ui.state import Context

KEYS_JS = """
() => { document.addEventListener('keydown', (e) => {
  if (!'12345'.includes(e.key) || ['INPUT', 'TEXTAREA'].includes(document.activeElement.tagName)) return;
  for (const dim of ['quality', 'relevance', 'coherence', 'helpfulness']) {
    const box = document.querySelector('#likert-' + dim);
    if (box && !box.querySelector('input:checked')) {
      const input = box.querySelector(`input[value='${e.key}']`);
      if (input) { input.click(); return; }
    }
  }
}); }
"""


@dataclass
class RateTab:
    page: gr.Tab
    rater: gr.Textbox
    run: gr.Dropdown
    result: gr.Dropdown
    add: gr.Button
    upload: gr.File
    pool: gr.Markdown
    next_pair: gr.Button
    prompt: gr.Markdown
    out_a: gr.Markdown
    out_b: gr.Markdown
    votes: list
    reveal: gr.Markdown
    next_one: gr.Button
    one_prompt: gr.Markdown
    one_output: gr.Markdown
    dims: list
    comment: gr.Textbox
    submit: gr.Button
    progress: gr.Markdown
    refresh: gr.Button
    note: gr.Markdown
    board: gr.Dataframe
    likert: gr.Dataframe
    agree: gr.Dataframe
    versus: gr.Dataframe
    in_campaigns: gr.Dataframe
    results_tab: gr.Tab
    export: gr.Button
    export_file: gr.File
    to_dpo: gr.Button
    to_reward: gr.Button
    offer: gr.Markdown
    use_votes: gr.Button
    campaigns: campaigns.Panel


def build() -> RateTab:
    with gr.Tab("Rate") as page:
        gr.Markdown("### 6. Rate\nJudge answers yourself: blind pairs (you do not know which model wrote which) and "
                    "1-5 ratings. The results rank the models with intervals and say which metric agrees with you.")
        with gr.Row():
            rater = gr.Textbox(label="Your name (every rating records its rater)", elem_id="rater", scale=2)
            run = gr.Dropdown(label="Add items from a run's comparison", choices=[], allow_custom_value=True, scale=2)
            result = gr.Dropdown(label="Comparison result", choices=[], scale=2, allow_custom_value=True)
            add = gr.Button("Add to the rating pool", scale=1, elem_id="rate-add")
        with gr.Row():
            upload = gr.File(label="…or import ratings (Chatbot Arena battles or Likert CSV/JSONL)",
                             file_types=[".csv", ".jsonl", ".json"], type="filepath", height=80)
            pool = gr.Markdown(elem_id="rate-pool")
        with gr.Tab("Blind A/B"):
            next_pair = gr.Button("Show a pair", variant="primary", elem_id="pair-next")
            prompt = gr.Markdown(elem_id="pair-prompt")
            with gr.Row():
                out_a = gr.Markdown(label="A", elem_id="pair-a", container=True)
                out_b = gr.Markdown(label="B", elem_id="pair-b", container=True)
            with gr.Row():
                votes = [gr.Button(text, elem_id=f"vote-{key}") for key, text in
                         (("a", "A is better"), ("b", "B is better"), ("tie", "Tie"), ("bothbad", "Both bad"),
                          ("skip", "Skip"))]
            reveal = gr.Markdown(elem_id="pair-reveal")
        with gr.Tab("Likert 1-5"):
            next_one = gr.Button("Show an answer", variant="primary", elem_id="likert-next")
            one_prompt = gr.Markdown()
            one_output = gr.Markdown(container=True, elem_id="likert-output")
            gr.Markdown("Keys 1-5 fill the next unset dimension.")
            with gr.Row():
                dims = [gr.Radio([1, 2, 3, 4, 5], label=d, elem_id=f"likert-{d}") for d in DIMENSIONS]
            comment = gr.Textbox(label="Comment (optional)")
            submit = gr.Button("Submit rating", elem_id="likert-submit")
            progress = gr.Markdown(elem_id="likert-progress")
        with gr.Tab("Results") as results_tab:
            refresh = gr.Button("Refresh results", elem_id="rate-refresh", size="sm")
            note = gr.Markdown(NO_RESULTS, elem_id="rate-note")
            board = gr.Dataframe(label="Leaderboard (Bradley-Terry, Elo scale, 95% bootstrap CI)", interactive=False,
                                 elem_id="leaderboard", visible=False)
            likert = gr.Dataframe(label="Likert means (95% CI)", interactive=False, visible=False,
                                  elem_id="likert-means")
            agree = gr.Dataframe(label="Rater agreement", interactive=False, visible=False)
            versus = gr.Dataframe(label="Which metric agrees with people (Kendall's tau, per item)", interactive=False,
                                  visible=False)
            in_campaigns = gr.Dataframe(label="Rating campaigns (their kept raters; each campaign ranks its own "
                                              "items)", interactive=False, visible=False, elem_id="rate-campaigns",
                                        wrap=True)
            with gr.Row():
                export = gr.Button("Export all ratings (CSV)")
                to_dpo = gr.Button("Train on these votes (DPO)", variant="primary", elem_id="rate-dpo")
                to_reward = gr.Button("Train a reward model on these votes (then RL)", elem_id="rate-reward")
            offer = gr.Markdown(elem_id="rate-offer")
            use_votes = gr.Button("Use them for training", visible=False, variant="primary", elem_id="rate-use-votes")
            export_file = gr.File(label="Export", interactive=False)
        panel = campaigns.build()
    return RateTab(page, rater, run, result, add, upload, pool, next_pair, prompt, out_a, out_b, votes, reveal,
                   next_one, one_prompt, one_output, dims, comment, submit, progress, refresh, note, board, likert,
                   agree, versus, in_campaigns, results_tab, export, export_file, to_dpo, to_reward, offer, use_votes,
                   panel)



def pool_text(db: Ratings) -> str:
    c = db.counts()
    return f"Rating pool: **{c['items']}** items; **{c['votes']}** pairwise votes and **{c['likert']}** Likert ratings."


NO_RESULTS = "No ratings yet: judge a few blind pairs or rate some answers, and the results appear here."


SMALL_MARK = " (small sample)"


def _shown(frame: pd.DataFrame):
    return gr.Dataframe(value=frame, visible=not frame.empty)


def results(db: Ratings, votes: list[dict] | None = None, shown=lambda name: name, likert: list[dict] | None = None):
    """(leaderboard, Likert means, agreement, human vs metric, a note): empty tables hide, the note says why.
    ``votes`` and ``likert`` limit what is counted; ``shown`` names a system as this visitor may see it."""
    votes = db.votes() if votes is None else votes
    likert = db.likert() if likert is None else likert
    leaders = human.leaderboard(votes)
    board = pd.DataFrame([[r["rank"], shown(r["model"]), round(r["rating"], 1),
                           f"[{r['ci_low']:.1f}, {r['ci_high']:.1f}]",
                           f"{r['win_rate']:.2f} [{r['win_rate_ci_low']:.2f}, {r['win_rate_ci_high']:.2f}]",
                           f"{r['n']}" + (SMALL_MARK if r["small"] else "")] for r in leaders],
                         columns=["rank", "model", "rating", "95% CI", "win rate [95% CI]", "votes"])
    summary = human.likert_summary(likert)
    means = pd.DataFrame([[shown(r["system"]), r["dimension"], round(r["mean"], 2),
                           f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]" if r["ci_low"] is not None else "too few to say",
                           f"{r['n']}" + (SMALL_MARK if r["small"] else "")] for r in summary],
                         columns=["system", "dimension", "mean", "95% CI", "n"])
    rows = []
    for dim, d in human.agreement(likert).items():
        alpha = None if d["krippendorff_alpha"] is None else round(d["krippendorff_alpha"], 3)
        rows += [[dim, " vs ".join(p["raters"]), p["n"], p["kappa"], p["kappa_quadratic"], alpha]
                 for p in d["pairs"]]
    agree = pd.DataFrame(rows, columns=["dimension", "raters", "shared", "Cohen kappa", "kappa (quadratic)",
                                        "Krippendorff alpha (ordinal)"])
    versus = pd.DataFrame([[r["metric"], round(r["kendall_tau"], 3), round(r["p_value"], 4), r["n"]]
                           for r in pool.human_vs_metrics(db, votes)], columns=["metric", "Kendall tau", "p", "items"])
    missing = [text for frame, text in ((board, "no blind votes yet (the leaderboard needs them)"),
                                        (means, "no Likert ratings yet"),
                                        (agree, "agreement needs two raters who rated the same answers"),
                                        (versus, "human vs metric needs base-vs-tuned votes on at least 3 items "
                                                 "of a comparison whose outcomes differ (not all one way)"))
               if frame.empty]
    note = NO_RESULTS if board.empty and means.empty else ("Not shown yet: " + "; ".join(missing) + "." if missing
                                                           else "")
    if any(r["small"] for r in leaders) or any(r["small"] for r in summary):
        note += (f"{' ' if note else ''}**{SMALL_MARK.strip()}: a small sample** (fewer than {human.SMALL} votes or "
                 "ratings, or all of them one way): the intervals are wide on purpose; collect more before trusting "
                 "an order.")
    return _shown(board), _shown(means), _shown(agree), _shown(versus), note


VOTES_A_MINUTE = 30


def _page(request) -> str:
    """The browser page (Gradio's session) a request came from."""
    return getattr(request, "session_hash", None) or ""


SAID = {"a": "A is better", "b": "B is better", "tie": "a tie", "bothbad": "both bad"}


class Handlers:
    """The pair and the answer on screen live in the server-side session: the page never holds the identities
    it must not show, and API clients keep them between calls too."""

    def __init__(self, t: RateTab, ctx: Context):
        self.t, self.ctx, self.db, self.rng = t, ctx, default_db(), random.Random()
        self.recent: dict[str, list[float]] = defaultdict(list)
        self.results_cache = ResultsCache()  # the results as they stand, per owner (engine/judge/results_cache.py)

    def who(self, typed: str, request) -> str:
        try:
            return identity.rater(typed, request)
        except StudioError as e:
            raise gr.Error(str(e), print_exception=False) from None

    def scope(self, request) -> Scope:
        """Whose items, votes, ratings and campaigns this visitor works with (``engine/judge/scope.py``)."""
        return Scope.of(self.ctx.session(None, request).owner)

    def keep(self, request):
        return self.scope(request).items()

    def votes(self, request) -> list[dict]:
        return self.scope(request).votes(self.db.votes())

    def runs_with_results(self, k, request: gr.Request):
        owner = self.ctx.session(k, request).owner
        return gr.Dropdown(choices=[n for n in runs.trained_runs(owner) if runs.evals(runs.find_run(n, owner))])

    def results_of(self, k, run_name, request: gr.Request):
        run = runs.find_run(run_name, self.ctx.session(k, request).owner)
        found = runs.evals(run) if run else []
        return gr.Dropdown(choices=found, value=next(iter(found), None))

    def add(self, k, run_name, result, request: gr.Request):
        run = runs.find_run(run_name, self.ctx.session(k, request).owner)
        if run is None or result not in runs.evals(run):
            raise gr.Error("Pick a run and one of its comparison results first.", print_exception=False)
        gr.Info(f"Added {pool.add_comparison(self.db, run, result)} items.")
        return pool_text(self.db)

    def imported(self, path):
        if not path:
            return gr.skip()
        if not policy().imports_ratings:
            Path(path).unlink(missing_ok=True)  # a refused upload does not stay in Gradio's cache
            raise gr.Error("Importing ratings is for the operator on a public deployment (studio ratings import on "
                           "the server).", print_exception=False)
        gr.Info(import_text(import_file(self.db, path)).capitalize() + ".")
        return pool_text(self.db)

    def show_pair(self, k, typed, reveal, request):
        s = self.ctx.session(k, request)
        s.pair = pool.next_pair(self.db, self.who(typed, request), self.rng, keep=self.keep(request))
        if s.pair is None:
            return "Nothing left to judge: add items from a comparison, or wait for more.", "", "", reveal
        return (f"**Prompt:** {safe_md(s.pair.prompt)}", f"**A**\n\n{safe_md(s.pair.left_text)}",
                f"**B**\n\n{safe_md(s.pair.right_text)}", reveal)

    def next_pair(self, k, typed, request: gr.Request):
        return self.show_pair(k, typed, "", request)

    def vote(self, choice: str):
        def vote(k, typed, request: gr.Request):
            rater, pair = self.who(typed, request), self.ctx.session(k, request).pair
            if not pair:
                raise gr.Error("Show a pair first.", print_exception=False)
            if choice == "skip":
                return self.refreshed(self.show_pair(k, typed, "Skipped.", request), request)
            self.limit(rater)
            self.db.vote(pair.item, pair.left, pair.right, choice, rater, left=pair.left, client_key=pair.key)
            name = self.scope(request).name
            shown = f"A was **{name(pair.left)}**, B was **{name(pair.right)}**"
            return self.refreshed(self.show_pair(k, typed, f"Recorded: {SAID[choice]}. {shown}.", request), request)
        vote.__name__ = f"vote_{choice}"
        return vote

    def limit(self, rater: str) -> None:
        """On a public deployment a rater casts at most VOTES_A_MINUTE votes and ratings a minute."""
        if not policy().caps:
            return
        now = time.time()
        recent = self.recent[rater] = [t for t in self.recent[rater] if now - t < 60] + [now]
        if len(recent) > VOTES_A_MINUTE:
            raise gr.Error(f"Slow down: at most {VOTES_A_MINUTE} ratings a minute.", print_exception=False)

    def show_one(self, k, typed, request):
        s = self.ctx.session(k, request)
        s.answer, done, total = pool.next_answer(self.db, self.who(typed, request), self.rng,
                                                 keep=self.keep(request))
        progress = f"{done} of {total} rated"
        if s.answer is None:
            return ("Nothing left to rate.", "", *[None] * len(self.t.dims), "", progress)
        return (f"**Prompt:** {safe_md(s.answer.prompt)}", safe_md(s.answer.text), *[None] * len(self.t.dims), "",
                progress)

    def next_one(self, k, typed, request: gr.Request):
        return self.show_one(k, typed, request)

    def submit(self, k, typed, quality, relevance, coherence, helpfulness, comment, request: gr.Request):
        scores = [quality, relevance, coherence, helpfulness]
        one = self.ctx.session(k, request).answer
        if not one:
            raise gr.Error("Show an answer first.", print_exception=False)
        if any(x is None for x in scores):
            raise gr.Error("Rate all four dimensions (keys 1-5 work).", print_exception=False)
        rater = self.who(typed, request)
        self.limit(rater)
        self.db.rate(one.item, one.system, rater, dict(zip(DIMENSIONS, map(int, scores))), comment or "")
        return self.refreshed(self.show_one(k, typed, request), request)

    def campaigns(self, request) -> list[dict]:
        """The campaigns this visitor's results show: all locally, their own on a public deployment."""
        return self.scope(request).campaigns(self.db, username(request))

    def campaign_results(self, request: gr.Request):
        frame = campaigns.overview(self.db, self.campaigns(request))
        return gr.Dataframe(value=frame, visible=not frame.empty)

    def results(self, request: gr.Request):
        """The results as they stand: the Refresh button and opening the tab always send them."""
        return self.current(request)[1]

    def current(self, request) -> tuple[int, tuple]:
        """(version, result frames) as they stand for this visitor, recomputed when a vote or a rating changed
        them (and less often while several raters vote at once: ``ResultsCache``)."""
        owner = self.ctx.session(None, request).owner if policy().scoped else None

        def compute() -> tuple:
            scope = self.scope(request)  # one look at the visitor's runs for every name in the tables
            return results(self.db, scope.votes(self.db.votes()), scope.name, scope.likert(self.db))

        return self.results_cache.current(owner, _page(request), tuple(self.db.counts().values()), compute)

    def refreshed(self, shown: tuple, request) -> tuple:
        """What a vote or a rating changes on the page: the item shown, the counts and the results (not sent
        again when this page already shows the same ones)."""
        version, frames = self.current(request)
        same = self.results_cache.unchanged(_page(request), version)
        return (*shown, pool_text(self.db), *((gr.skip(),) * len(frames) if same else frames))

    def export(self, request: gr.Request):
        rater = None
        if policy().scoped:
            rater = username(request)
            if policy().needs_login(rater):
                raise gr.Error("Log in to export your own ratings; the operator exports them all.",
                               print_exception=False)
        path = export_root() / f"ratings-{time.strftime('%Y%m%d-%H%M%S')}.csv"
        from studio.engine.judge import campaign

        mine = {c["id"] for c in self.campaigns(request)}  # not another owner's: its answers name its systems
        extra = [r for r in campaign.rating_rows(self.db) if r["campaign"] in mine]
        export_file(self.db, path, rater=rater, extra=extra)  # the campaigns' answers too
        return deliver(path)  # to this visitor alone

    def to_training(self, kind: str):
        """The votes as preference pairs in a file, offered as the training data for ``kind`` (nothing in the
        Data or Model tab changes until the visitor takes the offer): dpo trains the model on them directly;
        reward trains a reward model, which an rl run (method.reward_model) then learns from."""
        def handler(request: gr.Request):
            s = self.ctx.session(None, request)
            if policy().needs_login(s.owner):
                raise gr.Error("Log in to train on your votes.", print_exception=False)
            rows, skipped = preference_rows(self.db, self.votes(request))
            if not rows:
                raise gr.Error("No votes give a preference pair yet" + (f": {skipped_text(skipped)}" if skipped
                                                                        else "") + ".", print_exception=False)
            return self.offer(s, rows, kind)
        handler.__name__ = f"to_{kind}"
        return handler

    def offer(self, s, rows: list[dict], kind: str):
        """Preference pairs written where this visitor's training may read them (their own uploads on a public
        deployment) and offered as the data for ``kind``; (the sentence, the button that takes the offer)."""
        folder = s.upload_dir if policy().scoped else export_root()
        path = folder / f"preferences-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
        runs.write_jsonl(path, rows)
        s.offer = (str(path), kind)
        then = (" Once it is trained, an rl run can learn from it (method.reward_model)."
                if methods.get(kind).score_head else "")
        return (f"{len(rows)} preference pairs are ready in `{safe_md(path.name, True)}`. **Use them for training"
                f"** sets them as your dataset with method **{kind}**; nothing changes until you do.{then}",
                gr.Button(f"Use them for training ({kind})", visible=True))

    def use_votes(self, request: gr.Request):
        """The offer taken: the preference file becomes the dataset and ``kind`` the method."""
        s = self.ctx.session(None, request)
        if not s.offer:
            raise gr.Error("Make the preference pairs first (Train on these votes).", print_exception=False)
        path, kind = s.offer
        s.data_path = path
        gr.Info(f"Dataset and method set ({kind}): press Start in Train.")
        return policy().shown_path(path), "auto", kind, gr.Button(visible=False)


def wire(t: RateTab, ctx: Context) -> None:
    h, key, w = Handlers(t, ctx), ctx.key, ctx.form.widgets
    ctx.demo.load(None, None, None, js=KEYS_JS)  # keys 1-5 fill the Likert dimensions

    def session(request):
        return ctx.session(None, request)

    def take_offer(button: gr.Button) -> None:
        button.click(guard(h.use_votes), None, [w["data.path"], w["data.format"], w["method.kind"], button],
                     api_visibility="private")

    campaigns.wire(t.campaigns, t.run, t.result, session, t.page, h.offer, take_offer)
    t.page.select(h.runs_with_results, key, t.run, api_visibility="private")
    t.page.select(lambda: pool_text(h.db), None, t.pool, api_visibility="private")
    t.run.change(h.results_of, [key, t.run], t.result, api_visibility="private")
    t.add.click(guard(h.add), [key, t.run, t.result], t.pool, api_name="rate_add_comparison")
    t.upload.upload(guard(h.imported), t.upload, t.pool, api_name="rate_import")
    pair_out = [t.prompt, t.out_a, t.out_b, t.reveal]
    after = [t.pool, t.board, t.likert, t.agree, t.versus, t.note]
    t.next_pair.click(guard(h.next_pair), [key, t.rater], pair_out, api_name="rate_next_pair")
    for button, choice in zip(t.votes, ("a", "b", "tie", "bothbad", "skip")):
        # SQLite serialises the writes itself (BEGIN IMMEDIATE): raters need not queue behind each other.
        button.click(guard(h.vote(choice)), [key, t.rater], pair_out + after, api_name=f"rate_vote_{choice}",
                     trigger_mode="once", concurrency_limit=4, concurrency_id="ratings")
    one_out = [t.one_prompt, t.one_output, *t.dims, t.comment, t.progress]
    t.next_one.click(guard(h.next_one), [key, t.rater], one_out, api_name="rate_next_answer")
    t.submit.click(guard(h.submit), [key, t.rater, *t.dims, t.comment], one_out + after, api_name="rate_submit",
                   trigger_mode="once", concurrency_limit=4, concurrency_id="ratings")
    gr.on([t.refresh.click, t.page.select, t.results_tab.select], h.results, None, after[1:], api_name="rate_results")
    gr.on([t.refresh.click, t.page.select, t.results_tab.select], guard(h.campaign_results), None, t.in_campaigns,
          api_visibility="private", show_progress="hidden")
    t.export.click(guard(h.export), None, t.export_file, api_name="rate_export")
    t.to_dpo.click(guard(h.to_training("dpo")), None, [t.offer, t.use_votes], api_name="rate_to_dpo")
    t.to_reward.click(guard(h.to_training("reward")), None, [t.offer, t.use_votes], api_name="rate_to_reward")
    t.use_votes.click(guard(h.use_votes), None, [w["data.path"], w["data.format"], w["method.kind"], t.use_votes],
                      api_name="rate_use_votes")
