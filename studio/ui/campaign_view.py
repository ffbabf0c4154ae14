"""The rater's view of a campaign: the link ``?campaign=ID`` opens it instead of the studio. The guidelines
first, then one pair at a time with nothing else on screen, "12 of 40", and keys A / B / T (or the buttons).
Who rates is the login on a public deployment, a name typed here locally; what they see is the campaign's
(``engine/judge/campaign/``: assignment, sides, timing). A draft's preview link (``&prepare=KEY``, shown only on
its owner's page) gives the same view, item by item, with buttons that mark a pair's known answer (gold); its plain link
says it is not open yet."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass

import gradio as gr

from studio.engine.errors import StudioError
from studio.engine.judge import campaign as C
from studio.engine.judge.ratings import DIMENSIONS, default_db
from studio.policy import policy
from studio.ui import identity
from studio.ui.handlers import guard, safe_md

KEYS_JS = """
() => { document.addEventListener('keydown', (e) => {
  const view = document.querySelector('#campaign-view');
  if (!view || view.offsetParent === null) return;
  if (['INPUT', 'TEXTAREA'].includes(document.activeElement.tagName)) return;
  if ('12345'.includes(e.key)) {  // a single answer: the next dimension not scored yet
    for (const box of view.querySelectorAll('.cv-dim')) {
      if (box.offsetParent !== null && !box.querySelector('input:checked')) {
        const input = box.querySelector(`input[value='${e.key}']`);
        if (input) { input.click(); e.preventDefault(); }
        return;
      }
    }
    return;
  }
  const ids = {a: ['cv-a'], b: ['cv-b'], t: ['cv-t'], enter: ['cv-submit', 'cv-start']}[e.key.toLowerCase()] || [];
  for (const id of ids) {
    const button = document.querySelector('#' + id);
    if (button && button.offsetParent !== null) { e.preventDefault(); button.click(); return; }
  }
}); }
"""


@dataclass
class View:
    studio: gr.Column  # the studio itself: hidden while a rater rates
    column: gr.Column
    campaign: gr.State  # the campaign's id, from the link
    unit: gr.State  # the unit shown, waiting for this rater's answer
    guidelines: gr.Markdown
    name: gr.Textbox
    start: gr.Button
    item: gr.Column
    progress: gr.Markdown
    prompt: gr.Markdown
    pair: gr.Column  # two answers, A / B / tie
    left: gr.Markdown
    right: gr.Markdown
    answers: gr.Row  # A / tie / B
    a: gr.Button
    tie: gr.Button
    b: gr.Button
    draft: gr.State  # a draft's preview: its link's key, and the item shown to its owner (index, unit, left side)
    marks: gr.Row  # a draft's gold buttons
    gold: list  # gold: A / tie / B, not gold, next
    single: gr.Column  # one answer, scored 1-5 on each dimension
    one: gr.Markdown
    dims: list
    submit: gr.Button


def build(studio: gr.Column) -> View:
    with gr.Column(visible=False, elem_id="campaign-view") as column:
        campaign, unit = gr.State(None), gr.State(None)
        guidelines = gr.Markdown(elem_id="cv-guidelines")
        with gr.Row():
            name = gr.Textbox(label="Your name (it is kept with your ratings)",
                              visible=not policy().identity_from_login, elem_id="cv-name", scale=3)
            start = gr.Button("I have read the guidelines: start (Enter)", variant="primary", elem_id="cv-start",
                              scale=1)
        with gr.Column(visible=False) as item:
            progress = gr.Markdown(elem_id="cv-progress")
            prompt = gr.Markdown(elem_id="cv-prompt")
            with gr.Column() as pair:
                with gr.Row(equal_height=True):
                    left = gr.Markdown(elem_id="cv-left", container=True)
                    right = gr.Markdown(elem_id="cv-right", container=True)
                with gr.Row() as answers:
                    a = gr.Button("A is better (A)", elem_id="cv-a")
                    tie = gr.Button("Tie (T)", elem_id="cv-t")
                    b = gr.Button("B is better (B)", elem_id="cv-b")
            with gr.Row(visible=False) as marks:
                gold = [gr.Button(text, elem_id=f"cv-gold-{key}", variant="primary" if key == "next" else "secondary")
                        for key, text in GOLD_BUTTONS]
            with gr.Column(visible=False) as single:
                one = gr.Markdown(elem_id="cv-one", container=True)
                dims = [gr.Radio([1, 2, 3, 4, 5], label=d, info=" · ".join(C.ANCHORS[d]), elem_id=f"cv-dim-{d}",
                                 elem_classes=["cv-dim"]) for d in DIMENSIONS]
                submit = gr.Button("Submit (Enter)", variant="primary", elem_id="cv-submit")
        draft = gr.State(None)
    return View(studio, column, campaign, unit, guidelines, name, start, item, progress, prompt, pair, left, right,
                answers, a, tie, b, draft, marks, gold, single, one, dims, submit)


DRAFT_SAID = ("**A draft: only you see it.** Start, and each item comes as raters will see it (the sides drawn at "
              "random). Mark a pair whose better answer you know as gold (it then checks the raters, unannounced, and "
              "is not counted in the results), or go on with Next. Raters get nothing until you open the campaign "
              "from the Campaigns tab (Open for raters).")
GOLD_BUTTONS = (("a", "Gold: A is better"), ("tie", "Gold: a tie"), ("b", "Gold: B is better"),
                ("none", "Not gold"), ("next", "Next item"))


class Handlers:
    def __init__(self, v: View):
        self.v, self.db = v, default_db()

    def rater(self, name: str, request: gr.Request) -> str:
        try:
            return identity.rater(name, request)
        except StudioError as e:
            raise gr.Error(str(e), print_exception=False) from None

    def open(self, request: gr.Request) -> dict:
        """The link's campaign: its guidelines instead of the studio (whose column is hidden), or the studio."""
        v = self.v
        query = getattr(request, "query_params", None) or {}
        cid, key = str(query.get("campaign") or "")[:64], str(query.get("prepare") or "")[:64]
        if not cid:
            return {v.column: gr.Column(visible=False), v.studio: gr.Column(visible=True)}
        rater_view = {v.column: gr.Column(visible=True), v.studio: gr.Column(visible=False)}
        try:
            spec = C.spec_of(self.db, cid)
        except StudioError:
            return {**rater_view, v.start: gr.Button(visible=False),
                    v.guidelines: f"No campaign `{safe_md(cid, True)}` here: ask for a new link."}
        how = []
        if spec.mode != "likert":
            how.append("For a pair of answers, A and B: press **A**, **B** or **T** (a tie), or use the buttons.")
        if spec.mode != "pairwise":
            how.append("For a single answer: score each dimension 1-5 as its labels say (keys **1**-**5** fill the "
                       "next one, **Enter** submits).")
        checks = C.checks_said(self.db, cid)
        # a neutral title: the campaign's own name (which may say which system is which) is the owner's alone
        text = (f"# {safe_md(spec.rubric.question, True)}\n\n{safe_md(C.guidelines(spec))}\n\n" + " ".join(how)
                + f" One item at a time{checks}. Type your name (or log in) and press **Enter** to start.")
        if C.state_of(self.db, cid) == "draft":
            if not self.may_prepare(cid, key):
                return {**rater_view, v.start: gr.Button(visible=False),
                        v.guidelines: "This campaign is not open yet: its owner is still preparing it. Come back "
                                      "to this link later."}
            text = f"{DRAFT_SAID}\n\n---\n\n{text}"
        return {**rater_view, v.campaign: cid, v.guidelines: text, v.draft: {"key": key} if key else None}

    def may_prepare(self, cid: str, key: str | None) -> bool:
        """A draft is previewed and marked through the key its owner's page alone shows (``C.draft_key``)."""
        expected = C.draft_key(self.db, cid)
        return bool(expected and key and secrets.compare_digest(expected, key))

    def preview(self, cid: str, key: str, index: int, note: str = "") -> dict:
        """The draft's ``index``-th item as raters will see it, with the gold buttons (its owner's view)."""
        v, shown = self.v, C.preview(self.db, cid, index, random.Random())
        if shown is None:
            return {v.item: gr.Column(visible=False),
                    v.guidelines: f"{note}**That was the last item.** Open the campaign for raters from the "
                                  "Campaigns tab (Open for raters), or reload this link to look again."}
        units = C.units(self.db, cid)
        u = next(x for x in units if x["unit"] == shown.unit)
        marked = sum(x["gold"] is not None for x in units)
        said = {"a": "A", "b": "B"}
        if u["gold"] is None:
            now = "not gold"
        elif u["gold"] == "tie":
            now = "gold: a tie"
        else:  # the known winner, as the side it is shown on now
            now = f"gold: {said['a' if (u['gold'] == 'a') == (shown.left_model == u['model_a']) else 'b']} is better"
        single = shown.kind == "single"
        return {**self.item(shown, cid), v.answers: gr.Row(visible=False),
                v.marks: gr.Row(visible=True), **{button: gr.Button(interactive=not single or choice == "next")
                                                  for button, (choice, _) in zip(v.gold, GOLD_BUTTONS)},
                v.draft: {"key": key, "index": index, "unit": shown.unit, "left": shown.left_model},
                v.progress: f"{note}**Draft: item {index + 1} of {shown.total}** · {marked} marked gold · this one: "
                            f"{now}" + (" (single answers are not marked)" if single else "")}

    def mark(self, key: str):
        def handler(cid, draft):
            if not cid or not draft or "unit" not in draft:
                raise gr.Error("Open the draft's preview link and start first.", print_exception=False)
            if not self.may_prepare(cid, draft["key"]):
                raise gr.Error("This campaign is not a draft any more (or this is not its preview link): its gold "
                               "is fixed.", print_exception=False)
            note = ""
            if key != "next":
                u = next(x for x in C.units(self.db, cid) if x["unit"] == draft["unit"])
                winner = None if key == "none" else "tie" if key == "tie" else \
                    "a" if (key == "a") == (draft["left"] == u["model_a"]) else "b"  # the side, as model_a / model_b
                try:
                    C.mark_gold(self.db, cid, draft["unit"], winner)
                except StudioError as e:
                    raise gr.Error(str(e), print_exception=False) from None
                note = f"Item {draft['index'] + 1}: {'not gold' if winner is None else 'marked gold'}. "
            return self.preview(cid, draft["key"], draft["index"] + 1, note)
        handler.__name__ = f"campaign_gold_{key}"
        return handler

    def show(self, cid: str, rater: str):
        shown = C.next_unit(self.db, cid, rater, random.Random())
        if shown is None:
            return {self.v.item: gr.Column(visible=False), self.v.unit: None,
                    self.v.guidelines: "**Thank you: that is every pair this campaign needs from you.**"}
        v = self.v
        return {**self.item(shown, cid), v.unit: shown.unit, v.progress: f"**{shown.done + 1} of {shown.total}**",
                v.answers: gr.Row(visible=True), v.marks: gr.Row(visible=False), v.draft: None}

    def item(self, shown: C.Shown, cid: str) -> dict:
        """What is on screen for an item, a rater's or a draft's preview alike."""
        v, single = self.v, shown.kind == "single"
        anchors = C.spec_of(self.db, cid).rubric.anchors
        return {v.item: gr.Column(visible=True),
                v.prompt: f"**Prompt**\n\n{safe_md(shown.prompt, links=False)}",
                v.pair: gr.Column(visible=not single), v.single: gr.Column(visible=single),
                v.left: f"**A**\n\n{safe_md(shown.left, links=False)}",
                v.right: f"**B**\n\n{safe_md(shown.right, links=False)}",
                v.one: f"**Answer**\n\n{safe_md(shown.left, links=False)}" if single else "",
                **{box: gr.Radio(value=None, info=" · ".join(anchors.get(d, C.ANCHORS[d])))
                   for box, d in zip(v.dims, DIMENSIONS)}}

    def begin(self, cid, name, draft, request: gr.Request):
        if not cid:
            raise gr.Error("Open a campaign's link to rate.", print_exception=False)
        key = (draft or {}).get("key")
        if key and self.may_prepare(cid, key):
            out = self.preview(cid, key, 0)
        else:
            out = self.show(cid, self.rater(name, request))
        return {self.v.start: gr.Button(visible=False), self.v.name: gr.Textbox(interactive=False), **out}

    def scored(self, cid, unit, name, quality, relevance, coherence, helpfulness, request: gr.Request):
        values = (quality, relevance, coherence, helpfulness)  # DIMENSIONS' order
        if not cid or unit is None:
            raise gr.Error("Start the campaign first.", print_exception=False)
        missing = [d for d, v in zip(DIMENSIONS, values) if v is None]
        if missing:
            raise gr.Error(f"Score {', '.join(missing)} too (keys 1-5 fill the next one).", print_exception=False)
        rater = self.rater(name, request)
        try:
            C.answer(self.db, cid, rater, unit, scores={d: int(v) for d, v in zip(DIMENSIONS, values)})
        except StudioError:
            C.spec_of(self.db, cid)  # a campaign that is not here is said in a line; else answered already
        return self.show(cid, rater)

    def answer(self, side: str):
        def handler(cid, unit, name, request: gr.Request):
            if not cid or unit is None:
                raise gr.Error("Start the campaign first.", print_exception=False)
            rater = self.rater(name, request)
            C.spec_of(self.db, cid)  # a campaign that is not here is said in a line
            try:
                C.answer(self.db, cid, rater, unit, side)
            except StudioError:
                pass  # answered already (a double key press): show what comes next
            return self.show(cid, rater)
        handler.__name__ = f"campaign_{side}"
        return handler


