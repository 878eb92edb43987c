"""Real LoRA adapters (random weights) on the tiny test model, in a registry, for serving tests."""

from __future__ import annotations

from pathlib import Path


def make_lora_registry(root: Path, tiny_model_dir: Path) -> Path:
    """house@v1..v3 and legal@v1 under ``root``: PEFT adapters on the tiny model, house@v1 active."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    import tune

    registry = tune.AdapterRegistry(root)
    meta = {"base_model": str(tiny_model_dir), "base_model_dir": str(tiny_model_dir)}
    for name, seed in (("house", 1), ("house", 2), ("house", 3), ("legal", 4)):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        config = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        number, path = registry.create_version(name)
        get_peft_model(model, config).save_pretrained(path)
        registry.finalize(name, number, meta, activate=(name, number) == ("house", 1))
    return root
