"""Pipeline stages of the embedding fine-tuning template; each is run as ``python -m stages.<name>``."""