def api(h: Handlers) -> None:
    """The same rating through the HTTP API, for a rating client of one's own: ``campaign_next`` gives the item
    this rater sees (what the page shows), ``campaign_answer`` records their answer to it. Who rates is the login
    on a public deployment, ``rater`` locally."""

    def campaign_next(campaign: str, rater: str, request: gr.Request) -> dict:
        who = h.rater(rater, request)
        shown = C.next_unit(h.db, campaign, who, random.Random())
        if shown is None:
            return {"done": True}
        return {"done": False, "unit": shown.unit, "kind": shown.kind, "prompt": shown.prompt, "a": shown.left,
                "b": shown.right, "progress": f"{shown.done + 1} of {shown.total}"}

    def campaign_answer(campaign: str, unit: int, side: str, rater: str, request: gr.Request,
                        scores: dict | None = None) -> dict:
        """A pair: ``side`` a (the first answer shown), b (the second) or tie. A single answer: ``scores``, 1-5
        for each of quality, relevance, coherence and helpfulness (``side`` is then ignored)."""
        who = h.rater(rater, request)
        if scores:
            C.answer(h.db, campaign, who, int(unit), scores={d: int(scores.get(d, 0)) for d in DIMENSIONS})
        else:
            C.answer(h.db, campaign, who, int(unit), {"a": "left", "b": "right"}.get(side, side))
        return {"recorded": True}

    gr.api(guard(campaign_next), api_name="campaign_next")
    gr.api(guard(campaign_answer), api_name="campaign_answer")


