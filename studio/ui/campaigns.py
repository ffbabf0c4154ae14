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
from studio.engine.judge.scope import Scope
from studio.policy import policy
from studio.ui.handlers import deliver, guard, safe_md
from studio.ui.identity import owner_id, username

REFRESH_S = 5.0  # the rater table follows the raters this often while the tab is open


@dataclass
class Panel:
    name: gr.Textbox
    mode: gr.Dropdown
    overlap: gr.Number
    publish: gr.Checkbox
    draft: gr.Checkbox
    per_rater: gr.Number
    open: gr.Button
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
    more: gr.Dropdown  # other comparisons of the visitor's runs
    items_file: gr.File
    gold_file: gr.File
    question: gr.Textbox
    guidelines: gr.Textbox
    preview: gr.Markdown
    repeat: gr.Slider
    min_gold: gr.Slider
    min_seconds: gr.Number
    close: gr.Button
    copy: gr.Button
    export: gr.Button
    download: gr.File
    import_file: gr.File
    push_repo: gr.Textbox
    push_token: gr.Textbox
    push: gr.Button
    act: gr.Markdown


INTRO = ("A campaign freezes a comparison's pairs for a group of raters: each pair gets the number of raters you "
         "choose, sides are drawn at random, some pairs come back to measure self-consistency, gold pairs (a known "
         "answer) check the raters, and careless raters are excluded by rules fixed now; their items go to the "
         "next raters. Raters never see the systems' names, nor this campaign's name.")


def build() -> Panel:
    with gr.Tab("Campaigns"):
        gr.Markdown(INTRO)
        parts = {**_making(), **_more(), **_picking(), **_results()}
    return Panel(**parts)


def _making() -> dict:
    with gr.Row():
        name = gr.Textbox(label="Campaign name", elem_id="campaign-name", scale=2)
        mode = gr.Dropdown([("pairs (A / B / tie)", "pairwise"), ("single answers, 1-5", "likert"),
                            ("both", "both")], value="pairwise", label="raters judge", scale=1)
        overlap = gr.Number(3, label="raters per pair", precision=0, minimum=1, maximum=20, scale=1,
                            elem_id="campaign-overlap")
        publish = gr.Checkbox(False, label="publish its answers to the ratings repo", scale=1,
                              elem_id="campaign-publish", visible=campaign_hub.from_env() is not None,
                              info="the deployment's dataset on the hub: prompts, answers, raters' logins and times")
        draft = gr.Checkbox(False, label="a draft first", scale=1, elem_id="campaign-draft",
                            info="see it through its link as raters will and mark gold pairs; then Open for raters")
        create = gr.Button("Make a campaign", variant="primary", elem_id="campaign-create", scale=2)
    return {"name": name, "mode": mode, "overlap": overlap, "publish": publish, "draft": draft, "create": create}


def _more() -> dict:
    with gr.Accordion("More comparisons, an items file, gold, guidelines and rules", open=False,
                      elem_id="campaign-more"):
        more = gr.Dropdown(label="more comparisons (several systems: every pair of them)", multiselect=True,
                           choices=[], value=[], elem_id="campaign-comparisons")
        with gr.Row():
            items_file = gr.File(label="items file (question_id, prompt, model, output)",
                                 file_types=[".jsonl", ".json", ".csv"], elem_id="campaign-items")
            gold_file = gr.File(label="gold file (question_id, model_a, model_b, winner)",
                                file_types=[".jsonl", ".json", ".csv"], elem_id="campaign-gold")
        question = gr.Textbox(C.Rubric().question, label="the question raters answer", elem_id="campaign-question")
        with gr.Row():
            guidelines = gr.Textbox("", label="guidelines (markdown; empty: the default for the mode)", lines=6,
                                    elem_id="campaign-guidelines", scale=1)
            preview = gr.Markdown(C.default_guidelines("pairwise"), elem_id="campaign-preview", container=True,
                                  label="what raters read")
        with gr.Row():
            repeat = gr.Slider(0, 0.5, 0.1, step=0.05, label="share of items shown again", elem_id="campaign-repeat")
            min_gold = gr.Slider(0.5, 1.0, 0.7, step=0.05, label="exclude below this gold accuracy (surely)",
                                 elem_id="campaign-min-gold")
            min_seconds = gr.Number(3.0, label="exclude a median under this many seconds an item", minimum=0,
                                    elem_id="campaign-min-seconds")
            per_rater = gr.Number(0, label="items per rater (0: as many as still need raters)", precision=0,
                                  minimum=0, elem_id="campaign-per-rater")
    return {"per_rater": per_rater, "more": more, "items_file": items_file, "gold_file": gold_file,
            "question": question, "guidelines": guidelines, "preview": preview, "repeat": repeat, "min_gold": min_gold,
            "min_seconds": min_seconds}


