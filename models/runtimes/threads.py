"""Thread settings per framework, set explicitly and returned for the record.

Each function is idempotent within a process: TensorFlow's intra/inter-op pools and PyTorch's inter-op
pool can only be sized before first use, so asking again for the same size is a no-op and asking for a
different size raises (a process measures one thread setting). The returned dict is what the floor
records next to every figure.
"""
from __future__ import annotations


def set_tensorflow_threads(threads: int) -> dict[str, int]:
    """TF intra-op = `threads`, inter-op = `threads` (one request at a time: inter-op rarely matters)."""
    import tensorflow as tf

    cfg = tf.config.threading
    for current, setter, name in ((cfg.get_intra_op_parallelism_threads, cfg.set_intra_op_parallelism_threads,
                                   "intra"),
                                  (cfg.get_inter_op_parallelism_threads, cfg.set_inter_op_parallelism_threads,
                                   "inter")):
        if current() != threads:
            try:
                setter(threads)
            except RuntimeError as exc:
                raise RuntimeError(f"TensorFlow {name}-op threads are already {current()} in this process and "
                                   f"cannot become {threads}: measure each thread setting in its own process") \
                    from exc
    return {"tf_intra_op_threads": cfg.get_intra_op_parallelism_threads(),
            "tf_inter_op_threads": cfg.get_inter_op_parallelism_threads()}


def set_torch_threads(threads: int) -> dict[str, int]:
    """torch intra-op (`set_num_threads`) and inter-op threads = `threads`."""
    import torch

    torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != threads:
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError as exc:
            raise RuntimeError(f"PyTorch inter-op threads are already {torch.get_num_interop_threads()} in this "
                               f"process and cannot become {threads}: measure each thread setting in its own "
                               "process") from exc
    return {"torch_intra_op_threads": torch.get_num_threads(),
            "torch_inter_op_threads": torch.get_num_interop_threads()}
