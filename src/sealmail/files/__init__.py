"""Large-file secure send: streamed uploads, encrypted chunks in a blob store, portal delivery."""