def _picking() -> dict:
    with gr.Row():
        pick = gr.Dropdown(label="Campaign", choices=[], allow_custom_value=True, elem_id="campaign-pick", scale=3)
        everyone = gr.Checkbox(False, label="results with the excluded raters too", scale=1,
                               elem_id="campaign-everyone")
    with gr.Row():
        open_ = gr.Button("Open for raters (a draft)", size="sm", elem_id="campaign-open")
        close = gr.Button("Close (no more answers)", size="sm", elem_id="campaign-close")
        copy = gr.Button("Copy (same items and rules, no answers)", size="sm", elem_id="campaign-copy")
        export = gr.Button("Export (zip of its dataset folder)", size="sm", elem_id="campaign-export")
    download = gr.File(label="the campaign's dataset (loads with datasets.load_dataset)", visible=False,
                       elem_id="campaign-download")
    with gr.Accordion("Import a campaign, push one to the hub", open=False):
        import_file = gr.File(label="a campaign zip (the Export above makes one)", file_types=[".zip"],
                              elem_id="campaign-import")
        with gr.Row():
            push_repo = gr.Textbox(label="dataset repo", placeholder="you/my-ratings", elem_id="campaign-repo")
            push_token = gr.Textbox(label="Token (or set HF_TOKEN)", type="password",
                                    visible=policy().lends_operator_token)
            push = gr.Button("Push the picked campaign", elem_id="campaign-push")
    act = gr.Markdown(elem_id="campaign-act")
    return {"pick": pick, "everyone": everyone, "open": open_, "close": close, "copy": copy, "export": export,
            "download": download, "import_file": import_file, "push_repo": push_repo, "push_token": push_token,
            "push": push, "act": act}


def _results() -> dict:
    link = gr.Markdown(elem_id="campaign-link")
    summary = gr.Markdown(elem_id="campaign-summary")
    raters = gr.Dataframe(label="Raters", interactive=False, elem_id="campaign-raters")
    board = gr.Dataframe(label="Leaderboard (Bradley-Terry, 95% CI)", interactive=False, elem_id="campaign-board")
    likert = gr.Dataframe(label="1-5 scores (mean, 95% CI)", interactive=False, elem_id="campaign-likert",
                          visible=False)
    with gr.Row():
        to_dpo = gr.Button("Train on its votes (DPO)", elem_id="campaign-dpo")
        to_reward = gr.Button("Train a reward model on its votes (then RL)", elem_id="campaign-reward")
    offer = gr.Markdown(elem_id="campaign-offer")
    use = gr.Button("Use them for training", visible=False, variant="primary", elem_id="campaign-use")
    timer = gr.Timer(REFRESH_S, active=False)
    return {"link": link, "summary": summary, "raters": raters, "board": board, "likert": likert, "to_dpo": to_dpo,
            "to_reward": to_reward, "offer": offer, "use": use, "timer": timer}


