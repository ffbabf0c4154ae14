"""Peak memory before anything runs: weights, gradients, optimizer state, activations.

Contract: ``estimate(config) -> Estimate``. The architecture is read from the model's config
alone (built on the meta device: no weights load, no download beyond config.json), so a 70B
estimate takes a second. Activations follow a decoder layer's saved tensors per token
(attention ~10·hidden + 2·kv, MLP 4·intermediate, LoRA 2.4x its inputs), logits take
three fp32 copies of batch·length·vocab. The constants were fitted against peak RSS growth
on a CPU (tests/test_estimate.py keeps them within 30 %).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from studio.config import StudioConfig
from studio.engine import methods
from studio.engine.methods import Sizes

MB = 2**20
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
ADAM_BYTES = 8  # two fp32 moments per trainable parameter
RUNTIME_MB = {"cpu": 60, "cuda": 500}  # allocator slack / CUDA context and kernels


@dataclass
class Estimate:
    params: int
    trainable: int
    weights_mb: float
    gradients_mb: float
    optimizer_mb: float
    activations_mb: float
    runtime_mb: float
    total_mb: float
    device: str
    device_mb: float | None
    fits: bool | None

    def to_dict(self) -> dict:
        return asdict(self)

    def verdict(self) -> str:
        need = f"needs about {self.total_mb / 1024:.2f} GiB"
        if self.device_mb is None:
            return f"{need}; the device's memory is unknown"
        word = "fits" if self.fits else "does NOT fit"
        return f"{need}: {word} in {self.device} ({self.device_mb / 1024:.1f} GiB)"


def meta_model(config: StudioConfig):
    import torch
    from transformers import AutoConfig

    from studio.engine.models import auto_class, family_objective, resolve_model

    resolved = resolve_model(config.model, config_only=True)
    arch = AutoConfig.from_pretrained(resolved.path, trust_remote_code=config.model.trust_remote_code)
    auto = auto_class(config.method, family_objective(resolved.path, config.method.objective))
    if methods.of(config).score_head:  # the base with a one-score head instead of the LM head
        arch.num_labels = 1
    with torch.device("meta"):
        model = auto.from_config(arch, trust_remote_code=config.model.trust_remote_code)
    return model, arch


def _adapter(model, method) -> tuple[int, list]:
    """(trainable parameters, the base layers the adapter wraps), from PEFT itself on the meta model."""
    from peft.tuners.lora import LoraLayer

    from studio.engine.models import with_adapter

    peft_model = with_adapter(model, method, low_cpu_mem_usage=True)
    trainable, _ = peft_model.get_nb_trainable_parameters()
    return trainable, [m.get_base_layer() for m in peft_model.modules() if isinstance(m, LoraLayer)]


def _device() -> tuple[str, float | None]:
    import torch

    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        return torch.cuda.get_device_name(0), total / MB
    try:
        import psutil

        return "CPU RAM", psutil.virtual_memory().available / MB
    except ImportError:
        return "CPU RAM", None


def estimate(config: StudioConfig, precision: str | None = None) -> Estimate:
    import torch

    from studio.engine.precision import resolve as resolve_precision

    model, arch = meta_model(config)
    precision = precision or resolve_precision(config.train.precision)
    m, t, method = config.method, config.train, methods.of(config)
    params = sum(p.numel() for p in model.parameters())
    on_gpu = torch.cuda.is_available()
    act_b = BYTES[precision] if precision != "fp32" else 4
    trainable, targets = _adapter(model, m) if method.adapter else (params, [])
    linear = sum(lin.weight.numel() for n, lin in model.named_modules()
                 if isinstance(lin, torch.nn.Linear) and not n.endswith("lm_head"))
    weights = method.weights(Sizes(params, linear, trainable, BYTES[precision], methods.settings(m)))
    grads = trainable * 4
    optimizer = trainable * ADAM_BYTES
    tokens = method.tokens(config)
    h, inter = arch.hidden_size, getattr(arch, "intermediate_size", 4 * arch.hidden_size)
    kv = h // arch.num_attention_heads * getattr(arch, "num_key_value_heads", arch.num_attention_heads)
    layers = arch.num_hidden_layers
    per_layer = (10 * h + 2 * kv + 4 * inter) * act_b
    if method.adapter:
        # LoRA keeps its dropped-out input, the dropout mask and more per wrapped layer: fitted at
        # 2.4x the wrapped layers' input width with dropout, about nothing without.
        lora_in = sum(lin.in_features for lin in targets) / layers
        per_layer += lora_in * act_b * (2.4 if m.lora_dropout > 0 else 0.1)
    if t.gradient_checkpointing:
        activations = tokens * (layers * h * act_b + per_layer)
    else:
        activations = tokens * layers * per_layer
    if not method.score_head:  # a score head gives one score, not a distribution over the vocabulary
        activations += tokens * arch.vocab_size * 4 * 3  # logits, log-softmax, their gradient (fp32)
    runtime = RUNTIME_MB["cuda" if on_gpu else "cpu"] * MB
    total = weights + grads + optimizer + activations + runtime
    device, device_mb = _device()
    return Estimate(params, trainable, weights / MB, grads / MB, optimizer / MB, activations / MB, runtime / MB,
                    total / MB, device, device_mb, None if device_mb is None else total / MB <= device_mb)
