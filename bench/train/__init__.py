"""Training engine: optimisers, schedules, LR finder, fine-tune and linear-probe protocols, metrics."""