class Handlers:
    def __init__(self, p: Panel, session):
        self.p, self.session, self.db = p, session, default_db()

    def owner(self, request) -> str | None:
        return username(request) if policy().identity_from_login else None

    def mine(self, request) -> list[dict]:
        return Scope.of(self.session(request).owner).campaigns(self.db, username(request))

    def create(self, run_name, result, name, mode, overlap, publish=False, draft=False, more=None, items_file=None,
               gold_file=None, question="", guidelines="", repeat=0.1, min_gold=0.7, min_seconds=3.0, per_rater=0,
               request: gr.Request = None):
        """A campaign of the comparison picked above and any more of the visitor's comparisons, and/or an items
        file; gold from a file; the question, guidelines and rules as set here."""
        owner = self.owner(request)
        if policy().needs_login(owner):
            raise gr.Error("Log in to make a campaign: it is kept under your login.", print_exception=False)
        visitor = self.session(request).owner
        picked = ([f"{run_name}/{result}"] if run_name and result else []) + list(more or [])
        items, names = [], []
        for ref in dict.fromkeys(picked):
            run_of, _, saved = ref.partition("/")
            run = runs.find_run(run_of, visitor)
            if run is None or saved not in runs.evals(run):
                raise gr.Error(f"{ref}: not one of your saved comparisons", print_exception=False)
            items += C.items_from_eval(run, saved)
            names.append(f"{run.name} {saved}")
        if items_file:
            items += C.items_from(items_file)
        if not items:
            raise gr.Error("Pick a run and one of its comparisons above, or give an items file.",
                           print_exception=False)
        rubric = C.Rubric(question=(question or "").strip()[:300] or C.Rubric().question,
                          guidelines=(guidelines or "").strip()[:20000])
        spec = C.Spec(name=(name or "").strip()[:100] or " + ".join(names)[:100] or "campaign", mode=mode or "pairwise",
                      overlap=int(overlap or 3), publish=bool(publish), repeat=float(repeat or 0),
                      min_gold=float(min_gold or 0.7), min_seconds=float(min_seconds or 0), rubric=rubric,
                      per_rater=max(0, int(per_rater or 0)))
        try:
            budget.check_campaign(owner and owner_id(owner), len(items))  # how many, how large: the ledger's rule
            cid = C.create(self.db, items, spec, C.gold_from(gold_file) if gold_file else [], owner=owner,
                           draft=bool(draft))
        except StudioError as e:
            raise gr.Error(str(e), print_exception=False) from None
        return self.choices(request, cid), *self.view(cid, False, request), gr.Timer(active=True)

    def comparisons(self, request) -> gr.Dropdown:
        """Every saved comparison of the visitor's runs, for a campaign of several."""
        owner = self.session(request).owner
        refs = [f"{name}/{saved}" for name in runs.trained_runs(owner)
                for saved in runs.evals(runs.find_run(name, owner))]
        return gr.Dropdown(choices=refs)

    def preview(self, mode, guidelines) -> str:
        return safe_md((guidelines or "").strip() or C.default_guidelines(mode or "pairwise"))

    def _picked(self, cid, request) -> str:
        if not cid or cid not in {c["id"] for c in self.mine(request)}:
            raise gr.Error("Pick one of your campaigns first.", print_exception=False)
        return cid

    def open_draft(self, cid, request: gr.Request):
        cid = self._picked(cid, request)
        try:
            C.open_draft(self.db, cid)
        except StudioError as e:
            raise gr.Error(str(e), print_exception=False) from None
        marked = sum(u["gold"] is not None for u in C.units(self.db, cid))
        return f"Open: raters may rate campaign `{safe_md(cid, True)}` now ({marked} gold pairs, fixed from now on)."

    def close(self, cid, request: gr.Request):
        C.close(self.db, self._picked(cid, request))
        return f"Closed: campaign `{safe_md(cid, True)}` takes no more answers."

    def copy(self, cid, request: gr.Request):
        cid, owner = self._picked(cid, request), self.owner(request)
        try:
            budget.check_campaign(owner and owner_id(owner), 0)
        except StudioError as e:
            raise gr.Error(str(e), print_exception=False) from None
        new = C.copy(self.db, cid, owner=owner)
        return self.choices(request, new), f"Copied into a new campaign `{new}` (no answers yet; its own link)."

    def export(self, cid, request: gr.Request):
        from studio.engine.export.exporters import export_root

        cid = self._picked(cid, request)
        zipped = C.export_zip(self.db, cid, export_root() / f"campaign-{cid}.zip")
        return gr.File(deliver(zipped), visible=True), (f"`campaign-{cid}.zip`: its answers and items as a dataset "
                                                        "folder (`datasets.load_dataset` reads it unzipped).")

    def import_zip(self, path, request: gr.Request):
        owner = self.owner(request)
        if policy().needs_login(owner):
            raise gr.Error("Log in to import a campaign: it is kept under your login.", print_exception=False)
        if not path:
            return gr.skip(), ""
        try:
            budget.check_campaign(owner and owner_id(owner), 0)
            cid = C.import_zip(self.db, path, owner=owner)
        except StudioError as e:
            raise gr.Error(str(e), print_exception=False) from None
        return self.choices(request, cid), f"Imported campaign `{safe_md(cid, True)}`."

    def push(self, cid, repo, token, request: gr.Request):
        from studio.ui.identity import oauth_token

        cid = self._picked(cid, request)
        if not (repo or "").strip():
            raise gr.Error("Type a dataset repo first (you/my-ratings).", print_exception=False)
        token = policy().push_token(token, oauth_token(request))
        try:
            campaign_hub.push(self.db, [cid], repo.strip(), token or None)
        except StudioError as e:
            raise gr.Error(str(e), print_exception=False) from None
        return f"Pushed campaign `{safe_md(cid, True)}` to `{safe_md(repo.strip(), True)}` (campaigns/{cid}/)."

    def choices(self, request, value=None) -> gr.Dropdown:
        found = self.mine(request)
        return gr.Dropdown(choices=[(f"{c['name']} ({c['id']})", c["id"]) for c in found],
                           value=value or (found[0]["id"] if found else None))

    def view(self, cid, everyone: bool, request: gr.Request):
        if not cid or cid not in {c["id"] for c in self.mine(request)}:
            return "", "", *(gr.Dataframe(value=None, visible=False),) * 3
        spec, cover, alpha = C.spec_of(self.db, cid), C.coverage(self.db, cid), C.alpha(self.db, cid, everyone)
        host = (getattr(request, "headers", None) or {}).get("host", "")
        url = safe_md(f"http://{host}/?campaign={cid}" if host else f"?campaign={cid}", True)
        link = f"Raters open **{url}**"
        if C.state_of(self.db, cid) == "draft":
            key = C.draft_key(self.db, cid) or ""
            mine = safe_md(f"http://{host}/?campaign={cid}&prepare={key}" if host else
                           f"?campaign={cid}&prepare={key}", True)
            link = (f"**A draft**: open **{mine}** (your preview link: keep it to yourself) to see it as raters "
                    f"will and mark gold pairs, then press Open for raters. Raters will open **{url}**; until then "
                    "it tells them it is not open yet.")
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
        return (link, summary, gr.Dataframe(quality, visible=not quality.empty, wrap=True, column_widths=RATER_WIDTHS),
                gr.Dataframe(board, visible=not board.empty, wrap=True),
                gr.Dataframe(means.round(2), visible=not means.empty))


