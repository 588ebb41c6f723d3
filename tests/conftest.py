"""Suite-wide settings.

The models here are small: one torch thread is as fast as two for them, keeps results
independent of how many cores CI has, and avoids oversubscription when the tests start
subprocesses (training, the CLI, notebooks) that set their own threads.
"""
import torch

torch.set_num_threads(1)