def wire(v: View, demo: gr.Blocks) -> None:
    h = Handlers(v)
    api(h)
    demo.load(h.open, None, [v.column, v.studio, v.campaign, v.guidelines, v.start, v.draft],
              api_visibility="private")
    demo.load(None, None, None, js=KEYS_JS)
    shown = [v.item, v.unit, v.progress, v.prompt, v.pair, v.single, v.left, v.right, v.one, *v.dims, v.guidelines,
             v.answers, v.marks, *v.gold, v.draft]
    v.start.click(guard(h.begin), [v.campaign, v.name, v.draft], [v.start, v.name, *shown], api_name="campaign_start")
    v.name.submit(guard(h.begin), [v.campaign, v.name, v.draft], [v.start, v.name, *shown],
                  api_visibility="private")  # Enter
    for button, side in ((v.a, "left"), (v.tie, "tie"), (v.b, "right")):
        button.click(guard(h.answer(side)), [v.campaign, v.unit, v.name], shown, api_name=f"campaign_{side}")
    v.submit.click(guard(h.scored), [v.campaign, v.unit, v.name, *v.dims], shown, api_name="campaign_scores")
    for button, (key, _) in zip(v.gold, GOLD_BUTTONS):
        button.click(guard(h.mark(key)), [v.campaign, v.draft], shown, api_visibility="private")