ALPHA_WORDS = ("1 means the raters always agree, 0 what random answers would give, below 0 less agreement than "
               "chance (raters who contradict each other, or too few items to tell).")
RATER_LEGEND = ("**Raters**: *answers* given of the most they are asked for; *gold right* the share of known "
                "answers they got (95 % interval); *same on repeat* how often they answered a repeated item as "
                "before; *agrees* how often they side with the others' majority; *picked A* the share of their A/B "
                "answers that went to the side shown first (about half for a careful rater) and how likely a fair coin "
                "is to do that (*A-bias p*); *why* the rule that excluded them; *note* what deserves a look.")


RATER_WIDTHS = ["7%", "7%", "12%", "7%", "7%", "6%", "7%", "6%", "5%", "24%", "12%"]  # the why in full


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


def overview(db, found: list[dict]) -> pd.DataFrame:
    """Every campaign the visitor may see, each model's place in it (kept raters only): what the Rate tab's
    Results show beside the rating pool's, so that a campaign's verdict is not only on its own page."""
    rows = []
    for c in found:
        cover = C.coverage(db, c["id"])
        for r in board_table(C.leaderboard(db, c["id"])).to_dict("records"):
            rows.append({"campaign": c["name"], "state": c["state"],
                         "items done": f"{cover['complete']} of {cover['units']}", **r})
    return pd.DataFrame(rows)


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
    made_of = [run, result, p.name, p.mode, p.overlap, p.publish, p.draft, p.more, p.items_file, p.gold_file,
               p.question, p.guidelines, p.repeat, p.min_gold, p.min_seconds, p.per_rater]
    p.create.click(guard(h.create), made_of, [p.pick, *shown, p.timer], api_name="campaign_create")
    gr.on([p.mode.change, p.guidelines.change], h.preview, [p.mode, p.guidelines], p.preview,
          api_visibility="private", show_progress="hidden")
    p.open.click(guard(h.open_draft), p.pick, p.act, api_name="campaign_open").then(
        guard(h.view), [p.pick, p.everyone], shown, api_visibility="private")
    p.close.click(guard(h.close), p.pick, p.act, api_name="campaign_close")
    p.copy.click(guard(h.copy), p.pick, [p.pick, p.act], api_name="campaign_copy")
    p.export.click(guard(h.export), p.pick, [p.download, p.act], api_name="campaign_export")
    p.import_file.upload(guard(h.import_zip), p.import_file, [p.pick, p.act], api_name="campaign_import")
    p.push.click(guard(h.push), [p.pick, p.push_repo, p.push_token], p.act, api_name="campaign_push")

    def listed(request: gr.Request):
        return h.choices(request), h.comparisons(request)

    page.select(listed, None, [p.pick, p.more], api_visibility="private")
    gr.on([p.pick.change, p.everyone.change], guard(h.view), [p.pick, p.everyone], shown, api_name="campaign_view")
    p.pick.change(lambda cid: gr.Timer(active=bool(cid)), p.pick, p.timer, api_visibility="private")
    p.timer.tick(h.view, [p.pick, p.everyone], shown, api_visibility="private", show_progress="hidden")
