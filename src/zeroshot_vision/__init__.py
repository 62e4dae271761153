"""zeroshot-vision: zero-shot semantic image search and classification with SigLIP."""
