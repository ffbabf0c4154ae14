"""Getting the result out: adapter zip with a model card, merged and quantized models, push to the hub."""
