"""studio-tiny: the offline starter model, so every feature works with no network.

A small Llama-architecture model, initialised deterministically from a seed, with the byte-level
BPE tokenizer shipped in ``assets/studio-tiny/`` and a ChatML template that has
``{% generation %}`` markers. ``ensure_studio_tiny(home)`` writes it once as an ordinary Hugging
Face model folder (safetensors), so adapters trained on it load with plain transformers + peft.
Widths are multiples of 64 (bitsandbytes' CPU 4-bit kernels need multiples of 32).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

TINY_NAME = "studio-tiny"
TINY_VERSION = 1
ASSETS = Path(__file__).resolve().parents[2] / "assets"
TOKENIZER_DIR = ASSETS / "studio-tiny"
SPECIAL_TOKENS = ["<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]
TINY_SHAPE = {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4, "num_attention_heads": 4,
              "num_key_value_heads": 2, "max_position_embeddings": 2048}

# The studio's default chat template (ChatML), used by studio-tiny and by any base model whose
# tokenizer has none. The generation markers let TRL and transformers find assistant tokens.
DEFAULT_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}{{- '\\n' }}"
    "{%- else %}{{- message['content'] + '<|im_end|>' + '\\n' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def train_tokenizer(corpus: list[str], vocab_size: int = 2048):
    """Train the byte-level BPE tokenizer shipped in assets (run by assets/make_assets.py)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|pad|>",
                                   bos_token=None, unk_token=None, model_max_length=2048)
    fast.chat_template = DEFAULT_CHAT_TEMPLATE
    return fast


def tiny_config(vocab_size: int, **overrides):
    from transformers import LlamaConfig

    shape = {**TINY_SHAPE, **overrides}
    return LlamaConfig(vocab_size=-(-vocab_size // 64) * 64, tie_word_embeddings=True, **shape)


def save_random_llama(target: Path, seed: int = 0, tokenizer_dir: Path = TOKENIZER_DIR, **shape) -> Path:
    """A Llama-style model initialised from ``seed`` (no download), saved with the tiny tokenizer.

    studio-tiny is this with TINY_SHAPE; tests and benchmarks use it for bigger or smaller shapes.
    The folder appears atomically: written aside, then renamed into place.
    """
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = tiny_config(len(tokenizer), bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, **shape)
    gen = torch.Generator().manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # our own seeded init, independent of global RNG state and library defaults
        for name, p in sorted(model.named_parameters()):
            if "norm" in name:
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")],
        pad_token_id=tokenizer.pad_token_id)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / "studio_tiny.json").write_text(json.dumps({"version": TINY_VERSION, "tokenizer": _tokenizer_hash(),
                                                      "seed": seed, **shape}))
    if target.exists():
        shutil.rmtree(target, ignore_errors=True)
    try:
        os.replace(tmp, target)
    except OSError:  # another process finished first; its copy is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def ensure_studio_tiny(home: Path) -> Path:
    """The studio-tiny folder under ``home/models``, built on first use (a second)."""
    target = Path(home) / "models" / TINY_NAME
    marker = target / "studio_tiny.json"
    if marker.is_file():
        built = json.loads(marker.read_text())
        if built.get("version") == TINY_VERSION and built.get("tokenizer") == _tokenizer_hash():
            return target
    return save_random_llama(target, seed=0)


def _tokenizer_hash() -> str:
    """Rebuild a cached studio-tiny when the shipped tokenizer changes."""
    import hashlib

    return hashlib.sha256((TOKENIZER_DIR / "tokenizer.json").read_bytes()).hexdigest()[:16]
