"""Taking a twin elsewhere: a merged Hugging Face model dir, GGUF + Ollama Modelfile, bundled configs."""
