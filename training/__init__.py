"""Training: TRL SFT and DPO on a snapshot (issue 5)."""
