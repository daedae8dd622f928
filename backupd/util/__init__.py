"""Bottom-layer helpers every layer may use: stdlib only, and nothing here imports the rest of backupd."""
