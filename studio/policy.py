"""What a deployment allows, decided in one place: ``policy()`` is local (your own machine: you own everything,
see every path, name any folder) or public (a Space, or ``STUDIO_PUBLIC``: visitors are strangers to each other).
Every other module asks it a question by name (``policy().scoped``, ``policy().names_folders``) and never asks
which deployment this is; a test holds that ``public_mode()`` is read here only.

The questions, grouped as a visitor meets them:

- who the visitor is: ``identity_from_login`` (their login, never a typed name or a key the page sends),
  ``needs_login(owner)`` (an anonymous visitor owns nothing: no upload, campaign or export of their own);
- what they see: ``scoped`` (their own runs, comparisons, votes, campaigns and exports only), ``shows_server``
  and ``shown_path(path)`` (the server's folders and facts);
- what they may name: ``names_folders`` (a model folder, a data file or a task file on the server),
  ``allows(setting)`` (unsafe settings need the operator's ``STUDIO_ALLOW_<SETTING>=1``), ``serves`` (starting a
  server for a run), ``imports_ratings``;
- what they may spend: ``caps`` (the deployment's limits on examples, tokens, text, steps, disk and votes a
  minute; the numbers are ``studio/settings.py``'s), ``isolates_jobs`` (device work in a child with time and
  memory limits), ``max_trials`` and ``max_data_bytes``;
- what they may publish: ``lends_operator_token`` / ``hub_token()`` (never on a public deployment), and
  ``push_token(typed, login)``: the one rule for a push's token;
- the house: ``audits`` (the gate's log), ``guards_routes`` (the gateway in front of Gradio's own routes),
  ``visitor_process`` (a child's environment without the operator's secrets).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from studio.settings import Settings, settings


def public_mode() -> bool:
    """A Space (``SPACE_ID``) or ``STUDIO_PUBLIC``: read here and nowhere else."""
    return settings().is_public


OWN_TOKEN = ("A push needs your own token, from your Hugging Face login (write scope): this deployment takes no "
             "typed token and never lends its own.")


@dataclass(frozen=True)
class Policy:
    public: bool
    settings: Settings

    # -- who the visitor is --------------------------------------------------------------------------------------
    @property
    def identity_from_login(self) -> bool:
        """The visitor is who their login says (Hugging Face, a trusted proxy's header, password auth); locally
        the page's own key, and a rater's typed name."""
        return self.public

    def needs_login(self, owner: str | None) -> bool:
        """Whether this visitor must log in before keeping anything (an upload, a campaign, ratings, votes turned
        into training data): an anonymous visitor on a public deployment."""
        return self.public and not owner

    # -- what they see ------------------------------------------------------------------------------------------
    @property
    def scoped(self) -> bool:
        """Each visitor sees and reaches only their own runs, comparisons, votes, campaigns and exports."""
        return self.public

    @property
    def shows_server(self) -> bool:
        """Whether a page or a message may show the server's paths and facts (its memory, its folders)."""
        return not self.public

    def shown_path(self, path) -> str:
        """A server path as this deployment shows it: whole on one's own machine, its last part on a public one."""
        if not path:
            return ""
        return str(path) if self.shows_server else Path(path).name

    # -- what they may name -------------------------------------------------------------------------------------
    @property
    def names_folders(self) -> bool:
        """Whether a visitor may name a file or folder on the server (a model folder, a data file, a task YAML);
        else their own uploads, the bundled samples, hub ids and their runs only."""
        return not self.public

    def allows(self, setting: str) -> bool:
        """An unsafe model or metric setting (remote code, pickle, metric scripts): always locally; on a public
        deployment with the operator's consent only."""
        return not self.public or self.settings.allows(setting)

    @property
    def serves(self) -> bool:
        """Whether a visitor may start an OpenAI-compatible server for a run (the operator's, from a shell)."""
        return not self.public

    @property
    def imports_ratings(self) -> bool:
        """Whether a visitor may import ratings into the shared pool (the operator's, from a shell)."""
        return not self.public

    # -- what they may spend ------------------------------------------------------------------------------------
    @property
    def caps(self) -> bool:
        """The deployment's limits apply: examples, new tokens, text, steps and minutes, disk, campaigns, votes a
        minute, one training job and one chat message at a time, hub downloads."""
        return self.public

    @property
    def isolates_jobs(self) -> bool:
        """Device work (Compare, merge, chat, a data check, preparing data) runs in a child with time and memory
        limits that the visitor's Stop ends; locally it runs in the app's process (and can report progress)."""
        return self.public

    @property
    def max_trials(self) -> int:
        return self.settings.max_trials or (16 if self.public else 256)

    @property
    def max_data_bytes(self) -> int:
        return self.settings.max_data_bytes or (2**28 if self.public else 2**30)

    # -- what they may publish ----------------------------------------------------------------------------------
    @property
    def lends_operator_token(self) -> bool:
        """Whether a hub call made for a visitor may carry the operator's own login (``HF_TOKEN``)."""
        return not self.public

    def hub_token(self) -> bool | None:
        """The token argument of a hub call made for a visitor: False (send none) on a public deployment, so the
        operator's ``HF_TOKEN`` is never lent; None (the hub client's own default) locally."""
        return None if self.lends_operator_token else False

    def push_token(self, typed: str | None, login: str | None) -> str | None:
        """The one rule for a push's token (an adapter, a campaign): on a public deployment the visitor's own
        Hugging Face login only (a typed token is not taken: a form field or a request can carry anyone's), and
        none is refused with ``OWN_TOKEN`` (a ValueError: one line on the page); locally the typed one, else the
        login's, else None (the hub client's own: ``HF_TOKEN`` or the saved login)."""
        if self.lends_operator_token:
            return (typed or "").strip() or login or None
        if not login:
            raise ValueError(OWN_TOKEN)
        return login

    # -- the house ----------------------------------------------------------------------------------------------
    @property
    def audits(self) -> bool:
        """Each admission is written to the gate's audit log."""
        return self.public

    @property
    def guards_routes(self) -> bool:
        """The gateway stands in front of Gradio's own routes (identity, shares, no server path in an answer);
        no "Use via API" page; uploads are emptied at start and shutdown."""
        return self.public


def policy() -> Policy:
    """This deployment's policy, as the environment has it now."""
    return Policy(public_mode(), settings())


OPERATOR_SECRETS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_API_TOKEN", "STUDIO_OPERATOR_TOKEN", "WANDB_API_KEY",
                    "MLFLOW_TRACKING_TOKEN", "OPENAI_API_KEY")


def visitor_process(public: bool) -> None:
    """Called first in every child (``isolate.Child``: training, a data check, a device job): on a public
    deployment (``public``, as the parent that started it saw it) the operator's secrets leave the child's
    environment and the hub client's saved login is out of reach, so no library the visitor's config switches on
    (a tracker, a hub download) can read or send them."""
    if not public:
        return
    for name in OPERATOR_SECRETS:
        os.environ.pop(name, None)
    os.environ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"
    os.environ["HF_TOKEN_PATH"] = f"/nonexistent-hub-login-{os.getpid()}/token"  # the saved login: out of reach
    try:
        from huggingface_hub import constants

        constants.HF_TOKEN_PATH = os.environ["HF_TOKEN_PATH"]  # the fork server imported the client already
        constants.HF_HUB_DISABLE_IMPLICIT_TOKEN = True
    except ImportError:
        pass
