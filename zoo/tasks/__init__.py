"""Task adapters: what each task (generation, translation, super-resolution) means for inputs and outputs."""
