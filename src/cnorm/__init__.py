"""cnorm: fast, numerically sound normalization layers for NumPy.

Functions (stateless) and state objects for batch, layer, group, instance
and RMS normalization and batch renormalization, forward and backward, in
float32 and float64, on C kernels that release the GIL; mergeable per-feature
Moments and a scikit-learn-compatible StandardScaler on the same kernels
(cnorm.dask: the same for dask arrays).
"""
__version__ = "0.4.0"

from cnorm._config import get_include, get_num_threads, set_num_threads, show_config
from cnorm.folding import fold_batch_norm
from cnorm.functional import (
    add_layer_norm,
    add_rms_norm,
    batch_norm_backward,
    batch_norm_infer,
    batch_norm_train,
    group_norm,
    group_norm_backward,
    instance_norm,
    instance_norm_backward,
    layer_norm,
    layer_norm_backward,
    rms_norm,
    rms_norm_backward,
)
from cnorm.layers import BatchNorm, BatchRenorm, GroupNorm, InstanceNorm, LayerNorm, RMSNorm
from cnorm.scaler import StandardScaler
from cnorm.statistics import Moments
from cnorm.sync import SyncBatchNorm

__all__ = [
    "BatchNorm",
    "BatchRenorm",
    "GroupNorm",
    "InstanceNorm",
    "LayerNorm",
    "Moments",
    "RMSNorm",
    "StandardScaler",
    "SyncBatchNorm",
    "add_layer_norm",
    "add_rms_norm",
    "batch_norm_backward",
    "batch_norm_infer",
    "batch_norm_train",
    "fold_batch_norm",
    "get_include",
    "get_num_threads",
    "group_norm",
    "group_norm_backward",
    "instance_norm",
    "instance_norm_backward",
    "layer_norm",
    "layer_norm_backward",
    "rms_norm",
    "rms_norm_backward",
    "set_num_threads",
    "show_config",
]
