"""The Rate tab's "Campaigns" tab: make a rating campaign of a comparison, share its link, and watch the raters
as they rate (the rater table, coverage, agreement and the leaderboard with and without the excluded raters).
On a public deployment a visitor sees and makes only their own campaigns (the login is the owner)."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import pandas as pd

from studio.engine import budget, runs
from studio.engine.errors import StudioError
from studio.engine.judge import campaign as C
from studio.engine.judge import campaign_hub
from studio.engine.judge.ratings import default_db
from studio.settings import public_mode
from studio.ui.handlers import guard, safe_md
from studio.ui.identity import owner_id, username

REFRESH_S = 5.0  # the rater table follows the raters this often while the tab is open


@dataclass
class Panel:
    name: gr.Textbox
    mode: gr.Dropdown
    overlap: gr.Number
    publish: gr.Checkbox
    create: gr.Button
    pick: gr.Dropdown
    everyone: gr.Checkbox
    link: gr.Markdown
    summary: gr.Markdown
    raters: gr.Dataframe
    board: gr.Dataframe
    likert: gr.Dataframe
    to_dpo: gr.Button
    to_reward: gr.Button
    offer: gr.Markdown
    use: gr.Button
    timer: gr.Timer


def build() -> Panel:
    with gr.Tab("Campaigns"):
        gr.Markdown("A campaign freezes a comparison's pairs for a group of raters: each pair gets the number of "
                    "raters you choose, sides are drawn at random, some pairs come back to measure "
                    "self-consistency, and raters who click faster than they can read are excluded (rules fixed "
                    "now). The command line adds gold checks, several systems and your own guidelines "
                    "(`studio campaign create`).")
        with gr.Row():
            name = gr.Textbox(label="Campaign name", elem_id="campaign-name", scale=2)
            mode = gr.Dropdown([("pairs (A / B / tie)", "pairwise"), ("single answers, 1-5", "likert"),
                                ("both", "both")], value="pairwise", label="raters judge", scale=1)
            overlap = gr.Number(3, label="raters per pair", precision=0, minimum=1, maximum=20, scale=1)
            publish = gr.Checkbox(False, label="publish its answers to the ratings repo", scale=1,
                                  elem_id="campaign-publish", visible=campaign_hub.from_env() is not None,
                                  info="the deployment's dataset on the hub: prompts, answers, raters' logins and "
                                       "times")
            create = gr.Button("Make a campaign of the comparison above", elem_id="campaign-create", scale=2)
        with gr.Row():
            pick = gr.Dropdown(label="Campaign", choices=[], allow_custom_value=True, elem_id="campaign-pick", scale=3)
            everyone = gr.Checkbox(False, label="results with the excluded raters too", scale=1,
                                   elem_id="campaign-everyone")
        link = gr.Markdown(elem_id="campaign-link")
        summary = gr.Markdown(elem_id="campaign-summary")
        raters = gr.Dataframe(label="Raters", interactive=False, elem_id="campaign-raters")
        board = gr.Dataframe(label="Leaderboard (Bradley-Terry, 95% CI)", interactive=False,
                             elem_id="campaign-board")
        likert = gr.Dataframe(label="1-5 scores (mean, 95% CI)", interactive=False, elem_id="campaign-likert",
                              visible=False)
        with gr.Row():
            to_dpo = gr.Button("Train on its votes (DPO)", elem_id="campaign-dpo")
            to_reward = gr.Button("Train a reward model on its votes (then RL)", elem_id="campaign-reward")
        offer = gr.Markdown(elem_id="campaign-offer")
        use = gr.Button("Use them for training", visible=False, variant="primary", elem_id="campaign-use")
        timer = gr.Timer(REFRESH_S, active=False)
    return Panel(name, mode, overlap, publish, create, pick, everyone, link, summary, raters, board, likert, to_dpo,
                 to_reward, offer, use, timer)


class Handlers:
    def __init__(self, p: Panel, session):
        self.p, self.session, self.db = p, session, default_db()

    def owner(self, request) -> str | None:
        return username(request) if public_mode() else None

    def mine(self, request) -> list[dict]:
        return C.campaigns(self.db, self.owner(request), everyone=not public_mode())

    def create(self, run_name, result, name, mode, overlap, publish=False, request: gr.Request = None):
        owner = self.owner(request)
        if public_mode() and not owner:
            raise gr.Error("Log in to make a campaign: it is kept under your login.", print_exception=False)
        run = runs.find_run(run_name, self.session(request).owner)
        if run is None or not result:
            raise gr.Error("Pick a run and one of its comparisons above first.", print_exception=False)
        spec = C.Spec(name=(name or "").strip()[:100] or f"{run.name} {result}", mode=mode or "pairwise",
                      overlap=int(overlap or 3), publish=bool(publish))
        items = C.items_from_eval(run, result)
        try:
            budget.check_campaign(owner and owner_id(owner), len(items))  # how many, how large: the ledger's rule
        except StudioError as e:
            raise gr.Error(str(e), print_exception=False) from None
        cid = C.create(self.db, items, spec, owner=owner)  # gold checks: the CLI
        return self.choices(request, cid), *self.view(cid, False, request), gr.Timer(active=True)

    def choices(self, request, value=None) -> gr.Dropdown:
        found = self.mine(request)
        return gr.Dropdown(choices=[(f"{c['name']} ({c['id']})", c["id"]) for c in found],
                           value=value or (found[0]["id"] if found else None))

    def view(self, cid, everyone: bool, request: gr.Request):
        if not cid or cid not in {c["id"] for c in self.mine(request)}:
            return "", "", *(gr.Dataframe(value=None, visible=False),) * 3
        spec, cover, alpha = C.spec_of(self.db, cid), C.coverage(self.db, cid), C.alpha(self.db, cid, everyone)
        host = (getattr(request, "headers", None) or {}).get("host", "")
        link = f"Raters open **{safe_md(f'http://{host}/?campaign={cid}' if host else f'?campaign={cid}', True)}**"
        quality = rater_table(C.quality(self.db, cid), cover)
        small = " (few ratings yet: read the intervals)" if cover["complete"] < 10 else ""
        scored = C.likert(self.db, cid, everyone)
        alphas = "; ".join(f"{d} {'-' if a is None else f'{a:.2f}'}" for d, a in scored["alpha"].items())
        who = "with every rater" if everyone else "without the excluded raters"
        out = f" ({len(cover['excluded'])} excluded: their items went back to the others)" if cover["excluded"] else ""
        summary = (f"Results {who}. **{cover['complete']} of {cover['units']} items** have their {cover['overlap']} "
                   f"raters; the campaign needs **{cover['needed']} more answers**{out}. "
                   f"Agreement (Krippendorff's alpha) of the pairs {'-' if alpha is None else f'{alpha:.2f}'}"
                   + (f", of the scores {alphas}" if alphas else "") + f"{small}: {ALPHA_WORDS}\n\n{spec.rules()}."
                   f"\n\n{RATER_LEGEND}")
        board = board_table(C.leaderboard(self.db, cid, all_raters=everyone))
        means = pd.DataFrame(scored["means"])
        return (link, summary, gr.Dataframe(quality, visible=not quality.empty, wrap=True),
                gr.Dataframe(board, visible=not board.empty, wrap=True),
                gr.Dataframe(means.round(2), visible=not means.empty))


ALPHA_WORDS = ("1 means the raters always agree, 0 what random answers would give, below 0 less agreement than "
               "chance (raters who contradict each other, or too few items to tell).")
RATER_LEGEND = ("**Raters**: *answers* given of the most they are asked for; *gold right* the share of known "
                "answers they got (95 % interval); *same on repeat* how often they answered a repeated item as "
                "before; *agrees* how often they side with the others' majority; *picked A* the share of their A/B "
                "answers that went to the side shown first (about half for a careful rater) and how likely a fair coin "
                "is to do that (*A-bias p*); *why* the rule that excluded them; *note* what deserves a look.")


def _pct(x) -> str:
    return "-" if x is None else f"{x:.0%}"


def rater_table(rows: list[dict], cover: dict) -> pd.DataFrame:
    """The raters' quality in words (``RATER_LEGEND``), the why fully shown."""
    progress = {r["rater"]: f"{r['answers']} of {r['of']}" for r in cover["raters"]}
    return pd.DataFrame([{
        "rater": q["rater"], "answers": progress.get(q["rater"], "-"),
        "gold right": "-" if q["gold_accuracy"] is None else
        f"{q['gold_accuracy']:.0%} of {q['gold_answers']} [{q['gold_ci_low']:.0%}, {q['gold_ci_high']:.0%}]",
        "same on repeat": "-" if q["self_consistency"] is None else f"{q['self_consistency']:.0%} of {q['repeats']}",
        "agrees": "-" if q["agreement"] is None else f"{q['agreement']:.0%} of {q['agreed_on']}",
        "median s / item": "-" if q["median_seconds"] is None else f"{q['median_seconds']:.1f}",
        "picked A": "-" if q["first_side_share"] is None else
        f"{q['first_side_share']:.0%} of {q['first_side_answers']}",
        "A-bias p": "-" if q["first_side_p"] is None else f"{q['first_side_p']:.2g}",
        "excluded": "yes" if q["excluded"] else "no", "why": q["why"] or "-", "note": q["flag"] or "-"}
        for q in rows])


