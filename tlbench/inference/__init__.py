"""Using trained models: checkpoint loading, evaluate, predict, export, shared metrics/figures."""
