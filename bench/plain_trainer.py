"""The baseline for train_overhead.py: a plain Hugging Face Trainer + PEFT LoRA script.

Same model, data, steps, batch, length and threads as the studio's job; what a practitioner
would write by hand. Usage: python bench/plain_trainer.py MODEL_DIR DATA.json STEPS BATCH LENGTH THREADS OUT
"""

import json
import sys

import torch
from peft import LoraConfig, get_peft_model
from transformers import (
                          AutoModelForCausalLM,
                          AutoTokenizer,
                          DataCollatorForLanguageModeling,
                          Trainer,
                          TrainingArguments,
)

model_dir, data, steps, batch, length, threads, out = sys.argv[1:8]
torch.set_num_threads(int(threads))
tok = AutoTokenizer.from_pretrained(model_dir)
rows = json.load(open(data))
texts = [tok.apply_chat_template([{"role": "user", "content": f"{r['instruction']}\n{r['input']}".strip()},
                                  {"role": "assistant", "content": r["output"]}], tokenize=False) for r in rows]
dataset = [tok(t, truncation=True, max_length=int(length), add_special_tokens=False) for t in texts]
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear",
                                         task_type="CAUSAL_LM"))
args = TrainingArguments(output_dir=out, per_device_train_batch_size=int(batch), max_steps=int(steps),
                         learning_rate=2e-4, lr_scheduler_type="cosine", warmup_steps=0.05, logging_steps=1,
                         save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True, seed=42)
trainer = Trainer(model=model, args=args, train_dataset=dataset,
                  data_collator=DataCollatorForLanguageModeling(tok, mlm=False))
trainer.train()
trainer.save_model(f"{out}/adapter")  # the studio saves its adapter and tokenizer too
tok.save_pretrained(f"{out}/adapter")
