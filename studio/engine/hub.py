"""The hub seen from the studio: what a hub id is, and a model's files downloaded (weights only when they fit a
public visitor's quota), each failure said in one line."""

from __future__ import annotations

from pathlib import Path

from studio.engine.errors import ModelError
from studio.policy import policy


def hub_id(name: str) -> bool:
    """``name`` or ``org/name`` as the hub client validates a repo id, and not a path."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if not name or name.startswith((".", "/", "~")) or name.count("/") > 1:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def download(repo: str, revision: str, patterns: list[str]) -> tuple[Path, str]:
    """(the snapshot's folder, its revision): only ``patterns``; every hub failure as one line."""
    from huggingface_hub import errors as hf
    from huggingface_hub import snapshot_download

    try:
        if "*.safetensors" in patterns:
            _weights_fit_quota(repo, revision)
        path = snapshot_download(repo, revision=revision or None, allow_patterns=patterns, etag_timeout=10,
                                 token=policy().hub_token())
    except hf.GatedRepoError:  # a subclass of RepositoryNotFoundError: catch it first
        raise ModelError(f"model {repo} is gated: accept its licence on the hub, then log in or set HF_TOKEN") from None
    except hf.RevisionNotFoundError:
        raise ModelError(f"model {repo}: revision '{revision}' not found") from None
    except hf.RepositoryNotFoundError:
        raise ModelError(f"model {repo} not found on the hub (check the id; private repos need HF_TOKEN)") from None
    except hf.HFValidationError:
        raise ModelError(f"model.name '{repo}' is neither a local folder nor a valid hub id") from None
    except (hf.LocalEntryNotFoundError, OSError) as e:
        raise ModelError(f"model {repo} is not in the local cache and the hub cannot be reached (offline): "
                         f"download it once with network, or use studio-tiny ({type(e).__name__})") from None
    return Path(path), _snapshot_revision(Path(path)) or revision


def _weights_fit_quota(repo: str, revision: str) -> None:
    """On a public deployment a visitor's weights come down only when they fit what is left of their quota
    (asked of the hub before the download; offline, the cache is all there is and nothing is downloaded)."""
    import os

    from studio.engine import budget, runs

    owner = runs.ACTING.get()
    if not policy().caps or owner is None or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        return
    from huggingface_hub import HfApi

    info = HfApi().model_info(repo, revision=revision or None, files_metadata=True, token=policy().hub_token())
    size_mb = sum((f.size or 0) for f in info.siblings or [] if f.rfilename.endswith(".safetensors")) / 2**20
    left = budget.USER_QUOTA_MB - budget.usage_mb(owner)
    if size_mb > left:
        raise ModelError(f"model {repo}: its weights take {size_mb:,.0f} MB, more than the {max(left, 0):,.0f} MB left "
                         "of what this deployment gives each visitor")


def _snapshot_revision(path: Path) -> str:
    return path.name if path.parent.name == "snapshots" else ""
