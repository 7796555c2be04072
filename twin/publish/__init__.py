"""Taking a twin elsewhere: a merged Hugging Face model dir, then GGUF + an Ollama Modelfile."""
