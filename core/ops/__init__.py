"""Ops: each has a pure-torch reference (the spec) and, where written, a Triton kernel, chosen by
`core.ops.dispatch`. Import each op from its package (`from core.ops.attention import attention`,
`from core.ops.norm import layer_norm, rms_norm`, `from core.ops.rope import apply_rope`): re-exporting
the functions here would shadow the subpackages of the same name.

`core.ops.triton_utils` holds what the ops' kernel modules share (the one `launch` helper, interpreter mode,
tile padding); only those modules import it, so `import core` never imports triton."""

from core.ops.dispatch import KernelUnavailableError, resolve_impl, used_impls

__all__ = ["resolve_impl", "used_impls", "KernelUnavailableError"]
