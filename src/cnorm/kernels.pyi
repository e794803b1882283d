# Stub of the compiled module cnorm.kernels.  Its kernels.pyx is generated
# (tools/gen_bindings.py, from include/cnorm_kernels.def), but everything it
# defines is cdef: C code cimports it (kernels.pxd).  From Python the module
# exposes only Cython's capsule table, {C function name without cnorm_:
# capsule}, whose keys follow the kernel list; its type does not.  So this
# stub is written by hand and needs no regeneration.
from typing_extensions import CapsuleType

__pyx_capi__: dict[str, CapsuleType]
