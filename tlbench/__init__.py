"""tlbench: transfer learning vs fine-tuning vs training from scratch, measured and compared."""

__version__ = "0.1.0"
