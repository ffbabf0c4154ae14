"""A judge beside the people: an LLM endpoint or a reward model on every pair, in both orders, and how far it
agrees with the raters' majority."""

from __future__ import annotations

from collections import Counter, defaultdict

from studio.engine.judge.campaign.results import votes
from studio.engine.judge.campaign.store import Rubric, units
from studio.engine.judge.ratings import Ratings

# -- a judge beside the people ---------------------------------------------------------------------------------
JUDGE_PROMPT = ("Please act as an impartial judge and evaluate the quality of the responses provided by two AI "
                "assistants to the user question displayed below. {question} Avoid any position biases and do not "
                "let the order or the length of the responses influence you. Output your final verdict strictly "
                "in this format: \"[[A]]\" if assistant A is better, \"[[B]]\" if assistant B is better, and "
                "\"[[C]]\" for a tie.\n\n[User Question]\n{prompt}\n\n[The Start of Assistant A's Answer]\n{a}\n"
                "[The End of Assistant A's Answer]\n\n[The Start of Assistant B's Answer]\n{b}\n"
                "[The End of Assistant B's Answer]")


def judge_units(db: Ratings, cid: str, judge) -> list[dict]:
    """``judge(prompt, first, second) -> "first" | "second" | "tie"`` on every pair of the campaign, in both
    orders (MT-Bench's rule against position bias): per unit the winner (a, b or tie) each order gave."""
    out = []
    for u in units(db, cid):
        if u["gold"] is not None or u["kind"] != "pair":
            continue
        forward = judge(u["prompt"], u["output_a"], u["output_b"])
        backward = judge(u["prompt"], u["output_b"], u["output_a"])
        out.append({"unit": u["unit"], "forward": {"first": "a", "second": "b"}.get(forward, "tie"),
                    "backward": {"first": "b", "second": "a"}.get(backward, "tie")})
    return out


def judge_agreement(db: Ratings, cid: str, judged: list[dict]) -> dict:
    """How far a judge agrees with the people (their majority per pair, without the excluded raters), as
    MT-Bench reports it: each order of each pair is one judgement, so a judge that always picks the first answer
    agrees on half the decided pairs whatever it reads. With ties: three outcomes; without: only pairs both the
    judge and the people decided. Cohen's kappa on the three outcomes; consistency: pairs whose two orders
    agree."""
    from sklearn.metrics import cohen_kappa_score

    people: dict[int, Counter] = defaultdict(Counter)
    for v in votes(db, cid):
        people[v["item_id"]][v["winner"]] += 1
    human = {}
    for unit, said in people.items():
        (top, n), *rest = said.most_common()
        human[unit] = top if not rest or rest[0][1] < n else "tie"  # no majority: a tie
    pairs = [(human[j["unit"]], j[order]) for j in judged if j["unit"] in human for order in ("forward", "backward")]
    if not pairs:
        return {"n": 0}
    decided = [(h, m) for h, m in pairs if h != "tie" and m != "tie"]
    labels = ["a", "b", "tie"]
    kappa = cohen_kappa_score([h for h, _ in pairs], [m for _, m in pairs], labels=labels)
    return {"n": len(pairs) // 2, "agreement_with_ties": sum(h == m for h, m in pairs) / len(pairs),
            "agreement_without_ties": sum(h == m for h, m in decided) / len(decided) if decided else None,
            "decided": len(decided), "kappa": None if kappa != kappa else float(kappa),
            "consistency": sum(j["forward"] == j["backward"] for j in judged) / len(judged) if judged else None}


def reward_judge(reference: str, margin: float = 0.0):
    """A reward-model run as a judge: the answer it scores higher wins (a tie within ``margin``)."""
    from studio.engine.judge.reward import scores
    from studio.engine.models import load_reward_model

    model, tokenizer = load_reward_model(reference)

    def judge(prompt: str, first: str, second: str) -> str:
        conv = [{"role": "user", "content": prompt}]
        s1, s2 = scores(model, tokenizer, [conv + [{"role": "assistant", "content": t}] for t in (first, second)])
        return "tie" if abs(s1 - s2) <= margin else "first" if s1 > s2 else "second"

    return judge


def endpoint_judge(base_url: str, model: str, api_key: str = "none", question: str = Rubric().question):
    """Any OpenAI-compatible chat endpoint as a judge (`studio serve` works for a local test): MT-Bench's
    pairwise prompt, temperature 0, the verdict read from [[A]], [[B]] or [[C]] (anything else is a tie)."""
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key=api_key)

    def judge(prompt: str, first: str, second: str) -> str:
        text = JUDGE_PROMPT.format(question=question, prompt=prompt, a=first, b=second)
        reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}],
                                               temperature=0, max_tokens=512)
        said = reply.choices[0].message.content or ""
        return "first" if "[[A]]" in said else "second" if "[[B]]" in said else "tie"

    return judge