def board_table(rows: list[dict]) -> pd.DataFrame:
    """The leaderboard with its win rates beside the ratings, each with its interval; small samples said."""
    return pd.DataFrame([{
        "rank": r["rank"], "model": r["model"],
        "rating (95 % interval)": f"{r['rating']:.0f} [{r['ci_low']:.0f}, {r['ci_high']:.0f}]",
        "win rate (95 % interval)": f"{_pct(r.get('win_rate'))} [{_pct(r.get('win_rate_ci_low'))}, "
                                    f"{_pct(r.get('win_rate_ci_high'))}]",
        "comparisons": r["n"], "": "few votes: read the interval" if r.get("small") else ""} for r in rows])


def wire(p: Panel, run: gr.Dropdown, result: gr.Dropdown, session, page: gr.Tab, offer, take_offer) -> None:
    """``offer(session, rows, kind)`` and ``take_offer(button)`` are the Rate tab's: the votes become training
    data the same way, whichever tab they come from."""
    h = Handlers(p, session)

    def to_training(kind: str):
        def handler(cid, request: gr.Request):
            if not cid or cid not in {c["id"] for c in h.mine(request)}:
                raise gr.Error("Pick one of your campaigns first.", print_exception=False)
            rows = C.preference_rows(h.db, cid)
            if not rows:
                raise gr.Error("No pair has a verdict yet (a majority of its raters, ties left out).",
                               print_exception=False)
            return offer(session(request), rows, kind)
        handler.__name__ = f"campaign_to_{kind}"
        return handler

    p.to_dpo.click(guard(to_training("dpo")), p.pick, [p.offer, p.use], api_visibility="private")
    p.to_reward.click(guard(to_training("reward")), p.pick, [p.offer, p.use], api_visibility="private")
    take_offer(p.use)
    shown = [p.link, p.summary, p.raters, p.board, p.likert]
    p.create.click(guard(h.create), [run, result, p.name, p.mode, p.overlap, p.publish], [p.pick, *shown, p.timer],
                   api_name="campaign_create")
    def listed(request: gr.Request):
        return h.choices(request)

    page.select(listed, None, p.pick, api_visibility="private")
    gr.on([p.pick.change, p.everyone.change], guard(h.view), [p.pick, p.everyone], shown, api_name="campaign_view")
    p.pick.change(lambda cid: gr.Timer(active=bool(cid)), p.pick, p.timer, api_visibility="private")
    p.timer.tick(h.view, [p.pick, p.everyone], shown, api_visibility="private", show_progress="hidden")
