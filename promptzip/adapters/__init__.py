"""Framework adapters (optional extra `adapters`): `promptzip.adapters.langchain` and
`promptzip.adapters.llama_index`. Each imports its framework only when used."""
